"""Sending the DR/MO callbacks of the outbox (``callbacks`` rows), recording every
attempt, dead-lettering, replaying, listing, and sweeping up lost tasks.

`CallbackService.send_batch(ids)`, one call per task, in three steps, each set-based
(a few statements per batch, never one per callback):

1. **Pick and claim** (one transaction). Only ``pending`` rows that are due
   (``next_attempt_at`` NULL or past, with ``DUE_SLACK_SECONDS`` for clock skew between
   hosts) are considered; delivered, dead and not-yet-due rows are skipped, so a
   redelivered or duplicated task sends nothing twice. Then:

   * Order per message: a callback is deferred while an earlier one of the same
     message (by ``created_at``, then ``id``) is still pending and due or about to be
     (``next_attempt_at`` within ``LEASE_SECONDS``: in flight, or its retry is close).
     An earlier callback in a long retry back-off does not hold the later ones.
   * Fair share per account: at most ``AccountSlots.per_account`` batches (worker
     threads) of this process send one account's callbacks at the same time, and one
     batch claims at most ``per_batch`` callbacks of an account; the rest are deferred.
     A slow client then holds a few worker threads at most, and other accounts'
     callbacks proceed; a fast client's whole batch goes at once.
   * Claim: ``UPDATE ... SET next_attempt_at = now + LEASE_SECONDS WHERE id IN (...)
     AND status = 'pending' AND due RETURNING id``. Only one task wins a row, so
     concurrent tasks (a retry and a sweep, a redelivery) never POST the same callback
     at the same time. The lease is short (``LEASE_SECONDS``) and renewed by the
     sending process every ``RENEW_EVERY_SECONDS`` (:class:`app.services.leases.LeaseKeeper`)
     until the send is over, however slow the client; the renewals stop (and wait for
     one in flight) before the outcome is recorded, so none overwrites it.

   Deferred callbacks are returned together (`BatchOutcome.deferred`) for one short
   ``countdown`` re-enqueue; their rows are untouched.
1b. **The endpoint's breaker** (with ``breakers``, :mod:`app.domain.circuit_breaker`,
   shared in Redis by :class:`app.adapters.endpoint_breakers.EndpointBreakers`): a closed
   endpoint's callbacks all go on. Of an open one's, only the probe (one per probe
   interval, across all workers) and any callback on its last attempt are sent; the
   others are *parked* (`BatchOutcome.parked`): added to the endpoint's parked set in
   Redis, and their rows made due at the end of their retry schedule (the backstop: a
   parked set lost with Redis delays them, never loses them). No task is enqueued for
   them. When a batch's 2xx closes the breaker, its parked callbacks are *released*
   (`release`, `BatchOutcome.released`): due now, each counted one attempt per
   ``retry_interval`` it spent parked (`parked_attempts`; one line in its attempt log),
   so an outage spends a callback's retries on the documented schedule and no faster;
   the task enqueues them at once, in full batches. `kick_probes` releases one parked
   callback of an open endpoint whose probe is due, for an endpoint nothing new arrives for.
2. **Send** every claimed callback (the `CallbackSender`), outside any transaction,
   each signed with its account's secret at send time.
3. **Record** (one transaction): a `CallbackAttempt` per try (time, status, latency,
   error), ``attempts + 1``, and the decision of `app.domain.callbacks.next_step`:
   delivered (all of the batch's in one ``UPDATE ... WHERE id IN``), retry at ``now +
   retry_interval`` (returned in `BatchOutcome.retries`), or dead. Then each endpoint's
   answers go to its breaker (nothing to write for a healthy endpoint).

The outbox guarantee: a pending row whose task was lost (pushed after a commit by a
process that then died; a retry held by a worker that was killed; a worker killed while
sending, whose lease then lapses) is found by `sweep_due` once its ``next_attempt_at``
is more than ``SWEEP_GRACE_SECONDS`` in the past, and enqueued again; every worker runs
that sweep every few seconds (``workers.callback_tasks``), so a killed sender's
callbacks go out again within about ``LEASE_SECONDS + SWEEP_GRACE_SECONDS`` plus one
sweep interval. Delivery is therefore at least once: the seed tells clients to
de-duplicate on ``message_id``.

A callback whose row breaks the sending itself (poison: an error that is not an
outage, see :mod:`app.services.failures`) is dead-lettered at once by `set_aside`,
with the error, and the rest of its batch goes on.

`replay` puts dead callbacks back to pending with ``attempts`` reset (their attempt
log is kept) and, by default, the account's current DR/MO URL, so a client who fixed
its endpoint gets them there. Enqueue the returned ids after the commit
(`replay_and_enqueue` does both).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, bindparam, insert, or_, select, update
from sqlalchemy.orm import Session

from app.adapters import metrics
from app.adapters.callback_http import (
    DEFAULT_PER_ACCOUNT,
    AttemptResult,
    CallbackRequest,
    CallbackSender,
)
from app.adapters.endpoint_breakers import EndpointBreakers
from app.db.models import Account, Callback, CallbackAttempt
from app.db.session import session_scope
from app.domain.callbacks import (
    Deliver,
    Retry,
    encode_fields,
    is_success,
    next_step,
    signed_headers,
)
from app.domain.circuit_breaker import (
    Admission,
    endpoint_of,
    is_last_attempt,
    park_deadline,
    parked_attempts,
)
from app.domain.priorities import CALLBACK_QUEUE
from app.services.errors import InvalidValue, NotFound
from app.services.failures import is_outage
from app.services.leases import LeaseKeeper

MAX_ROUNDS = 4
"""Claimed callbacks of one account in a batch: at most this many times the sender's
concurrency per account, so the batch ends within MAX_ROUNDS attempt ceilings."""
LEASE_SECONDS = 12
"""A claimed callback is not due again for this long; the process sending it renews
the lease every RENEW_EVERY_SECONDS until its attempt is recorded, however long the
client takes, so a dead sender's callbacks are due again within seconds and a live
slow one's never are."""
RENEW_EVERY_SECONDS = 3
DUE_SLACK_SECONDS = 2
DEFER_SECONDS = 2
"""Countdown of a deferred batch (order within a message, or the account's share is busy)."""
SWEEP_GRACE_SECONDS = 5
"""How long past due a pending callback must be before the sweeper re-enqueues it (its
task was lost, or its sender died and the lease lapsed)."""
STATUSES = ("pending", "delivered", "dead")


def utc(value: datetime | None) -> datetime | None:
    """Datetimes read back from SQLite are naive; everything here is UTC."""
    if value is None or value.tzinfo is not None:
        return value
    return value.replace(tzinfo=UTC)


class AccountSlots:
    """Batches in flight per account in this process, capped (thread-safe)."""

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
    parked: list[str] = field(default_factory=list)  # their endpoint's breaker is open: nothing to enqueue
    released: list[str] = field(default_factory=list)  # parked ones due now (a breaker closed): enqueue them
    skipped: list[str] = field(default_factory=list)  # not pending, not due, or claimed elsewhere


@dataclass(frozen=True)
class _Claimed:
    id: str
    account_id: int
    attempts: int
    max_retries: int
    retry_interval: int
    request: CallbackRequest
    parked_for: int = 0
    """Attempts counted for the time it spent parked (recorded with its next real one)."""


_CANDIDATE_COLUMNS = (Callback.id, Callback.account_id, Callback.message_id, Callback.created_at, Callback.status,
                      Callback.next_attempt_at, Callback.url, Callback.fields, Callback.attempts,
                      Callback.max_retries, Callback.retry_interval)
_callbacks = Callback.__table__
_RECORD = (update(_callbacks).where(_callbacks.c.id == bindparam("pk"))
           .values(status=bindparam("new_status"), attempts=bindparam("new_attempts"),
                   next_attempt_at=bindparam("next_at"), last_error=bindparam("error")))
"""A failed attempt's outcome, one row each (delivered ones are set in one statement)."""


RELEASE_CHUNK = 1000
"""Released callbacks read and updated per statement (all in one transaction)."""
_RELEASE = (update(_callbacks).where(_callbacks.c.id == bindparam("pk"), _callbacks.c.status == "pending")
            .values(attempts=bindparam("new_attempts"), next_attempt_at=None))
"""A released parked callback: due now, with the attempts counted for its time parked."""


def _with_parked(item: _Claimed, parked_at: float | None, now: float) -> _Claimed:
    counted = parked_attempts(attempts=item.attempts, max_retries=item.max_retries, parked_at=parked_at,
                              retry_interval=item.retry_interval, now=now)
    return replace(item, parked_for=counted) if counted else item


def _parked_note(callback_id: str, counted: int, at: datetime) -> dict[str, Any]:
    return dict(callback_id=callback_id, at=at, status_code=None, latency_ms=None,
                error=f"parked: its endpoint was down (probes failing); counted as {counted} attempt(s)")


def _due(now: datetime):
    next_at = _callbacks.c.next_attempt_at
    return or_(next_at.is_(None), next_at <= now + timedelta(seconds=DUE_SLACK_SECONDS))


def _held_by_earlier(session: Session, candidates: list, now: datetime) -> set[str]:
    """The candidates an earlier pending callback of the same message holds back."""
    message_ids = {c.message_id for c in candidates if c.message_id}
    if not message_ids:
        return set()
    first: dict[str, tuple[datetime, str]] = {}
    for row in session.execute(select(Callback.id, Callback.message_id, Callback.created_at).where(
            Callback.message_id.in_(message_ids), Callback.status == "pending",
            or_(Callback.next_attempt_at.is_(None),
                Callback.next_attempt_at <= now + timedelta(seconds=LEASE_SECONDS)))):
        key = (utc(row.created_at), row.id)
        if row.message_id not in first or key < first[row.message_id]:
            first[row.message_id] = key
    return {c.id for c in candidates
            if c.message_id in first and first[c.message_id] < (utc(c.created_at), c.id)}


class CallbackService:
    def __init__(self, database_url: str, sender: CallbackSender, *, slots: AccountSlots | None = None,
                 per_batch: int = MAX_ROUNDS * DEFAULT_PER_ACCOUNT, clock: Callable[[], float] = time.time,
                 breakers: EndpointBreakers | None = None) -> None:
        self.database_url = database_url
        self.sender = sender
        self.breakers = breakers
        self.slots = slots or AccountSlots()
        self.per_batch = per_batch
        self.clock = clock
        self.leases: LeaseKeeper[str] = LeaseKeeper(self._renew, RENEW_EVERY_SECONDS, "callback-leases")

    def _now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def send_batch(self, callback_ids: Sequence[str]) -> BatchOutcome:
        outcome = BatchOutcome()
        slotted: set[int] = set()  # accounts holding a slot for this batch
        try:
            probes: set[str] = set()  # endpoints this batch probes
            clean: set[str] = set()  # endpoints whose breaker was closed with no failures
            claimed = self._pick_and_claim(list(dict.fromkeys(callback_ids)), outcome, slotted, probes, clean)
            with self.leases.holding([c.id for c in claimed]):
                results = self.sender.send_many([c.request for c in claimed]) if claimed else []
        finally:
            for account_id in slotted:
                self.slots.give_back(account_id, 1)
        if claimed:
            self._record(claimed, results, outcome)
            if self.breakers is not None:
                self._report(claimed, results, probes, clean, outcome)
        _count(claimed, results, outcome)
        return outcome

    # --- the endpoints' circuit breakers -------------------------------------------------------

    def _pass_breakers(self, session: Session, claimed: list[_Claimed], probes: set[str], clean: set[str],
                       outcome: BatchOutcome) -> list[_Claimed]:
        """The claimed callbacks to send: all of a closed endpoint's; of an open one, the
        probe (if one is due) and any on its last attempt; the others are parked, in the
        claim's own transaction (one unit of work per batch, parked or sent)."""
        by_endpoint: dict[str, list[_Claimed]] = defaultdict(list)
        for item in claimed:
            by_endpoint[endpoint_of(item.request.url)].append(item)
        to_send: list[_Claimed] = []
        for endpoint, items in by_endpoint.items():
            admission, was_clean = self.breakers.admit(endpoint)
            if admission is Admission.SEND:
                to_send += items
                if was_clean:
                    clean.add(endpoint)
                continue
            now = self.clock()
            since = self.breakers.parked_since(endpoint, [i.id for i in items])
            counted = [_with_parked(item, parked_at, now) for item, parked_at in zip(items, since, strict=True)]
            last = {i.id for i in counted if is_last_attempt(attempts=i.attempts + i.parked_for,
                                                             max_retries=i.max_retries)}
            going = [i for i in counted if i.id in last]
            waiting = [i for i in counted if i.id not in last]
            if admission is Admission.PROBE:
                probes.add(endpoint)
                if waiting and not going:
                    going, waiting = [waiting[0]], waiting[1:]
            if waiting and not self._park(session, endpoint, waiting,
                                          since=dict(zip([i.id for i in items], since, strict=True)), outcome=outcome):
                going += waiting  # closed meanwhile: send them
            self.breakers.unpark(endpoint, [i.id for i in going])
            to_send += going
        return to_send

    def _park(self, session: Session, endpoint: str, items: list[_Claimed], *, since: dict[str, float | None],
              outcome: BatchOutcome) -> bool:
        """Parked in Redis, then due in the database at the end of their retry schedule
        (the backstop if the parked set is lost: sent then, never lost). ``session`` has
        claimed the rows and holds them until it commits, so a breaker closing meanwhile
        releases them (``next_attempt_at`` NULL, due) only after this update."""
        if not self.breakers.park(endpoint, [i.id for i in items]):
            return False
        now = self.clock()
        by_deadline: dict[datetime, list[str]] = defaultdict(list)
        for item in items:
            deadline = park_deadline(attempts=item.attempts, max_retries=item.max_retries,
                                     parked_at=since.get(item.id) or now, retry_interval=item.retry_interval)
            by_deadline[datetime.fromtimestamp(int(deadline) + 1, UTC)].append(item.id)
        for deadline, ids in by_deadline.items():
            session.execute(update(_callbacks).where(_callbacks.c.id.in_(ids), _callbacks.c.status == "pending")
                            .values(next_attempt_at=deadline))
        outcome.parked.extend(i.id for i in items)
        return True

    def _report(self, sent: list[_Claimed], results: list[AttemptResult], probes: set[str], clean: set[str],
                outcome: BatchOutcome) -> None:
        """Each endpoint's answers to its breaker; one that closes releases its parked callbacks."""
        tally: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        for item, result in zip(sent, results, strict=True):
            counts = tally[endpoint_of(item.request.url)]
            if is_success(result.status_code):
                counts[0] += 1
            elif not result.permanent:
                counts[1] += 1
        for endpoint, (successes, failures) in tally.items():
            if endpoint in clean and not failures:
                continue  # closed, no failures before or now: nothing changes
            taken = self.breakers.record(endpoint, successes=successes, failures=failures, probe=endpoint in probes)
            if taken:
                outcome.released.extend(self.release(taken))

    def release(self, parked: list[tuple[str, float]]) -> list[str]:
        """Make parked callbacks (id, parked at) due now, each counted for the retry
        intervals it spent parked (one line in its attempt log); returns the pending ones,
        oldest first, for the caller to enqueue."""
        now = self._now()
        released: list[str] = []
        with session_scope(self.database_url) as session:
            for start in range(0, len(parked), RELEASE_CHUNK):
                chunk = dict(parked[start:start + RELEASE_CHUNK])
                rows = session.execute(select(Callback.id, Callback.attempts, Callback.max_retries,
                                              Callback.retry_interval)
                                       .where(Callback.id.in_(list(chunk)), Callback.status == "pending")).all()
                changes, notes = [], []
                for row in rows:
                    counted = parked_attempts(attempts=row.attempts, max_retries=row.max_retries,
                                              parked_at=chunk[row.id], retry_interval=row.retry_interval,
                                              now=now.timestamp())
                    changes.append(dict(pk=row.id, new_attempts=row.attempts + counted))
                    if counted:
                        notes.append(_parked_note(row.id, counted, now))
                if changes:
                    session.execute(_RELEASE, changes)
                if notes:
                    session.execute(insert(CallbackAttempt.__table__), notes)
                pending = {row.id for row in rows}
                released += [i for i in chunk if i in pending]
        return released

    def kick_probes(self) -> list[str]:
        """For every open endpoint whose probe is due: one parked callback released to
        carry it (when nothing else arrives for that endpoint). Returns the ids to enqueue."""
        if self.breakers is None:
            return []
        kicked = []
        for endpoint in self.breakers.open_endpoints():
            taken = self.breakers.take_for_probe(endpoint)
            if taken is not None:
                kicked += self.release([taken])
        return kicked

    def _renew(self, callback_ids: Collection[str]) -> None:
        """Push the leases of callbacks being sent back to now + ``LEASE_SECONDS``."""
        with session_scope(self.database_url) as session:
            session.execute(update(_callbacks)
                            .where(_callbacks.c.id.in_(list(callback_ids)), _callbacks.c.status == "pending")
                            .values(next_attempt_at=self._now() + timedelta(seconds=LEASE_SECONDS)))

    def set_aside(self, callback_id: str, error: BaseException) -> None:
        """A callback that cannot be sent (its row breaks the sender, a bug) is dead-lettered
        with the error, like one that exhausted its retries (``smsagg callbacks replay``)."""
        self._dead_letter_alone(callback_id, error)
        metrics.DEAD_LETTERS.inc(CALLBACK_QUEUE)

    def _dead_letter_alone(self, callback_id: str, error: BaseException) -> None:
        with session_scope(self.database_url) as session:
            _dead_letter(session, callback_id, error)

    def _pick_and_claim(self, ids: list[str], outcome: BatchOutcome, slotted: set[int], probes: set[str],
                        clean: set[str]) -> list[_Claimed]:
        now = self._now()
        with session_scope(self.database_url) as session:
            rows = {c.id: c for c in session.execute(select(*_CANDIDATE_COLUMNS).where(Callback.id.in_(ids)))}
            due = [rows[i] for i in ids if i in rows and _is_due(rows[i], now)]
            outcome.skipped.extend(i for i in ids if i not in rows or not _is_due(rows[i], now))
            held = _held_by_earlier(session, due, now)
            outcome.deferred.extend(c.id for c in due if c.id in held)
            chosen = self._share([c for c in due if c.id not in held], outcome, slotted)
            if not chosen:
                return []
            won, secrets = _claim(session, chosen, now)
            outcome.skipped.extend(c.id for c in chosen if c.id not in won)
            signed_at = self.clock()
            claimed = []
            for callback in (c for c in chosen if c.id in won):
                try:
                    body = encode_fields(callback.fields)
                    request = CallbackRequest(callback.id, callback.account_id, callback.url, body,
                                              signed_headers(secrets[callback.account_id], signed_at, body))
                except Exception as error:  # a row no request can be made of: dead, the rest go on
                    if is_outage(error):
                        raise
                    _dead_letter(session, callback.id, error)
                    outcome.dead.append(callback.id)
                    continue
                claimed.append(_Claimed(callback.id, callback.account_id, callback.attempts, callback.max_retries,
                                        callback.retry_interval, request))
            if self.breakers is not None and claimed:
                claimed = self._pass_breakers(session, claimed, probes, clean, outcome)
        return claimed

    def _share(self, ready: list, outcome: BatchOutcome, slotted: set[int]) -> list:
        """Per account: a slot for this batch and at most ``per_batch`` callbacks, or deferred."""
        by_account: dict[int, list] = defaultdict(list)
        for callback in ready:
            by_account[callback.account_id].append(callback)
        chosen = []
        for account_id, callbacks in by_account.items():
            granted = 0
            if self.slots.take(account_id, 1):
                slotted.add(account_id)
                granted = self.per_batch
            chosen.extend(callbacks[:granted])
            outcome.deferred.extend(c.id for c in callbacks[granted:])
        return chosen

    def _record(self, claimed: list[_Claimed], results: list[AttemptResult], outcome: BatchOutcome) -> None:
        """All the attempts in one transaction; if that fails for another reason than an
        outage, each on its own, and one that still cannot be recorded is dead-lettered
        (it was sent: never sent again on its own account)."""
        try:
            self._record_together(claimed, results, outcome)
        except Exception as error:
            if is_outage(error) or len(claimed) == 1:
                raise
            for item, result in zip(claimed, results, strict=True):
                try:
                    self._record_together([item], [result], outcome)
                except Exception as alone:
                    if is_outage(alone):
                        raise
                    self._dead_letter_alone(item.id, alone)
                    outcome.dead.append(item.id)  # counted with the batch

    def _record_together(self, claimed: list[_Claimed], results: list[AttemptResult], outcome: BatchOutcome) -> None:
        finished = self._now()
        with session_scope(self.database_url) as session:
            pending = set(session.scalars(select(Callback.id).where(Callback.id.in_([c.id for c in claimed]),
                                                                    Callback.status == "pending")))
            attempts, changes = [], []
            delivered: dict[int, list[str]] = defaultdict(list)  # attempts so far -> ids
            for item, result in zip(claimed, results, strict=True):
                if item.id not in pending:
                    continue
                if item.parked_for:
                    attempts.append(_parked_note(item.id, item.parked_for, finished))
                attempts.append(dict(callback_id=item.id, at=finished - timedelta(milliseconds=result.latency_ms),
                                     status_code=result.status_code, latency_ms=result.latency_ms,
                                     error=result.error[:512] if result.error else None))
                change = _decide(item, result, finished, outcome)
                if change is None:
                    delivered[item.attempts + item.parked_for + 1].append(item.id)
                else:
                    changes.append(change)
            if attempts:
                session.execute(insert(CallbackAttempt.__table__), attempts)
            for count, ids in delivered.items():
                session.execute(update(_callbacks).where(_callbacks.c.id.in_(ids)).values(
                    status="delivered", attempts=count, next_attempt_at=None, delivered_at=finished, last_error=None))
            if changes:
                session.execute(_RECORD, changes)


def _count(claimed: list[_Claimed], results: list[AttemptResult], outcome: BatchOutcome) -> None:
    """The recorded attempts by outcome, with their latency; retries; dead letters."""
    decided = {**{i: "delivered" for i in outcome.delivered}, **{i: "retry" for i, _ in outcome.retries},
               **{i: "dead" for i in outcome.dead}}
    for item, result in zip(claimed, results):
        kind = decided.get(item.id)
        if kind is not None:
            metrics.CALLBACKS.inc(kind)
            metrics.CALLBACK_SECONDS.observe(kind, value=result.latency_ms / 1000)
    metrics.RETRIES.inc(CALLBACK_QUEUE, amount=len(outcome.retries))
    metrics.DEAD_LETTERS.inc(CALLBACK_QUEUE, amount=len(outcome.dead))


def _dead_letter(session: Session, callback_id: str, error: BaseException) -> None:
    session.execute(update(_callbacks).where(_callbacks.c.id == callback_id, _callbacks.c.status == "pending")
                    .values(status="dead", next_attempt_at=None,
                            last_error=f"cannot be sent: {type(error).__name__}: {error}"[:512]))


def _claim(session: Session, chosen: list, now: datetime) -> tuple[set[str], dict[int, str]]:
    """The ids this task won (leased for ``LEASE_SECONDS``), and the accounts' secrets."""
    won = set(session.scalars(
        update(_callbacks)
        .where(_callbacks.c.id.in_([c.id for c in chosen]), _callbacks.c.status == "pending", _due(now))
        .values(next_attempt_at=now + timedelta(seconds=LEASE_SECONDS))
        .returning(_callbacks.c.id)))
    secrets = dict(session.execute(select(Account.id, Account.callback_secret)
                                   .where(Account.id.in_({c.account_id for c in chosen}))).all())
    return won, secrets


def _is_due(callback, now: datetime) -> bool:
    next_at = utc(callback.next_attempt_at)
    return callback.status == "pending" and (next_at is None or next_at <= now + timedelta(seconds=DUE_SLACK_SECONDS))


def _decide(item: _Claimed, result: AttemptResult, finished: datetime, outcome: BatchOutcome
            ) -> dict[str, Any] | None:
    """The decision of ``next_step`` on this attempt, noted in ``outcome``: None if the
    callback is delivered (recorded for all of them at once), else the row's new values."""
    attempts = item.attempts + item.parked_for + 1
    step = next_step(attempts, item.max_retries, result.status_code, result.error,
                     retry_interval=item.retry_interval, permanent=result.permanent)
    if isinstance(step, Deliver):
        outcome.delivered.append(item.id)
        return None
    change = dict(pk=item.id, new_attempts=attempts, new_status="pending", next_at=None, error=None)
    if isinstance(step, Retry):
        change.update(next_at=finished + timedelta(seconds=step.countdown),
                      error=(result.error or f"HTTP {result.status_code}")[:512])
        outcome.retries.append((item.id, step.countdown))
    else:
        change.update(new_status="dead", error=step.reason[:512])
        outcome.dead.append(item.id)
    return change


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
    # Tolerant: a dead-lettered row may be the malformed one an operator is looking at.
    return next((str(pair[1]) for pair in callback.fields or ()
                 if isinstance(pair, (list, tuple)) and len(pair) == 2 and pair[0] == name), None)


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
