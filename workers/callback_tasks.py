"""Callback tasks (queue ``callbacks``): thin. The logic is in ``app.services.callbacks``.

* ``smsagg.callbacks.send_batch(ids)``: what the inbound side enqueues after its commit
  (``app.adapters.callback_queue.enqueue_callbacks``); sends them concurrently.
* ``smsagg.callbacks.send_one(id)``: the retry of one failed callback, sent with
  ``countdown = retry_interval`` (the account's, 600 s by default). A countdown above
  ``celeryconfig.MAX_COUNTDOWN_SECONDS`` is never used (DESIGN.md, "Time": it must stay
  well under the visibility timeout): such a retry is left to the sweeper, which
  enqueues it once it is past due.
* ``smsagg.callbacks.sweep()``: beat, every minute: re-enqueues pending callbacks whose
  task was lost.

Deferred callbacks (order within a message, the account's share busy) go back as one
``send_batch`` with a short countdown and some jitter.

One sender per worker process: its kept-alive connections serve every thread's
batches, and are closed when the worker (or a pool child) stops.
"""

from __future__ import annotations

import functools
import logging
import random
from datetime import UTC, datetime

from celery.signals import worker_process_shutdown, worker_shutdown

from app.adapters.callback_http import DEFAULT_PER_ACCOUNT, AiohttpCallbackSender
from app.adapters.callback_queue import (
    SEND_BATCH_TASK,
    SEND_ONE_TASK,
    SWEEP_TASK,
    enqueue_callbacks,
)
from app.adapters.redis_scripts import connect
from app.db.session import session_scope
from app.domain.priorities import CALLBACK_QUEUE
from app.services.callbacks import (
    MAX_ROUNDS,
    AccountSlots,
    BatchOutcome,
    CallbackService,
    sweep_due,
)
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
    """One per worker process (its per-account slots are process-wide)."""
    return CallbackService(get_settings().database_url, callback_sender(), slots=AccountSlots(BATCHES_PER_ACCOUNT),
                           per_batch=MAX_ROUNDS * DEFAULT_PER_ACCOUNT)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _close_callback_connections(**_kwargs) -> None:
    if callback_sender.cache_info().currsize:
        callback_sender().close()


@functools.cache
def _redis():
    return connect(get_settings().require_redis_url())


def _follow_up(outcome: BatchOutcome) -> int:
    """Schedule the retries and the deferred; returns how many callbacks were sent."""
    for callback_id, countdown in outcome.retries:
        if countdown <= MAX_COUNTDOWN_SECONDS:
            send_one.apply_async((callback_id,), countdown=countdown)
        else:
            log.info("callback %s: retry in %ss is beyond the countdown limit; the sweeper sends it", callback_id,
                     countdown)
    if outcome.deferred:
        send_batch.apply_async((outcome.deferred,), countdown=outcome.defer_seconds + random.uniform(0, 1))
    return len(outcome.delivered) + len(outcome.retries) + len(outcome.dead)


@celery.task(name=SEND_BATCH_TASK, base=SmsaggTask, queue=CALLBACK_QUEUE)
def send_batch(callback_ids: list[str]) -> int:
    return _follow_up(callback_service().send_batch(callback_ids))


@celery.task(name=SEND_ONE_TASK, base=SmsaggTask, queue=CALLBACK_QUEUE)
def send_one(callback_id: str) -> int:
    return _follow_up(callback_service().send_batch([callback_id]))


@celery.task(name=SWEEP_TASK, base=SmsaggTask, queue=CALLBACK_QUEUE)
def sweep() -> int:
    with session_scope(get_settings().database_url) as session:
        ids = sweep_due(session, datetime.now(UTC))
    if ids:
        log.warning("callbacks sweeper: %d pending callback(s) past due, enqueued again", len(ids))
        enqueue_callbacks(_redis(), ids)
    return len(ids)
