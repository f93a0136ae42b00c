"""Delivering accepted messages to their carriers: the MT stage, a batch at a time.

A drain task hands :meth:`DeliveryService.process_batch` the payloads it claimed
(:mod:`app.adapters.stage_queue`); a retry hands :meth:`DeliveryService.deliver_batch`
message ids. Per batch, in order:

1. **Record and prepare** (one transaction). New routed text messages are written with
   set-based inserts (:func:`app.services.intake.insert_routed`), their encoding and
   segments planned from the payload (the segment count is stored with the message,
   for billing); everything else (MMS, no route, a message already recorded by an
   earlier attempt) goes through the ORM one message at a time. An MMS (a message with
   attachments) is routed among the carriers that carry MMS and goes out as one MMS
   submission with its stored parts (:func:`app.domain.outbound.build_mms_submission`);
   its carrier not carrying MMS (a trusted ``carrier`` that is SMPP, say) ends it
   rejected with result code 3, never sent as text; an SMS asked of a carrier that
   carries only MMS (MM7) likewise. The concatenation
   reference is derived from the message id, so every retry rebuilds identical PDUs;
   segments the SMSC already acknowledged are known from ``segment_submits`` and
   never submitted again (``acks_late`` redelivery, retries).
2. **Throttle**: tokens for as many messages as the carrier's bucket in Redis holds
   (one per segment, one script call per carrier), shared by every worker process.
   Bulk must leave a reserve for interactive traffic. The rest wait: each message
   gets ``Outcome.retry_in``, the time the bucket needs for the messages before it.
3. **Submit** through each carrier's connector, the whole batch at once (SMPP: every
   segment within the binds' windows), outside any transaction.
4. **Record** (one transaction) what the carrier said, by the error table in
   :mod:`app.domain.smpp_status`. Acknowledged segments get their SMSC id in one
   insert (receipts are matched against that table); a fully acknowledged message
   gets its ``submitted`` event and, for ``receipt=TRUE``, a DR callback of state 6,
   in one insert each. Failures go message by message: throttled answers retry after
   the hint; transient errors and lost links retry with backoff a bounded number of
   times, then fail over to the route's next carrier (when the carrier was not asked
   for by the client and nothing was acknowledged yet) or end the message rejected;
   permanent errors end it rejected with the mapped DR result code (the carrier's own
   table first: :mod:`app.domain.carrier_codes`).

The message state only moves forward. It stays 6 ("accepted by an Aggregator") when
the SMSC acknowledges every segment; delivery receipts then move it on (1 en-route,
then a final state). A refusal ends it 8 rejected.
"""

from __future__ import annotations

import logging
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from functools import partial
from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.adapters import metrics
from app.adapters.redis_scripts import RedisStore
from app.connectors.base import CONNECTION_LOST, SegmentResult
from app.db.models import Message, MessageEvent, SegmentSubmit
from app.db.session import session_scope
from app.domain.carrier_codes import DEFAULT_TABLE, ResultCodeTable
from app.domain.encoding import UnencodableText
from app.domain.mms import MmsPart, stored_payload
from app.domain.outbound import Submission, build_mms_submission, build_submission, plan_for
from app.domain.receipts import may_transition, normalize_smsc_id
from app.domain.smpp_status import DrResultCode, StatusClass, classify
from app.domain.states import MessageState
from app.domain.wap_push import InvalidWapPush
from app.services.callback_outbox import ReceiptSubject, queue_dr_callback, queue_dr_callbacks, take_new_callbacks
from app.services.carriers import CarrierDirectory, CarrierInfo, ConnectorRegistry
from app.services.credit import Refund, refund_if_prepaid
from app.services.intake import Routed, delivery_options, insert_routed, record_accepted, recorded_ids

log = logging.getLogger(__name__)

MAX_TRANSIENT_ATTEMPTS = 8
"""Transient errors and lost links tolerated per carrier: seven retries after 1, 2, 4 ...
64 s (about two minutes; lost links: 1, 2, 4, 5, 5 ... s), then failover or rejection."""
LINK_RETRY_CAP_SECONDS = 5.0
"""A lost link (the bind is down, or dropped with the submit unanswered) is tried again
at most this long after the last try, so a message goes out within seconds of the
bind coming back, not after a long backoff."""
GIVE_UP_UNREACHABLE_AFTER = timedelta(hours=1)
"""A message whose only carrier could not be reached (no failover candidate) keeps
waiting for its bind this long after it was accepted, then ends rejected: an SMSC
outage of minutes loses nothing."""
THROTTLED_RETRY_SECONDS = 1.0
GIVE_UP_THROTTLED_AFTER = timedelta(hours=1)
"""A message the SMSC still answers ``ESME_RTHROTTLED`` / ``ESME_RMSGQFUL`` this long
after it was accepted ends rejected with DR result code 6 ("rejected due to throttle
errors. Please resubmit", seed 000), instead of being retried forever."""
BULK_RESERVE_FRACTION = 0.1
"""Share of a carrier's burst that bulk traffic leaves for interactive traffic."""
MAX_COUNTDOWN_SECONDS = 300.0


@dataclass(frozen=True)
class Outcome:
    """``retry_in`` seconds when the attempt must be repeated; ``None`` when done."""

    retry_in: float | None = None
    reason: str = ""


DONE = Outcome()


def concat_reference(message_id: str) -> int:
    """A stable 8-bit concatenation reference derived from the message id."""
    return zlib.crc32(message_id.encode()) & 0xFF


@dataclass(frozen=True)
class PayloadFacts:
    """A new message's :class:`ReceiptSubject`, straight from its payload."""

    id: str
    account_id: int
    client_message_id: str | None
    phone_number: str
    receipt: bool
    app_id: str | None
    conversation_id: str | None
    options: dict

    @classmethod
    def of(cls, payload: dict[str, Any]) -> "PayloadFacts":
        return cls(payload["id"], payload["account_id"], payload["client_message_id"], payload["phone_number"],
                   payload["receipt"], payload["app_id"], payload["conversation_id"], delivery_options(payload))


@dataclass(frozen=True)
class _Attempt:
    message: ReceiptSubject
    carrier: CarrierInfo
    segments: int
    submission: Submission
    tried_before: bool = False  # recorded by an earlier attempt: the SMSC may have some of it


Prepared = dict[str, "_Attempt | Outcome"]


class DeliveryService:
    def __init__(
        self,
        database_url: str,
        store: RedisStore,
        carriers: CarrierDirectory,
        connectors: ConnectorRegistry,
        *,
        refund: Refund,
        clock=None,
        notify: Callable[[list[str]], None] = lambda _ids: None,
    ):
        self.database_url = database_url
        self.store = store
        self.carriers = carriers
        self.connectors = connectors
        self.refund = refund  # gives a prepaid message's credit back (app.bulk.credit.refund)
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.notify = notify  # hands committed callback ids to the callbacks queue

    def process_batch(self, payloads: list[dict[str, Any]], *, interactive: bool,
                      retry_ids: Sequence[str] = ()) -> dict[str, Outcome]:
        """A drain task's whole job: record the accepted payloads (idempotently), then
        submit them together with the recorded messages ``retry_ids`` that are due for
        another attempt. Returns each message's outcome, by message id."""
        payloads = list({payload["id"]: payload for payload in payloads}.values())
        prepared: Prepared = {}
        if payloads:
            try:
                prepared = self._in_unit_of_work(lambda session: self._record_batch(session, payloads), interactive)
            except IntegrityError:
                # A client message_id recorded before under another id (its Redis claim
                # had expired): record one by one, so only that message is left out.
                for payload in payloads:
                    prepared |= self._record_alone(payload, interactive)
        again = [message_id for message_id in dict.fromkeys(retry_ids) if message_id not in prepared]
        if again:
            prepared |= self._in_unit_of_work(
                lambda session: {message_id: self._prepare(session, message_id) for message_id in again}, interactive)
        return self._submit(prepared, interactive)

    def deliver_batch(self, message_ids: list[str], *, interactive: bool) -> dict[str, Outcome]:
        """Another attempt for messages already recorded (retries, throttling, failover)."""
        prepared = self._in_unit_of_work(
            lambda session: {message_id: self._prepare(session, message_id) for message_id in message_ids}, interactive)
        return self._submit(prepared, interactive)

    def _in_unit_of_work(self, work: Callable[[Session], Any], interactive: bool) -> Any:
        """``work`` in one transaction (an interactive one goes first on SQLite); the
        callbacks it queued go on after the commit."""
        with session_scope(self.database_url, urgent=interactive) as session:
            result = work(session)
            callbacks = take_new_callbacks(session)
        self.notify(callbacks)
        return result

    # --- 1. record and prepare -------------------------------------------------------------

    def _record_batch(self, session: Session, payloads: list[dict[str, Any]]) -> Prepared:
        now = self.clock()
        known = recorded_ids(session, [p["id"] for p in payloads])
        prepared: Prepared = {}
        routed: list[Routed] = []
        one_by_one: list[dict[str, Any]] = []
        for payload in payloads:
            if payload["id"] in known:
                continue
            attempt = self._plan_new(payload)
            if attempt is None:
                one_by_one.append(payload)
            else:
                routed.append(Routed(payload, attempt.carrier.id, attempt.segments))
                prepared[payload["id"]] = attempt
        insert_routed(session, routed, now=now)
        for payload in one_by_one:
            record_accepted(session, payload, now=now, route=partial(self.carriers.route, mms=bool(payload["attachments"])),
                            refund=self.refund)
        for message_id in known | {p["id"] for p in one_by_one}:
            prepared[message_id] = self._prepare(session, message_id)
        return prepared

    def _record_alone(self, payload: dict[str, Any], interactive: bool) -> Prepared:
        try:
            return self._in_unit_of_work(lambda session: self._record_batch(session, [payload]), interactive)
        except IntegrityError:
            if not self._in_unit_of_work(lambda session: _refuse_duplicate(session, payload, self.clock(), self.refund),
                                         interactive):
                raise
            return {payload["id"]: DONE}

    def _plan_new(self, payload: dict[str, Any]) -> _Attempt | None:
        """The attempt for a new text message with a carrier, planned from its payload;
        ``None`` when it needs the one-at-a-time path (MMS, no route, a carrier that is
        gone or disabled, text that cannot be encoded)."""
        if payload["attachments"]:
            return None
        requested = payload["carrier"]
        carrier_id = requested if requested is not None else self.carriers.route(payload["phone_number"])
        carrier = self.carriers.current().carriers.get(carrier_id) if carrier_id is not None else None
        if carrier is None or not carrier.enabled or not carrier.carries_sms:
            return None
        try:
            plan = plan_for(payload["message"], encoding=payload.get("encoding"), flash=bool(payload.get("flash")))
            submission = build_submission(
                message_id=payload["id"], sender=payload["sender"], destination=payload["phone_number"], plan=plan,
                receipt=payload["receipt"], concat_ref=concat_reference(payload["id"]),
                concat_mode=carrier.concat_mode, wap_push=bool(payload.get("wap_push")),
            )
        except (UnencodableText, InvalidWapPush):
            return None
        return _Attempt(PayloadFacts.of(payload), carrier, plan.segments, submission)

    def _prepare(self, session: Session, message_id: str) -> _Attempt | Outcome:
        message = session.get(Message, message_id)
        if message is None or MessageState(message.state) is not MessageState.ACCEPTED or message.carrier_id is None:
            return DONE
        carrier = self.carriers.current().carriers.get(message.carrier_id)
        if carrier is None or not carrier.enabled:
            return self._fail_over_or_reject(session, message, "carrier unavailable", DrResultCode.CARRIER_INVALID)
        if message.mms_content_type is not None:
            return self._prepare_mms(session, message, carrier)
        if not carrier.carries_sms:
            return self._fail_over_or_reject(session, message, f"carrier {carrier.id} does not carry SMS",
                                             DrResultCode.CARRIER_INVALID)
        acked = frozenset(s.seq for s in message.submits if s.smsc_message_id is not None)
        try:
            plan = plan_for(message.text, encoding=message.encoding, flash=message.flash)
            submission = build_submission(
                message_id=message.id, sender=message.sender, destination=message.phone_number, plan=plan,
                receipt=message.receipt, concat_ref=concat_reference(message.id), concat_mode=carrier.concat_mode,
                skip_seqs=acked, wap_push=bool(message.options.get("wap_push")),
            )
        except (UnencodableText, InvalidWapPush) as exc:
            return _reject(session, message, self.clock(), DrResultCode.UNMAPPED, f"cannot encode: {exc}",
                           refund=self.refund)
        if message.segments is None:
            message.segments = plan.segments  # billing counts the planned parts
        if not submission.segments:
            return DONE  # every segment was acknowledged by an earlier attempt
        return _Attempt(message, carrier, message.segments, submission, tried_before=True)

    def _prepare_mms(self, session: Session, message: Message, carrier: CarrierInfo) -> _Attempt | Outcome:
        """One MMS submission from the stored parts, for a carrier that carries MMS."""
        if not carrier.carries_mms:
            return self._fail_over_or_reject(session, message, f"carrier {carrier.id} does not carry MMS",
                                             DrResultCode.CARRIER_INVALID)
        if message.segments is None:
            message.segments = 1  # billing: an MMS is one part
        if any(s.smsc_message_id for s in message.submits):
            return DONE  # the MMSC acknowledged it on an earlier attempt
        payload = stored_payload(message.mms_content_type, tuple(
            MmsPart(p.content_id, p.content_type, p.content) for p in message.parts))
        submission = build_mms_submission(message_id=message.id, sender=message.sender,
                                          destination=message.phone_number, text=message.text,
                                          receipt=message.receipt, mms=payload)
        return _Attempt(message, carrier, 1, submission)

    # --- 2. throttle and 3. submit -----------------------------------------------------------

    def _submit(self, prepared: Prepared, interactive: bool) -> dict[str, Outcome]:
        outcomes = {mid: item for mid, item in prepared.items() if isinstance(item, Outcome)}
        attempts = [item for item in prepared.values() if isinstance(item, _Attempt)]
        known, attempts = self._already_acknowledged(attempts)
        still_to_send = {attempt.message.id for attempt in attempts}
        answered = [(attempt, results) for mid, (attempt, results) in known.items() if mid not in still_to_send]
        by_carrier: dict[int, list[_Attempt]] = defaultdict(list)
        for attempt in attempts:
            by_carrier[attempt.carrier.id].append(attempt)
        submitted: list[tuple[_Attempt, list[SegmentResult]]] = []
        for group in by_carrier.values():
            going, waits = self._throttle(group, interactive)
            outcomes |= waits
            if going:
                results = self.connectors.for_carrier(going[0].carrier).submit_many([a.submission for a in going])
                submitted += zip(going, results, strict=True)
                _count_answers(going[0].carrier.id, results)
        self._remember_acknowledged(submitted)
        for attempt, results in submitted:
            earlier = known.get(attempt.message.id, (None, []))[1]
            answered.append((attempt, sorted(earlier + results, key=lambda r: r.seq)))
        if answered:
            outcomes |= self._in_unit_of_work(lambda session: self._record(session, answered), interactive)
            self._forget_acknowledged(answered)
        return outcomes

    def _already_acknowledged(self, attempts: list[_Attempt]
                              ) -> tuple[dict[str, tuple[_Attempt, list[SegmentResult]]], list[_Attempt]]:
        """Segments the SMSC acknowledged in an attempt whose worker died before recording
        them (their SMSC ids wait in Redis, :meth:`_remember_acknowledged`) are recorded
        with this attempt, never submitted again. Returns (by message id: the attempt and
        the results already known; the attempts still to submit, without those segments).
        A message whose every segment is known is not in the second list."""
        tried = [a for a in attempts if a.tried_before]
        if not tried:
            return {}, attempts
        remembered = self.store.remembered_acks([a.message.id for a in tried])
        known: dict[str, tuple[_Attempt, list[SegmentResult]]] = {}
        left = []
        for attempt in attempts:
            acked = remembered.get(attempt.message.id, {})
            segments = attempt.submission.segments
            results = [SegmentResult(s.seq, 0, acked[s.seq]) for s in segments if s.seq in acked]
            if results:
                known[attempt.message.id] = (attempt, results)
            if len(results) < len(segments):
                rest = tuple(s for s in segments if s.seq not in acked)
                left.append(replace(attempt, submission=replace(attempt.submission, segments=rest)) if results
                            else attempt)
        return known, left

    def _remember_acknowledged(self, submitted: list[tuple[_Attempt, list[SegmentResult]]]) -> None:
        """Keep the SMSC ids of acknowledged segments in Redis at once, before the record
        transaction: a worker killed in between leaves them for the next attempt, which
        records them instead of submitting them again (the duplicate window at the SMSC
        shrinks to one Redis round trip). Best effort: the record transaction keeps them
        for good; if Redis is away now, that transaction is the only record."""
        acks = {(attempt.message.id, r.seq): r.smsc_message_id or f"{attempt.message.id}:{r.seq}"
                for attempt, results in submitted for r in results if r.accepted}
        if not acks:
            return
        try:
            self.store.remember_acks(acks)
        except (redis.RedisError, OSError) as exc:
            log.warning("acknowledged segments not kept in Redis (%s); recording them in the database only", exc)

    def _forget_acknowledged(self, answered: list[tuple[_Attempt, list[SegmentResult]]]) -> None:
        """Recorded in the database now: Redis need not keep them (they would expire anyway)."""
        try:
            self.store.forget_acks([attempt.message.id for attempt, results in answered
                                    if any(r.accepted for r in results)])
        except (redis.RedisError, OSError) as exc:
            log.info("acknowledged segments left in Redis to expire (%s)", exc)

    def _throttle(self, attempts: list[_Attempt], interactive: bool) -> tuple[list[_Attempt], dict[str, Outcome]]:
        """The attempts the carrier's bucket lets go now, and when each other one may."""
        carrier = attempts[0].carrier
        rate = carrier.throughput
        if not rate:
            return attempts, {}
        burst = max(rate, 10.0)
        reserve = 0.0 if interactive else int(burst * BULK_RESERVE_FRACTION)
        costs = [min(len(a.submission.segments), int(burst - reserve)) for a in attempts]
        taken, wait = self.store.take_carrier_tokens(carrier.id, rate, burst, costs, reserve)
        waits, ahead = {}, 0
        for attempt, cost in zip(attempts[taken:], costs[taken:], strict=True):
            waits[attempt.message.id] = Outcome(retry_in=wait + ahead / rate, reason="carrier throughput")
            ahead += cost
        metrics.THROTTLE_WAITS.inc(str(carrier.id), amount=len(waits))
        return attempts[:taken], waits

    # --- 4. record ---------------------------------------------------------------------------

    def _record(self, session: Session, answered: list[tuple[_Attempt, list[SegmentResult]]]) -> dict[str, Outcome]:
        now = self.clock()
        self._remember_accepted(session, answered, now)
        submitted = [(attempt, results) for attempt, results in answered if all(r.accepted for r in results)]
        _all_submitted(session, submitted, now)
        outcomes = {attempt.message.id: DONE for attempt, _ in submitted}
        for attempt, results in answered:
            failures = [r for r in results if not r.accepted]
            if failures:
                message = session.get(Message, attempt.message.id)
                outcomes[message.id] = self._handle_failures(session, message, failures, now)
        return outcomes

    def _remember_accepted(self, session: Session, answered: list[tuple[_Attempt, list[SegmentResult]]],
                           now: datetime) -> None:
        """One ``segment_submits`` row per acknowledged segment (only segments without
        one are ever submitted), with the SMSC id in its canonical form: receipts are
        matched against this table. ``total`` counts submit_sm PDUs (one for
        message_payload): what receipts come back for."""
        rows = []
        for attempt, results in answered:
            pdus = attempt.submission.segments[0].total
            for result in results:
                if not result.accepted:
                    continue
                rows.append({"message_id": attempt.message.id, "seq": result.seq, "total": pdus,
                             "carrier_id": attempt.carrier.id, "state": MessageState.ACCEPTED, "command_status": 0,
                             "submitted_at": now, "updated_at": now,
                             "smsc_message_id": normalize_smsc_id(result.smsc_message_id
                                                                  or f"{attempt.message.id}:{result.seq}")})
        if rows:
            session.execute(SegmentSubmit.__table__.insert(), rows)

    def _handle_failures(self, session: Session, message: Message, failures: list[SegmentResult], now) -> Outcome:
        statuses = [classify(r.command_status) if r.command_status != CONNECTION_LOST else None for r in failures]
        permanent = next((s for s in statuses if s is not None and s.status_class is StatusClass.PERMANENT), None)
        if permanent is not None:
            refusal = next(r for r, s in zip(failures, statuses, strict=True) if s is permanent)
            reason = f"{permanent.name} (0x{permanent.code:02X})" + (f": {refusal.detail}" if refusal.detail else "")
            return _reject(session, message, now, self._codes(message).for_command_status(permanent.code), reason,
                           refund=self.refund,
                           command_status=permanent.code)
        throttled = [s for s in statuses if s is not None and s.status_class is StatusClass.THROTTLED]
        if throttled and len(throttled) == len(statuses):
            if now - _aware(message.accepted_at) >= GIVE_UP_THROTTLED_AFTER:
                return _reject(session, message, now, self._codes(message).for_command_status(throttled[0].code),
                               f"{throttled[0].name} for over {GIVE_UP_THROTTLED_AFTER}", refund=self.refund)
            _event(session, message, now, "retry", reason=throttled[0].name)
            return Outcome(retry_in=THROTTLED_RETRY_SECONDS, reason=throttled[0].name)
        message.submit_attempts += 1
        reason = failures[0].detail or (statuses[0].name if statuses[0] else "connection lost")
        link_lost = all(status is None for status in statuses)
        cap = LINK_RETRY_CAP_SECONDS if link_lost else MAX_COUNTDOWN_SECONDS
        if message.submit_attempts >= MAX_TRANSIENT_ATTEMPTS:
            code = next((self._codes(message).for_command_status(s.code) for s in statuses if s is not None),
                        DrResultCode.INTERNAL_ERROR)
            if not link_lost or now - _aware(message.accepted_at) >= GIVE_UP_UNREACHABLE_AFTER:
                return self._fail_over_or_reject(session, message, reason, code)
            moved = self._fail_over(session, message, reason)
            if moved is not None:
                return moved
        countdown = min(cap, 2.0 ** (message.submit_attempts - 1))
        _event(session, message, now, "retry", reason=reason, attempt=message.submit_attempts, countdown=countdown)
        return Outcome(retry_in=countdown, reason=reason)

    def _codes(self, message: Message) -> ResultCodeTable:
        """The result-code table of the carrier that answered (the default if it is gone)."""
        carrier = self.carriers.current().carriers.get(message.carrier_id)
        return carrier.result_codes if carrier is not None else DEFAULT_TABLE

    def _fail_over_or_reject(self, session: Session, message: Message, reason: str, code: int) -> Outcome:
        return self._fail_over(session, message, reason) or _reject(session, message, self.clock(), code, reason,
                                                                   refund=self.refund)

    def _fail_over(self, session: Session, message: Message, reason: str) -> Outcome | None:
        """Move the message to the route's next carrier, if it may and there is one."""
        now = self.clock()
        already_acked = any(s.smsc_message_id for s in message.submits)
        tried = set(message.options.get("tried_carriers", [])) | {message.carrier_id}
        if message.requested_carrier_id is None and not already_acked:
            table = self.carriers.current().table_for(mms=message.mms_content_type is not None)
            candidate = table.select(message.phone_number, exclude={str(c) for c in tried}, pick=len(tried))
            if candidate is not None:
                message.options = {**message.options, "tried_carriers": sorted(tried)}
                _event(session, message, now, "failover", reason=reason, carrier=int(candidate),
                       previous=message.carrier_id)
                message.carrier_id = int(candidate)
                message.submit_attempts = 0
                return Outcome(retry_in=0.0, reason="failover")
        return None


def _count_answers(carrier_id: int, results: list[list[SegmentResult]]) -> None:
    """Every segment's answer, by its command_status (smsagg_submit_sm_total)."""
    answers = Counter(segment.command_status for segments in results for segment in segments)
    for command_status, count in answers.items():
        metrics.SUBMIT_SM.inc(str(carrier_id), command_status_label(command_status), amount=count)


def command_status_label(command_status: int) -> str:
    return "connection_lost" if command_status == CONNECTION_LOST else f"0x{command_status:08x}"


def _aware(moment: datetime) -> datetime:
    """SQLite hands datetimes back without their UTC offset."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=timezone.utc)


def _event(session: Session, message: Message, now: datetime, kind: str, *, state=None, **detail) -> None:
    session.add(MessageEvent(message_id=message.id, at=now, kind=kind, state=state, detail=detail))


def _all_submitted(session: Session, submitted: list[tuple[_Attempt, list[SegmentResult]]], now: datetime) -> None:
    """Every segment of these messages is with the SMSC: their ``submitted`` events and
    DR callbacks of state 6, one statement each."""
    if not submitted:
        return
    session.execute(MessageEvent.__table__.insert(), [
        {"message_id": a.message.id, "at": now, "kind": "submitted", "state": MessageState.ACCEPTED,
         "detail": {"carrier": a.carrier.id, "segments": a.segments,
                    "smsc_ids": [r.smsc_message_id for r in results]}}
        for a, results in submitted
    ])
    queue_dr_callbacks(session, [(a.message, MessageState.ACCEPTED, 0) for a, _ in submitted], now)


def _refuse_duplicate(session: Session, payload: dict[str, Any], now: datetime, refund: Refund) -> bool:
    """A payload whose client ``message_id`` the account already had accepted under
    another id (the ingress could check only its Redis claim: the database was away, or
    Redis lost the claim). It is not recorded and not sent; the client gets a DR of state
    8 with result code 7 ("the message is a duplicate", seed 000) under that
    ``message_id``, and a prepaid price back. False when no such message exists (the
    insert failed for another reason)."""
    original = session.scalar(select(Message.id).where(Message.account_id == payload["account_id"],
                                                       Message.client_message_id == payload["client_message_id"],
                                                       Message.id != payload["id"]))
    if original is None:
        return False
    log.warning("message %s refused: message_id %r of account %s was accepted before as %s (result code 7)",
                payload["id"], payload["client_message_id"], payload["account_id"], original)
    queue_dr_callback(session, PayloadFacts.of(payload), MessageState.REJECTED, DrResultCode.DUPLICATE, now)
    refund_if_prepaid(session, refund, payload["account_id"], payload["id"], payload.get("price"))
    return True


def _reject(session: Session, message: Message, now: datetime, code: int, reason: str, *, refund: Refund,
            **detail) -> Outcome:
    if may_transition(MessageState(message.state), MessageState.REJECTED):
        message.state = MessageState.REJECTED
        message.result_code = int(code)
        _event(session, message, now, "rejected", state=MessageState.REJECTED, reason=reason,
               result_code=int(code), **detail)
        queue_dr_callback(session, message, MessageState.REJECTED, int(code), now)
        refund_if_prepaid(session, refund, message.account_id, message.id, message.options.get("price"))
    log.info("message %s rejected (%s): %s", message.id, int(code), reason)
    return DONE
