"""Callback tasks (queue ``callbacks``): thin. The logic is in ``app.services.callbacks``.

* ``smsagg.callbacks.send_batch(ids)``: what the inbound side enqueues after its commit
  (``app.adapters.callback_queue.enqueue_callbacks``); sends them concurrently.
* Retries: the failed callbacks of a batch due at the same time go back together as
  one ``send_batch`` with ``countdown = retry_interval`` (the account's, 600 s by
  default). A countdown above ``celeryconfig.MAX_COUNTDOWN_SECONDS`` is never used
  (DESIGN.md, "Time": it must stay well under the visibility timeout): such a retry is
  left to the sweeper, which enqueues it once it is past due.
* ``smsagg.callbacks.send_one(id)``: one callback (retries queued by earlier versions).
* ``smsagg.callbacks.sweep()``: re-enqueues pending callbacks whose task was lost or
  whose sender died (on demand; every worker also runs it every few seconds, one of
  them per interval: ``sweep_lost_callbacks_if_due``, started in ``workers.celery_app``).

Deferred callbacks (order within a message, the account's share busy) go back as one
``send_batch`` with a short countdown and some jitter. Parked callbacks (their
endpoint's breaker is open) are not enqueued at all: the batch whose probe closes the
breaker enqueues them all at once (``MAX_BATCH`` per task), and the sweep also kicks a
probe for an open endpoint to which nothing new arrives (``kick_probes``).

One sender per worker process: its kept-alive connections serve every thread's
batches, and are closed when the worker (or a pool child) stops.
"""

from __future__ import annotations

import functools
import logging
import random
from collections import defaultdict
from datetime import UTC, datetime

from celery.signals import worker_process_shutdown, worker_shutdown

from app.adapters.callback_http import DEFAULT_PER_ACCOUNT, AiohttpCallbackSender
from app.adapters.callback_queue import (
    MAX_BATCH,
    SEND_BATCH_TASK,
    SEND_ONE_TASK,
    SWEEP_TASK,
    enqueue_callbacks,
)
from app.adapters.endpoint_breakers import EndpointBreakers
from app.adapters.redis_scripts import connect
from app.db.session import session_scope
from app.domain.circuit_breaker import BreakerPolicy
from app.domain.priorities import CALLBACK_QUEUE
from app.services.callbacks import (
    MAX_ROUNDS,
    SWEEP_GRACE_SECONDS,
    AccountSlots,
    BatchOutcome,
    CallbackService,
    sweep_due,
)
from app.services.failures import handle_isolating
from app.settings import get_settings
from celeryconfig import MAX_COUNTDOWN_SECONDS
from workers.base import SmsaggTask
from workers.celery_app import celery

log = logging.getLogger(__name__)
BATCHES_PER_ACCOUNT = 4
"""Worker threads of this process that one account's callbacks may hold at once."""


@functools.cache
def callback_sender() -> AiohttpCallbackSender:
    return AiohttpCallbackSender(allow_private=get_settings().allow_private_callbacks, per_account=DEFAULT_PER_ACCOUNT)


@functools.cache
def callback_service() -> CallbackService:
    """One per worker process (its per-account slots are process-wide); the endpoints'
    breakers are shared by every worker, in Redis."""
    settings = get_settings()
    breakers = None
    if settings.callback_breaker_failures:
        policy = BreakerPolicy(failures_to_open=settings.callback_breaker_failures,
                               probe_interval=settings.callback_probe_seconds)
        breakers = EndpointBreakers(_redis(), policy, prefix=settings.key_prefix)
    return CallbackService(settings.database_url, callback_sender(), slots=AccountSlots(BATCHES_PER_ACCOUNT),
                           per_batch=MAX_ROUNDS * DEFAULT_PER_ACCOUNT, breakers=breakers)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_callback_connections(**_kwargs) -> None:
    if callback_sender.cache_info().currsize:
        callback_sender().close()


@functools.cache
def _redis():
    return connect(get_settings().require_redis_url())


def _follow_up(outcome: BatchOutcome) -> int:
    """Schedule the retries and the deferred; returns how many callbacks were sent.
    Retries due together go as one batch (a client that is down fails a whole batch:
    one task and two transactions per batch, not per callback, when it is retried)."""
    due_together: dict[int, list[str]] = defaultdict(list)
    for callback_id, countdown in outcome.retries:
        if countdown <= MAX_COUNTDOWN_SECONDS:
            due_together[countdown].append(callback_id)
        else:
            log.info("callback %s: retry in %ss is beyond the countdown limit; the sweeper sends it", callback_id,
                     countdown)
    for countdown, ids in due_together.items():
        for start in range(0, len(ids), MAX_BATCH):
            send_batch.apply_async((ids[start:start + MAX_BATCH],), countdown=countdown)
    if outcome.deferred:
        send_batch.apply_async((outcome.deferred,), countdown=outcome.defer_seconds + random.uniform(0, 1))
    if outcome.released:
        enqueue_callbacks(_redis(), outcome.released)
        log.info("callbacks: %d parked callback(s) released (their endpoint answers again)", len(outcome.released))
    return len(outcome.delivered) + len(outcome.retries) + len(outcome.dead)


def _send(callback_ids: list[str]) -> int:
    """Send these callbacks; one whose row breaks the sending is dead-lettered with its
    error (``smsagg callbacks list --failed``) and the others go on. Returns how many
    were sent (the heartbeat's throughput, ``workers.heartbeat``)."""
    service = callback_service()
    return sum(_follow_up(outcome)
               for outcome in handle_isolating(callback_ids, service.send_batch, service.set_aside,
                                               what="callback batch"))


@celery.task(name=SEND_BATCH_TASK, base=SmsaggTask, queue=CALLBACK_QUEUE)
def send_batch(callback_ids: list[str]) -> int:
    return _send(callback_ids)


@celery.task(name=SEND_ONE_TASK, base=SmsaggTask, queue=CALLBACK_QUEUE)
def send_one(callback_id: str) -> int:
    return _send([callback_id])


def sweep_lost_callbacks(*, grace_seconds: float = SWEEP_GRACE_SECONDS, limit: int = 1000) -> int:
    """Pending callbacks past due (lost task, dead sender): enqueued again."""
    with session_scope(get_settings().database_url) as session:
        ids = sweep_due(session, datetime.now(UTC), grace_seconds=grace_seconds, limit=limit)
    if ids:
        log.warning("callbacks sweeper: %d pending callback(s) past due, enqueued again", len(ids))
        enqueue_callbacks(_redis(), ids)
    return len(ids)


SWEEP_BELOW_WAITING_TASKS = 50
"""While more task messages than this wait on the queue, a backlog is being worked and
what looks lost is most likely waiting in it: the periodic sweep then takes only
callbacks past due for ``BACKLOG_SWEEP_GRACE_SECONDS``, one batch at a time, so one
whose task really was lost (its push failed while Redis was away, a killed worker's
countdown) waits a minute, not until the backlog is gone."""
BACKLOG_SWEEP_GRACE_SECONDS = 60


def sweep_lost_callbacks_if_due(every: float) -> int | None:
    """:func:`sweep_lost_callbacks` (and :func:`kick_probes`), by one worker of the
    gateway per interval (a lock in Redis); under a backlog, only the long-lost."""
    lock = f"{get_settings().key_prefix}callbacks:sweeping"
    if not _redis().set(lock, "1", nx=True, px=max(1, int(every * 1000) - 100)):
        return None
    kick_probes()
    if _redis().llen(CALLBACK_QUEUE) > SWEEP_BELOW_WAITING_TASKS:
        return sweep_lost_callbacks(grace_seconds=BACKLOG_SWEEP_GRACE_SECONDS, limit=MAX_BATCH)
    return sweep_lost_callbacks()


def kick_probes() -> int:
    """An open endpoint whose probe is due and to which nothing new arrives: one of its
    parked callbacks is enqueued to carry the probe."""
    ids = callback_service().kick_probes()
    if ids:
        enqueue_callbacks(_redis(), ids)
    return len(ids)


@celery.task(name=SWEEP_TASK, base=SmsaggTask, queue=CALLBACK_QUEUE)
def sweep() -> int:
    return sweep_lost_callbacks()
