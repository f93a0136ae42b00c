"""Delivering a recorded message to its carrier: the second half of the MT task.

Per attempt, in order:

1. **Prepare** (one transaction): plan the encoding and segments and store the segment
   count with the message (billing); the concatenation reference is derived from the
   message id, so every retry rebuilds identical PDUs. Segments the SMSC already acknowledged are known
   from ``segment_submits``; they are never submitted again (``acks_late``
   redelivery, retries).
2. **Throttle**: take one token per segment from the carrier's bucket in Redis, shared
   by every worker process. Bulk must leave a reserve for interactive traffic. No
   token: retry after the wait the bucket computed (``Outcome.retry_in``).
3. **Submit** through the carrier's connector, outside any transaction.
4. **Record** (one transaction) what the carrier said, by the error table in
   :mod:`app.domain.smpp_status`: accepted segments get their SMSC id (and the Redis
   correlation entry for receipts); throttled answers retry after the hint;
   transient errors and lost links retry with backoff a bounded number of times,
   then fail over to the route's next carrier (when the carrier was not asked for by
   the client and nothing was acknowledged yet) or end the message rejected;
   permanent errors end it rejected with the mapped DR result code.

The message state only moves forward. It stays 6 ("accepted by an Aggregator") when
the SMSC acknowledges every segment — that event is recorded as ``submitted`` and, for
``receipt=TRUE``, reported with a DR callback of state 6; delivery receipts then move
it on (1 en-route, then a final state). A refusal ends it 8 rejected.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.orm import Session

from app.adapters.redis_correlation import SmscIdIndex
from app.adapters.redis_scripts import RedisStore
from app.connectors.base import CONNECTION_LOST, SegmentResult
from app.db.models import Message, MessageEvent, SegmentSubmit
from app.db.session import session_scope
from app.domain.encoding import UnencodableText
from app.domain.wap_push import InvalidWapPush
from app.domain.outbound import build_submission, plan_for
from app.domain.receipts import may_transition, normalize_smsc_id
from app.domain.smpp_status import DrResultCode, StatusClass, classify
from app.domain.states import MessageState
from app.services.carriers import CarrierDirectory, CarrierInfo, ConnectorRegistry
from app.services.callback_outbox import queue_dr_callback, take_new_callbacks
from app.services.credit import refund_if_prepaid
from app.services.intake import record_accepted

log = logging.getLogger(__name__)

MAX_TRANSIENT_ATTEMPTS = 8
"""Transient errors and lost links tolerated per carrier: seven retries after 1, 2, 4 ...
64 s (about two minutes), then failover or rejection."""
THROTTLED_RETRY_SECONDS = 1.0
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
class _Attempt:
    message_id: str
    carrier: CarrierInfo
    acked: frozenset[int]
    submission: Any


class DeliveryService:
    def __init__(
        self,
        database_url: str,
        store: RedisStore,
        smsc_ids: SmscIdIndex,
        carriers: CarrierDirectory,
        connectors: ConnectorRegistry,
        clock=None,
        notify: Callable[[list[str]], None] = lambda _ids: None,
    ):
        self.database_url = database_url
        self.store = store
        self.smsc_ids = smsc_ids
        self.carriers = carriers
        self.connectors = connectors
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self.notify = notify  # hands committed callback ids to the callbacks queue

    def process_accepted(self, payload: dict, *, interactive: bool) -> Outcome:
        """The MT task's whole job: record the accepted message (idempotently) and
        prepare it in one transaction, then submit and record the answer."""
        with session_scope(self.database_url) as session:
            record_accepted(session, payload, now=self.clock(), route=self.carriers.route)
            attempt = self._prepare(session, payload["id"])
            callbacks = take_new_callbacks(session)
        self.notify(callbacks)
        return self._submit(attempt, interactive)

    def deliver(self, message_id: str, *, interactive: bool) -> Outcome:
        """Another attempt for a message already recorded."""
        with session_scope(self.database_url) as session:
            attempt = self._prepare(session, message_id)
            callbacks = take_new_callbacks(session)
        self.notify(callbacks)
        return self._submit(attempt, interactive)

    def _submit(self, attempt: _Attempt | Outcome, interactive: bool) -> Outcome:
        if isinstance(attempt, Outcome):
            return attempt
        wait = self._throttle(attempt, interactive)
        if wait > 0:
            return Outcome(retry_in=wait, reason="carrier throughput")
        results = self.connectors.for_carrier(attempt.carrier).submit(attempt.submission)
        with session_scope(self.database_url) as session:
            outcome = self._record(session, attempt, results)
            callbacks = take_new_callbacks(session)
        self.notify(callbacks)
        return outcome

    def _prepare(self, session: Session, message_id: str) -> _Attempt | Outcome:
        message = session.get(Message, message_id)
        if message is None or MessageState(message.state) is not MessageState.ACCEPTED or message.carrier_id is None:
            return DONE
        carrier = self.carriers.current().carriers.get(message.carrier_id)
        if carrier is None or not carrier.enabled:
            return self._fail_over_or_reject(session, message, "carrier unavailable", DrResultCode.CARRIER_INVALID)
        acked = frozenset(s.seq for s in message.submits if s.smsc_message_id is not None)
        try:
            plan = plan_for(message.text, encoding=message.encoding, flash=message.flash)
            submission = build_submission(
                message_id=message.id, sender=message.sender, destination=message.phone_number, plan=plan,
                receipt=message.receipt, concat_ref=concat_reference(message.id), concat_mode=carrier.concat_mode,
                skip_seqs=acked, wap_push=bool(message.options.get("wap_push")),
            )
        except (UnencodableText, InvalidWapPush) as exc:
            return _reject(session, message, self.clock(), DrResultCode.UNMAPPED, f"cannot encode: {exc}")
        if message.segments is None:
            message.segments = plan.segments  # billing counts the planned parts
        if not submission.segments:
            return DONE  # every segment was acknowledged by an earlier attempt
        return _Attempt(message.id, carrier, acked, submission)

    def _throttle(self, attempt: _Attempt, interactive: bool) -> float:
        rate = attempt.carrier.throughput
        if not rate:
            return 0.0
        burst = max(rate, 10.0)
        reserve = 0.0 if interactive else int(burst * BULK_RESERVE_FRACTION)
        cost = min(len(attempt.submission.segments), burst - reserve)
        return self.store.take_carrier_token(attempt.carrier.id, rate, burst, cost=cost, reserve=reserve)

    def _record(self, session: Session, attempt: _Attempt, results: list[SegmentResult]) -> Outcome:
        message = session.get(Message, attempt.message_id)
        now = self.clock()
        accepted = [r for r in results if r.accepted]
        self._remember_accepted(session, message, attempt.carrier.id, accepted, now,
                                pdus=attempt.submission.segments[0].total)
        failures = [r for r in results if not r.accepted]
        if not failures:
            return _all_submitted(session, message, [r.smsc_message_id for r in accepted], now)
        return self._handle_failures(session, message, failures, now)

    def _remember_accepted(
        self, session: Session, message: Message, carrier_id: int, accepted: list[SegmentResult], now: datetime,
        pdus: int,
    ) -> None:
        if not accepted:
            return
        # Only segments without a row are ever submitted (acknowledged ones are skipped),
        # so every acknowledgement is a new row. ``total`` counts submit_sm PDUs (one for
        # message_payload), which is what receipts come back for.
        session.add_all(
            SegmentSubmit(message_id=message.id, seq=result.seq, total=pdus, carrier_id=carrier_id,
                          state=MessageState.ACCEPTED, command_status=0, submitted_at=now,
                          smsc_message_id=normalize_smsc_id(result.smsc_message_id or f"{message.id}:{result.seq}"))
            for result in accepted
        )
        self.smsc_ids.remember(carrier_id, [(r.smsc_message_id, message.id, r.seq) for r in accepted
                                            if r.smsc_message_id])

    def _handle_failures(self, session: Session, message: Message, failures: list[SegmentResult], now) -> Outcome:
        statuses = [classify(r.command_status) if r.command_status != CONNECTION_LOST else None for r in failures]
        permanent = next((s for s in statuses if s is not None and s.status_class is StatusClass.PERMANENT), None)
        if permanent is not None:
            return _reject(session, message, now, permanent.result_code,
                           f"{permanent.name} (0x{permanent.code:02X})", command_status=permanent.code)
        throttled = [s for s in statuses if s is not None and s.status_class is StatusClass.THROTTLED]
        if throttled and len(throttled) == len(statuses):
            _event(session, message, now, "retry", reason=throttled[0].name)
            return Outcome(retry_in=THROTTLED_RETRY_SECONDS, reason=throttled[0].name)
        message.submit_attempts += 1
        reason = failures[0].detail or (statuses[0].name if statuses[0] else "connection lost")
        if message.submit_attempts >= MAX_TRANSIENT_ATTEMPTS:
            code = next((s.result_code for s in statuses if s is not None), DrResultCode.INTERNAL_ERROR)
            return self._fail_over_or_reject(session, message, reason, code)
        countdown = min(MAX_COUNTDOWN_SECONDS, 2.0 ** (message.submit_attempts - 1))
        _event(session, message, now, "retry", reason=reason, attempt=message.submit_attempts, countdown=countdown)
        return Outcome(retry_in=countdown, reason=reason)

    def _fail_over_or_reject(self, session: Session, message: Message, reason: str, code: int) -> Outcome:
        now = self.clock()
        already_acked = any(s.smsc_message_id for s in message.submits)
        tried = set(message.options.get("tried_carriers", [])) | {message.carrier_id}
        if message.requested_carrier_id is None and not already_acked:
            snapshot = self.carriers.current()
            candidate = snapshot.table.select(message.phone_number, exclude={str(c) for c in tried},
                                              pick=len(tried))
            if candidate is not None:
                message.options = {**message.options, "tried_carriers": sorted(tried)}
                _event(session, message, now, "failover", reason=reason, carrier=int(candidate),
                       previous=message.carrier_id)
                message.carrier_id = int(candidate)
                message.submit_attempts = 0
                return Outcome(retry_in=0.0, reason="failover")
        return _reject(session, message, now, code, reason)


def _event(session: Session, message: Message, now: datetime, kind: str, *, state=None, **detail) -> None:
    session.add(MessageEvent(message_id=message.id, at=now, kind=kind, state=state, detail=detail))


def _all_submitted(session: Session, message: Message, smsc_ids: list[str | None], now: datetime) -> Outcome:
    _event(session, message, now, "submitted", state=MessageState.ACCEPTED, carrier=message.carrier_id,
           segments=message.segments, smsc_ids=smsc_ids)
    queue_dr_callback(session, message, MessageState.ACCEPTED, 0, now)
    return DONE


def _reject(session: Session, message: Message, now: datetime, code: int, reason: str, **detail) -> Outcome:
    if may_transition(MessageState(message.state), MessageState.REJECTED):
        message.state = MessageState.REJECTED
        message.result_code = int(code)
        _event(session, message, now, "rejected", state=MessageState.REJECTED, reason=reason,
               result_code=int(code), **detail)
        queue_dr_callback(session, message, MessageState.REJECTED, int(code), now)
        refund_if_prepaid(session, message.account_id, message.id, message.options.get("price"))
    log.info("message %s rejected (%s): %s", message.id, int(code), reason)
    return DONE

