"""Celery tasks of the bulk area (thin: load by id, call one service function), and the
scheduler loop that runs inside ``smsagg beat``.

* ``smsagg.bulk.fanout(batch_id)``: record the batch, push its per-destination MT tasks
  (a destination that cannot be built is set aside and replayable:
  ``fanout(batch_id, [index])``).
* ``smsagg.bulk.persist(batch_id)``: record a scheduled batch in the database.
* The release loop: when beat starts (``beat_init``) it first rebuilds Redis from the
  database (schedule index, DND and opt-out sets, missing prepaid balances), then a
  thread of the beat process releases due schedules every
  ``SMSAGG_BULK_RELEASE_INTERVAL_SECONDS`` (0.5 s: a batch goes into its queue at most
  about half a second after its due time, whatever the workers are doing) and drains
  the credit journal into the ledger every few seconds. The release is one Lua script,
  so even two beats by mistake never release a batch twice.
"""

from __future__ import annotations

import logging
import threading
import time

from celery.signals import beat_init

from app.bulk import batches, credit
from app.bulk.resync import resync
from app.bulk.payloads import FANOUT_TASK, PERSIST_TASK
from app.bulk.runtime import default_store
from app.bulk.settings import get_bulk_settings
from app.db.session import session_scope
from app.settings import get_settings
from workers.base import SmsaggTask
from workers.celery_app import celery

log = logging.getLogger(__name__)

_DRAIN_EVERY_SECONDS = 5.0


@celery.task(name=PERSIST_TASK, base=SmsaggTask)
def persist(batch_id: str) -> None:
    with session_scope(get_settings().database_url) as session:
        batches.ensure_record(session, default_store(), batch_id)


@celery.task(name=FANOUT_TASK, base=SmsaggTask, bind=True)
def fanout(self, batch_id: str, indexes: list[int] | None = None) -> int:
    """Fan the batch out; with ``indexes``, push only those destinations (the replay of
    a dead letter: a destination whose payload could not be built is set aside, with
    this task and its index, on the dead letters of the batch's queue)."""
    store = default_store()
    if indexes is not None:
        return batches.fan_out_entries(store, batch_id, indexes)
    with session_scope(get_settings().database_url) as session:
        batches.ensure_record(session, store, batch_id)

    def set_aside(entry_indexes: list[int], error: Exception) -> None:
        self.set_aside([batch_id, entry_indexes], error)

    return batches.fan_out(store, batch_id, chunk=get_bulk_settings().fanout_chunk, set_aside=set_aside)


def release_once(now: float | None = None) -> list[str]:
    with session_scope(get_settings().database_url) as session:
        return batches.release_due(session, default_store(), time.time() if now is None else now)


def _release_loop(stop: threading.Event, interval: float) -> None:
    last_drain = 0.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            release_once()
            if started - last_drain >= _DRAIN_EVERY_SECONDS:
                with session_scope(get_settings().database_url) as session:
                    credit.drain_journal(session, default_store())
                last_drain = started
        except Exception:
            log.exception("bulk release loop: this round failed; trying again")
        stop.wait(max(0.0, interval - (time.monotonic() - started)))


_stop = threading.Event()


@beat_init.connect
def _start_release_loop(**_kwargs) -> None:
    try:
        resync()
    except Exception:
        log.exception("bulk resync at beat start failed; the release loop starts anyway")
    interval = get_bulk_settings().release_interval_seconds
    threading.Thread(target=_release_loop, args=(_stop, interval), name="bulk-release", daemon=True).start()
    log.info("bulk release loop started (every %.2fs)", interval)
