"""Each worker and beat process flushes what it counted (:mod:`app.adapters.metrics`)
to Redis, where ``GET /metrics`` on any ingress reads the whole gateway's totals.

The flusher starts where the heartbeat does (:mod:`workers.heartbeat`): in a worker's
main process once it is ready, in each child of a ``prefork`` pool once it is
initialised (a child starts counting from nothing), in beat once it has started; it
flushes a last time when the process stops.
"""

from __future__ import annotations

import functools

from celery.signals import beat_init, worker_process_init, worker_process_shutdown, worker_ready, worker_shutdown

from app.adapters.metrics import MetricsFlusher, process_flusher
from app.adapters.redis_scripts import RedisKeys, connect
from app.settings import get_settings


@functools.cache
def _client():
    return connect(get_settings().require_redis_url())


def _flusher() -> MetricsFlusher:
    settings = get_settings()
    return process_flusher(_client(), RedisKeys(settings.key_prefix).metrics(), settings.metrics_flush_seconds)


@worker_ready.connect
@beat_init.connect
@worker_process_init.connect
def _process_ready(**_kwargs) -> None:
    _flusher().start()


@worker_process_shutdown.connect
@worker_shutdown.connect
def _stopping(**_kwargs) -> None:
    _flusher().stop()
