"""Heartbeats of the worker and beat processes (:mod:`app.adapters.heartbeats`).

* A worker beats from the process that runs its tasks: the main process once it is
  ready (``solo`` and ``threads`` pools), and each child of a ``prefork`` pool once it
  is initialised; it reports its queues, its SMPP binds per carrier and the items its
  stages' tasks handled (counted in ``task_postrun`` from what the tasks return).
* Beat beats once it has started.

A clean stop deletes the process's key; a killed process's key expires by itself.
"""

from __future__ import annotations

import atexit
import os

from celery.signals import (
    beat_init,
    task_postrun,
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from app.adapters.callback_queue import SEND_BATCH_TASK, SEND_ONE_TASK
from app.adapters.heartbeats import Heartbeat, Throughput
from app.adapters.redis_scripts import connect
from app.adapters.stage_queue import DRAIN_TASKS
from app.domain.priorities import CALLBACK_QUEUE
from app.settings import get_settings

COUNTED_TASKS = {**{task: queue for queue, task in DRAIN_TASKS.items()},
                 SEND_BATCH_TASK: CALLBACK_QUEUE, SEND_ONE_TASK: CALLBACK_QUEUE}
"""Tasks whose return value is the number of items they handled, and their stage."""

_throughput = Throughput()
_heartbeats: dict[int, Heartbeat] = {}  # by pid: a forked child must not stop its parent's


def _bind_status() -> dict[int, tuple[int, int]]:
    from workers.services import worker_services

    if not worker_services.cache_info().currsize:
        return {}
    return worker_services().connectors.bind_status()


def _start(part: str, queues: tuple[str, ...] = ()) -> None:
    pid = os.getpid()
    if pid in _heartbeats:
        return
    settings = get_settings()
    heartbeat = Heartbeat(connect(settings.require_redis_url()), settings.key_prefix, part, queues=queues,
                          binds=_bind_status if part == "worker" else None,
                          throughput=_throughput if part == "worker" else None)
    _heartbeats[pid] = heartbeat
    heartbeat.start()


def _stop() -> None:
    heartbeat = _heartbeats.pop(os.getpid(), None)
    if heartbeat is not None:
        heartbeat.stop()


def _consumed_queues(app) -> tuple[str, ...]:
    return tuple(sorted(app.amqp.queues.consume_from))


@worker_ready.connect
def _worker_ready(sender, **_kwargs) -> None:
    _start("worker", _consumed_queues(sender.app))


@worker_process_init.connect
def _pool_child_ready(sender=None, **_kwargs) -> None:
    from workers.celery_app import celery

    _heartbeats.clear()  # entries inherited from the parent belong to the parent
    _start("worker", _consumed_queues(celery))


@worker_process_shutdown.connect
@worker_shutdown.connect
def _worker_stopping(**_kwargs) -> None:
    _stop()


@beat_init.connect
def _beat_ready(**_kwargs) -> None:
    _start("beat")
    atexit.register(_stop)


@task_postrun.connect
def _count_handled(task=None, retval=None, state=None, **_kwargs) -> None:
    stage = COUNTED_TASKS.get(getattr(task, "name", ""))
    if stage is not None and state == "SUCCESS" and isinstance(retval, int) and retval > 0:
        _throughput.add(stage, retval)
