"""Inbound tasks: receipts and MO in batches drained from the ``inbound`` list; periodically, re-matching held receipts
and releasing concatenated MOs whose missing parts never came."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone

from app.adapters import stage_queue
from app.adapters.stage_queue import INBOUND_DRAIN_TASK
from app.db.session import session_scope
from app.domain.priorities import INBOUND_QUEUE
from app.domain.task_names import INBOUND_REMATCH_TASK
from app.services.callback_outbox import take_new_callbacks
from app.services.failures import handle_isolating
from app.services.inbound import process_items
from workers.base import SmsaggTask
from workers.celery_app import celery
from workers.services import worker_services

DRAIN_BATCH = 500
HELD_RECHECK_SECONDS = 1.0
"""A receipt that overtook its submit_sm_resp is tried again this soon (the MT stage
commits its batch within about a second), not only at beat's next rematch."""


def _in_unit_of_work(work):
    services = worker_services()
    with session_scope(services.settings.database_url) as session:
        result = work(services, session, datetime.now(timezone.utc))
        callbacks = take_new_callbacks(session)
    services.notify_callbacks(callbacks)
    return result


def _process(raw_items: Sequence[str]) -> int:
    items = [stage_queue.decode(raw) for raw in raw_items]
    return _in_unit_of_work(lambda services, session, now: process_items(services.inbound, session, items, now))


@celery.task(name=INBOUND_DRAIN_TASK, base=SmsaggTask, queue=INBOUND_QUEUE, bind=True)
def inbound_drain(self) -> int:
    """A batch of receipts and MOs from the ``inbound`` list (``app.adapters.stage_queue``),
    claimed under a lease; retried under the same task id, it gets the same batch. An
    item that cannot be processed is set aside and the rest of the batch goes on."""
    with worker_services().stages.claimed(INBOUND_QUEUE, self.request.id, DRAIN_BATCH) as batch:
        if batch.items:
            held = sum(handle_isolating(batch.items, _process, batch.set_aside, what="inbound batch"))
            if held:
                rematch_receipts.apply_async(countdown=HELD_RECHECK_SECONDS)
    return len(batch.items)


@celery.task(name=INBOUND_REMATCH_TASK, base=SmsaggTask, queue=INBOUND_QUEUE)
def rematch_receipts() -> None:
    """Beat, every few seconds: receipts that overtook their submit_sm_resp, and MOs
    still incomplete after ``MO_PARTS_TIMEOUT``."""
    _in_unit_of_work(_rematch_and_release)


def _rematch_and_release(services, session, now: datetime) -> None:
    services.inbound.rematch_pending(session, now)
    services.inbound.release_expired_mo(session, now)
