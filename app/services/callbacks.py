"""Sending the DR/MO callbacks of the outbox (``callbacks`` rows), recording every
attempt, dead-lettering, replaying, listing, and sweeping up lost tasks.

`CallbackService.send_batch(ids)`, one call per task, in three steps:

1. **Pick and claim** (one transaction). Only ``pending`` rows that are due
   (``next_attempt_at`` NULL or past, with ``DUE_SLACK_SECONDS`` for clock skew between
   hosts) are considered; delivered, dead and not-yet-due rows are skipped, so a
   redelivered or duplicated task sends nothing twice. Then:

   * Order per message: a callback is deferred while an earlier one of the same
     message (by ``created_at``, then ``id``) is still pending and due or about to be
     (``next_attempt_at`` within ``LEASE_SECONDS``: in flight, or its retry is close).
     An earlier callback in a long retry back-off does not hold the later ones.
   * Fair share per account: at most ``AccountSlots.per_account`` callbacks of one
     account are in flight in this process; the rest are deferred. A slow client then
     holds a few worker threads at most, and other accounts' callbacks proceed.
   * Claim: ``UPDATE ... SET next_attempt_at = now + LEASE_SECONDS WHERE status =
     'pending' AND due``. Only one task wins a row, so concurrent tasks (a retry and a
     sweep, a redelivery) never POST the same callback at the same time.

   Deferred callbacks are returned together (`BatchOutcome.deferred`) for one short
   ``countdown`` re-enqueue; their rows are untouched.
2. **Send** every claimed callback concurrently (the `CallbackSender`), outside any
   transaction, each signed with its account's secret at send time.
3. **Record** (one transaction): a `CallbackAttempt` per try (time, status, latency,
   error), ``attempts + 1``, and the decision of `app.domain.callbacks.next_step`:
   delivered, retry at ``now + retry_interval`` (returned in `BatchOutcome.retries`),
   or dead.

The outbox guarantee: a pending row whose task was lost (pushed after a commit by a
process that then died; a worker killed between the send and the record, whose lease
then runs out) is found by `sweep_due` once its ``next_attempt_at`` is more than
``SWEEP_GRACE_SECONDS`` in the past, and enqueued again. Delivery is therefore at
least once: the seed tells clients to de-duplicate on ``message_id``.

`replay` puts dead callbacks back to pending with ``attempts`` reset (their attempt
log is kept) and, by default, the account's current DR/MO URL, so a client who fixed
its endpoint gets them there. Enqueue the returned ids after the commit
(`replay_and_enqueue` does both).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, or_, select, update
from sqlalchemy.orm import Session

from app.adapters.callback_http import AttemptResult, CallbackRequest, CallbackSender
from app.db.models import Account, Callback, CallbackAttempt
from app.db.session import session_scope
from app.domain.callbacks import (
    Deliver,
    Retry,
    encode_fields,
    next_step,
    signed_headers,
)
from app.services.errors import InvalidValue, NotFound

LEASE_SECONDS = 60
"""A claimed callback is not due again for this long: above one attempt's 30 s ceiling."""
DUE_SLACK_SECONDS = 2
DEFER_SECONDS = 2
"""Countdown of a deferred batch (order within a message, or the account's share is busy)."""
SWEEP_GRACE_SECONDS = 300
"""How long past due a pending callback must be before the sweeper re-enqueues it."""
STATUSES = ("pending", "delivered", "dead")


def utc(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite are naive; everything here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class AccountSlots:
    """Callbacks in flight per account in this process, capped (thread-safe)."""

    def __init__(self, per_account: int = 4) -> None:
        self.per_account = per_account
        self._lock = threading.Lock()
        self._busy: Counter[int] = Counter()

    def take(self, account_id: int, wanted: int) -> int:
        with self._lock:
            granted = max(0, min(wanted, self.per_account - self._busy[account_id]))
            self._busy[account_id] += granted
            return granted

    def give_back(self, account_id: int, count: int) -> None:
        with self._lock:
            self._busy[account_id] -= count
            if self._busy[account_id] <= 0:
                del self._busy[account_id]


@dataclass
class BatchOutcome:
    delivered: list[str] = field(default_factory=list)
    retries: list[tuple[str, int]] = field(default_factory=list)  # (id, countdown seconds)
    dead: list[str] = field(default_factory=list)
    deferred: list[str] = field(default_factory=list)
    defer_seconds: int = DEFER_SECONDS
    skipped: list[str] = field(default_factory=list)  # not pending, not due, or claimed elsewhere


@dataclass(frozen=True)
class _Claimed:
    id: str
    account_id: int
    attempts: int
    max_retries: int
    retry_interval: int
    request: CallbackRequest


def _due(now: datetime):
    return or_(Callback.next_attempt_at.is_(None), Callback.next_attempt_at <= now + timedelta(seconds=DUE_SLACK_SECONDS))


def _has_earlier_pending(session: Session, callback: Callback, now: datetime) -> bool:
    if not callback.message_id:
        return False
    earlier = select(Callback.id).where(
        Callback.message_id == callback.message_id,
        Callback.status == "pending",
        Callback.id != callback.id,
        or_(Callback.created_at < callback.created_at,
            and_(Callback.created_at == callback.created_at, Callback.id < callback.id)),
        or_(Callback.next_attempt_at.is_(None), Callback.next_attempt_at <= now + timedelta(seconds=LEASE_SECONDS)),
    ).limit(1)
    return session.scalar(earlier) is not None


class CallbackService:
    def __init__(self, database_url: str, sender: CallbackSender, *, slots: AccountSlots | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.database_url = database_url
        self.sender = sender
        self.slots = slots or AccountSlots()
        self.clock = clock

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def send_batch(self, callback_ids: Sequence[str]) -> BatchOutcome:
        outcome = BatchOutcome()
        claimed = self._pick_and_claim(list(dict.fromkeys(callback_ids)), outcome)
        if not claimed:
            return outcome
        try:
            results = self.sender.send_many([c.request for c in claimed])
        finally:
            for account_id, count in Counter(c.account_id for c in claimed).items():
                self.slots.give_back(account_id, count)
        self._record(claimed, results, outcome)
        return outcome

    def _pick_and_claim(self, ids: list[str], outcome: BatchOutcome) -> list[_Claimed]:
        now = self._now()
        with session_scope(self.database_url) as session:
            rows = {c.id: c for c in session.scalars(select(Callback).where(Callback.id.in_(ids)))} if ids else {}
            ready: dict[int, list[Callback]] = defaultdict(list)
            for callback_id in ids:
                callback = rows.get(callback_id)
                next_at = utc(callback.next_attempt_at) if callback else None
                if (callback is None or callback.status != "pending"
                        or (next_at is not None and next_at > now + timedelta(seconds=DUE_SLACK_SECONDS))):
                    outcome.skipped.append(callback_id)
                elif _has_earlier_pending(session, callback, now):
                    outcome.deferred.append(callback_id)
                else:
                    ready[callback.account_id].append(callback)

            claimed: list[_Claimed] = []
            for account_id, callbacks in ready.items():
                granted = self.slots.take(account_id, len(callbacks))
                outcome.deferred.extend(c.id for c in callbacks[granted:])
                account = session.get(Account, account_id)
                for callback in callbacks[:granted]:
                    won = session.execute(
                        update(Callback)
                        .where(Callback.id == callback.id, Callback.status == "pending", _due(now))
                        .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS))
                        .execution_options(synchronize_session=False)
                    ).rowcount == 1
                    if not won:
                        self.slots.give_back(account_id, 1)
                        outcome.skipped.append(callback.id)
                        continue
                    body = encode_fields(callback.fields)
                    request = CallbackRequest(callback.id, account_id, callback.url, body,
                                              signed_headers(account.callback_secret, self.clock(), body))
                    claimed.append(_Claimed(callback.id, account_id, callback.attempts, callback.max_retries,
                                            callback.retry_interval, request))
            return claimed

    def _record(self, claimed: list[_Claimed], results: list[AttemptResult], outcome: BatchOutcome) -> None:
        finished = self._now()
        with session_scope(self.database_url) as session:
            for item, result in zip(claimed, results, strict=True):
                callback = session.get(Callback, item.id)
                if callback is None or callback.status != "pending":
                    continue
                callback.attempts = item.attempts + 1
                session.add(CallbackAttempt(callback_id=item.id, at=finished - timedelta(milliseconds=result.latency_ms),
                                            status_code=result.status_code, latency_ms=result.latency_ms,
                                            error=result.error[:512] if result.error else None))
                step = next_step(callback.attempts, item.max_retries, result.status_code, result.error,
                                 retry_interval=item.retry_interval, permanent=result.permanent)
                if isinstance(step, Deliver):
                    callback.status, callback.delivered_at, callback.next_attempt_at = "delivered", finished, None
                    callback.last_error = None
                    outcome.delivered.append(item.id)
                elif isinstance(step, Retry):
                    callback.next_attempt_at = finished + timedelta(seconds=step.countdown)
                    callback.last_error = (result.error or f"HTTP {result.status_code}")[:512]
                    outcome.retries.append((item.id, step.countdown))
                else:
                    callback.status, callback.next_attempt_at = "dead", None
                    callback.last_error = step.reason[:512]
                    outcome.dead.append(item.id)


# --- operator functions (CLI) --------------------------------------------------------------


def _account_id(session: Session, login: str) -> int:
    account_id = session.scalar(select(Account.id).where(Account.login == login))
    if account_id is None:
        raise NotFound(f"no account {login!r}")
    return account_id


def list_callbacks(session: Session, *, status: str | None = None, account: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
    """Newest first: one dict per callback (id, account, kind, message_id, status, ...)."""
    if status is not None and status not in STATUSES:
        raise InvalidValue(f"status must be one of {', '.join(STATUSES)}")
    query = select(Callback, Account.login).join(Account, Account.id == Callback.account_id)
    if status:
        query = query.where(Callback.status == status)
    if account:
        query = query.where(Callback.account_id == _account_id(session, account))
    query = query.order_by(Callback.created_at.desc(), Callback.id.desc()).limit(limit)
    return [_view(callback, login) for callback, login in session.execute(query)]


def _field(callback: Callback, name: str) -> str | None:
    return next((str(value) for key, value in callback.fields if key == name), None)


def _view(callback: Callback, login: str) -> dict[str, Any]:
    return {
        "id": callback.id, "account": login, "kind": callback.kind,
        # The client's message_id as sent in the callback (MO: the MO's own id).
        "message_id": _field(callback, "message_id"), "status": callback.status, "attempts": callback.attempts,
        "max_retries": callback.max_retries, "last_error": callback.last_error,
        "next_attempt_at": utc(callback.next_attempt_at), "created_at": utc(callback.created_at),
        "delivered_at": utc(callback.delivered_at), "url": callback.url,
    }


def describe_callback(session: Session, callback_id: str) -> dict[str, Any]:
    callback = session.get(Callback, callback_id)
    if callback is None:
        raise NotFound(f"no callback {callback_id!r}")
    login = session.scalar(select(Account.login).where(Account.id == callback.account_id))
    view = _view(callback, login)
    view.update(
        internal_message_id=callback.message_id, mo_id=callback.mo_id, retry_interval=callback.retry_interval,
        fields=callback.fields,
        attempt_log=[{"at": utc(a.at), "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}
                     for a in callback.attempt_log],
    )
    return view


def replay(session: Session, *, ids: Iterable[str] = (), all_failed: bool = False, account: str | None = None,
           now: datetime, refresh_url: bool = True) -> list[str]:
    """Put dead callbacks back to pending (attempts reset, due now); returns their ids.
    Given ``ids``, each must exist; ones that are not dead are left alone (not returned).
    The caller commits, then enqueues the ids."""
    ids = list(dict.fromkeys(ids))
    if not ids and not all_failed:
        raise InvalidValue("give callback ids or --all-failed")
    query = select(Callback).where(Callback.status == "dead")
    if ids:
        found = set(session.scalars(select(Callback.id).where(Callback.id.in_(ids))))
        missing = [i for i in ids if i not in found]
        if missing:
            raise NotFound(f"no callback {', '.join(missing)}")
        query = query.where(Callback.id.in_(ids))
    if account:
        query = query.where(Callback.account_id == _account_id(session, account))
    replayed = []
    for callback in session.scalars(query.order_by(Callback.created_at, Callback.id)):
        if refresh_url:
            owner = session.get(Account, callback.account_id)
            current = owner.dr_url if callback.kind == "dr" else owner.mo_url
            callback.url = current or callback.url
        callback.status, callback.attempts, callback.next_attempt_at = "pending", 0, now
        callback.last_error, callback.delivered_at = None, None
        replayed.append(callback.id)
    return replayed


def replay_and_enqueue(database_url: str, enqueue: Callable[[list[str]], Any], **filters) -> list[str]:
    """`replay` in its own transaction, then ``enqueue(ids)`` after the commit."""
    with session_scope(database_url) as session:
        ids = replay(session, now=datetime.now(UTC), **filters)
    if ids:
        enqueue(ids)
    return ids


def sweep_due(session: Session, now: datetime, *, grace_seconds: float = SWEEP_GRACE_SECONDS,
              limit: int = 1000) -> list[str]:
    """Pending callbacks due for more than ``grace_seconds``: their task was lost."""
    cutoff = now - timedelta(seconds=grace_seconds)
    query = (select(Callback.id)
             .where(Callback.status == "pending",
                    or_(Callback.next_attempt_at <= cutoff,
                        and_(Callback.next_attempt_at.is_(None), Callback.created_at <= cutoff)))
             .order_by(Callback.next_attempt_at, Callback.created_at).limit(limit))
    return list(session.scalars(query))
