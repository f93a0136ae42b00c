"""Each worker and beat process flushes what it counted (:mod:`app.adapters.metrics`)
to Redis, where ``GET /metrics`` on any ingress reads the whole gateway's totals.

The flusher starts where the heartbeat does (:mod:`workers.heartbeat`): in a worker's
main process once it is ready, in each child of a ``prefork`` pool once it is
initialised (a child starts counting from nothing), in beat once it has started; it
flushes a last time when the process stops.
"""

from __future__ import annotations

import os

from celery.signals import beat_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from app.adapters.metrics import MetricsFlusher
from app.adapters.redis_scripts import RedisKeys, connect
from app.settings import get_settings

_flushers: dict[int, MetricsFlusher] = {}  # by pid: a forked child must not stop its parent's


def _start() -> None:
    pid = os.getpid()
    if pid in _flushers:
        return
    settings = get_settings()
    flusher = MetricsFlusher(connect(settings.require_redis_url()), RedisKeys(settings.key_prefix).metrics(),
                             settings.metrics_flush_seconds)
    _flushers[pid] = flusher
    flusher.start()


@worker_ready.connect
@beat_init.connect
def _process_ready(**_kwargs) -> None:
    _start()


@worker_process_init.connect
def _pool_child_ready(**_kwargs) -> None:
    _flushers.clear()  # entries inherited from the parent belong to the parent
    _start()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _stopping(**_kwargs) -> None:
    flusher = _flushers.pop(os.getpid(), None)
    if flusher is not None:
        flusher.stop()
