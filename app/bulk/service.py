"""Accepting a bulk SMS request (seed 001): the ingress side of ``/bulksms/*``.

Work per request (DESIGN.md, "Ingress"): parse and validate (pure,
:mod:`app.bulk.request`), the cached credential and directory rows, then ONE
Redis round trip (:class:`~app.bulk.store.BulkStore.admit_batch`) that
checks every destination against the DND registry, the account's opt-outs and the
duplicate window, debits a prepaid account for the whole request or refuses it
(1725), and then either pushes the single message (one destination, now), stores the
batch and pushes ONE fan-out task (many destinations), or stores the batch in the
schedule index and pushes a task that records it in the database (scheduled). The
request never waits for the fan-out: 10,000 destinations cost one script call.

Checks, in the order that decides the code: client IP denylist (16), the request's own
form (1702, 1703, 1704, 1708, 1707, 1705, schedule 1702, destination list 1706),
credentials (1709; also for a login or address locked out after too many failures and
when every password check slot is busy, docs/security.md: 1709 is the one code the seed
asks clients to retry), the account's IP allowlist (18), the source registered to the
account (1707), the account's maximum length (1705), templates (1033), spam rules
(1028); then per destination: syntax (1706) and repeats in the request (1041) from the
parser, DND (1732), opt-out (1042), duplicate window (1041), credit (1725).

The REST API (:mod:`app.api`) sends its many-destination and scheduled messages
through :meth:`BulkSubmitService.admit`: the same content rules and the same one
script, for an account it authenticated itself, with the priority it was asked for and
the client's idempotency key claimed in the same step (``(account, key)`` is the MT
API's claim, so a key is used once across both).
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import redis
from sqlalchemy.exc import SQLAlchemyError

from app.adapters import metrics, stage_queue
from app.adapters.redis_scripts import NotSent, OutcomeUnknown
from app.bulk import payloads
from app.bulk.directory import BulkDirectory
from app.bulk.rules import matches_spam, matches_template
from app.bulk.settings import BulkSettings
from app.bulk.store import BulkCandidate, BulkStore
from app.bulk.request import (
    BulkCode,
    BulkRejected,
    BulkRequest,
    format_entries,
    format_refusal,
    parse_bulk_request,
    wants_schedule,
)
from app.domain.priorities import Priority
from app.bulk.schedule import InvalidSchedule, due_epoch
from app.services.auth_guard import KdfBusy
from app.services.directory import AccountView, Directory

log = logging.getLogger(__name__)


def new_batch_id() -> str:
    return uuid.uuid4().hex[:24]


def text_digest(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


@dataclass(frozen=True)
class BulkReply:
    body: str
    batch_id: str | None = None


@dataclass(frozen=True)
class BulkDecision:
    """What the admission decided: one ``(code, destination as given, message id)`` per
    destination in request order (the message id only with 1701), and when it is due."""

    batch_id: str
    entries: list[tuple[int, str, str]]
    due: float
    scheduled: bool


class DuplicateRequest(Exception):
    """The idempotency key was claimed before, by ``existing_id`` (a message or batch id)."""

    def __init__(self, existing_id: str):
        super().__init__(f"idempotency key already used by {existing_id}")
        self.existing_id = existing_id


class BulkSubmitService:
    def __init__(
        self,
        directory: Directory,
        rules: BulkDirectory,
        store: BulkStore,
        settings: BulkSettings,
        *,
        clock: Callable[[], float] = time.time,
        make_batch_id: Callable[[], str] = new_batch_id,
    ):
        self.directory = directory
        self.rules = rules
        self.store = store
        self.settings = settings
        self.clock = clock
        self.make_batch_id = make_batch_id

    def submit(self, params: Mapping[str, str], client_ip: str | None, *, scheduled: bool = False) -> BulkReply:
        """Accept or refuse one request; never raises. The reply body is the seed's format."""
        try:
            if self.directory.ip_denied(client_ip):
                raise BulkRejected(BulkCode.IP_BLACKLISTED, f"client IP {client_ip} is denied")
            request = parse_bulk_request(params, max_destinations=self.settings.max_destinations,
                                         scheduled=scheduled or wants_schedule(params))
            account = self.authorize(request.username, request.password, client_ip)
            self._check_content(account, request)
            return self._admit(account, request)
        except BulkRejected as rejected:
            log.info("bulk request refused with %d: %s", rejected.code, rejected.reason)
            return BulkReply(format_refusal(rejected.code))
        except OutcomeUnknown:
            log.exception("bulk request: Redis took it and its answer was lost")
            return BulkReply(format_refusal(BulkCode.RESPONSE_TIMEOUT))
        except (NotSent, redis.RedisError, SQLAlchemyError, OSError):
            log.exception("bulk request not accepted: a backing service failed")
            return BulkReply(format_refusal(BulkCode.INTERNAL_ERROR))
        except Exception:
            log.exception("bulk request not accepted: unexpected error")
            return BulkReply(format_refusal(BulkCode.INTERNAL_ERROR))

    def authorize(self, username: str, password: str, client_ip: str | None) -> AccountView:
        try:
            account = self.directory.authenticate(username, password, client_ip)
        except KdfBusy:
            raise BulkRejected(BulkCode.USER_VALIDATION_FAILED, f"password check busy for {username!r}") from None
        if account is None:
            raise BulkRejected(BulkCode.USER_VALIDATION_FAILED, f"credentials refused for {username!r}")
        if not account.allows_ip(client_ip):
            raise BulkRejected(BulkCode.IP_NOT_WHITELISTED, f"{client_ip} is not on {username!r}'s allowlist")
        return account

    def _check_content(self, account: AccountView, request: BulkRequest) -> None:
        sender = self.directory.sender(request.source)
        if sender is None or sender.account_id != account.id or not sender.enabled:
            raise BulkRejected(BulkCode.INVALID_SOURCE,
                               f"source {request.source!r} is not registered to {account.login!r}")
        if len(request.message) > account.max_message_length:
            raise BulkRejected(BulkCode.INVALID_MESSAGE, f"message longer than {account.max_message_length}")
        if self.directory.policy(account.id).templates_only and not matches_template(
            request.message, self.rules.templates(account.id)
        ):
            raise BulkRejected(BulkCode.TEMPLATE_MISMATCH, "the text matches none of the account's templates")
        if matches_spam(request.message, self.rules.spam_rules()):
            raise BulkRejected(BulkCode.SPAM, "the text matches a spam rule")

    def admit(self, account: AccountView, request: BulkRequest, *, priority: Priority,
              claim_key: str = "", claim_ttl_seconds: int = 0) -> BulkDecision:
        """Content rules and the one admission script for an account another API has
        authenticated. Raises :class:`BulkRejected`, :class:`DuplicateRequest` when
        ``claim_key`` was claimed before; a backing service's error propagates."""
        self._check_content(account, request)
        return self._decide(account, request, priority, claim_key, claim_ttl_seconds)

    def _admit(self, account: AccountView, request: BulkRequest) -> BulkReply:
        decision = self._decide(account, request, account.default_priority)
        return BulkReply(format_entries(decision.entries), decision.batch_id)

    def _decide(self, account: AccountView, request: BulkRequest, priority: Priority,
                claim_key: str = "", claim_ttl_seconds: int = 0) -> BulkDecision:
        now = self.clock()
        due = now
        if request.scheduled_at is not None:
            try:
                due = due_epoch(request.scheduled_at, now=now, max_days=self.settings.max_schedule_days)
            except InvalidSchedule as exc:
                raise BulkRejected(BulkCode.INVALID_URL, exc.reason) from exc
        scheduled = due > now
        batch_id = self.make_batch_id()
        candidates = request.candidates
        codes: dict[int, int] = {d.index: int(d.code) for d in request.destinations if d.code is not None}
        if candidates:
            codes.update(self._run_script(account, request, batch_id, now, due, scheduled, priority,
                                          claim_key, claim_ttl_seconds))
        entries = [
            (codes[d.index], d.given, payloads.message_id(batch_id, d.index) if codes[d.index] == 1701 else "")
            for d in request.destinations
        ]
        metrics.ACCEPTED.inc(priority.value, amount=sum(1 for code, _, _ in entries if code == 1701))
        return BulkDecision(batch_id, entries, due, scheduled)

    def _run_script(
        self, account: AccountView, request: BulkRequest, batch_id: str, now: float, due: float, scheduled: bool,
        priority: Priority, claim_key: str, claim_ttl_seconds: int,
    ) -> dict[int, int]:
        candidates = request.candidates
        prepaid = self.directory.policy(account.id).prepaid
        segments = request.plan.segments
        single = len(request.destinations) == 1 and not scheduled
        duplicate_prefix = self.store.keys.duplicate_prefix(account.id, text_digest(request.message))
        meta = {
            "batch_id": None if single else batch_id,
            "account_id": account.id,
            "source": request.source,
            "message": request.message,
            "type": request.message_type.code,
            "encoding": request.message_type.encoding.value if request.message_type.encoding else None,
            "flash": request.message_type.flash,
            "wap_push": request.message_type.wap_push,
            "dlr": request.dlr,
            "priority": priority.value,
            "segments": segments,
            "accepted_at": now,
            "due": due,
            "duplicate_prefix": duplicate_prefix,
        }
        script_candidates = [
            BulkCandidate(
                destination=d.number,
                message_id=payloads.message_id(batch_id, d.index),
                price=segments * self.directory.price_per_segment(d.number) if prepaid else 0,
            )
            for d in candidates
        ]
        if single:
            only = script_candidates[0]
            mode, task_now, task_later = "direct", payloads.destination_item(meta, only.destination, only.message_id,
                                                                             only.price), ""
        elif scheduled:
            mode = "schedule"
            task_now = payloads.batch_task(payloads.PERSIST_TASK, meta, batch_id)
            task_later = payloads.batch_task(payloads.FANOUT_TASK, meta, batch_id)
        else:
            mode, task_now, task_later = "fanout", payloads.batch_task(payloads.FANOUT_TASK, meta, batch_id), ""
        admission = self.store.admit_batch(
            batch_id=batch_id,
            mode=mode,
            due=due,
            account_id=account.id,
            prepaid=prepaid,
            check_dnd=True,
            duplicate_prefix=duplicate_prefix,
            duplicate_window=self.settings.duplicate_window_seconds,
            queue=priority.queue,
            task_now=task_now,
            task_on_release=task_later,
            meta=payloads.dumps(meta),
            candidates=script_candidates,
            drain=stage_queue.drain_message(priority.queue),
            claim_key=claim_key,
            claim_ttl_seconds=claim_ttl_seconds,
        )
        if admission.outcome == "duplicate":
            raise DuplicateRequest(admission.existing_id)
        return {d.index: code for d, code in zip(candidates, admission.codes)}
