"""The Celery application. Workers import this, never Flask."""

from __future__ import annotations

import logging

from celery import Celery
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from app.db.session import dispose_engines
from app.services.leases import Periodic

log = logging.getLogger(__name__)

celery = Celery("smsagg")
celery.config_from_object("celeryconfig")


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    """Children of a prefork pool must not share the parent's pooled sockets."""
    dispose_engines()


SWEEPS_EVERY_SECONDS = 2.0
"""How often each worker offers to sweep (lapsed leases, due delays, lost drains, lost
callbacks); one worker of the gateway does it per interval."""
_sweepers: list[Periodic] = []


@worker_ready.connect
def _start_delivering(**_kwargs) -> None:
    """Bind to every SMPP carrier as soon as the worker is up, so receipts and MO
    messages are received even by a gateway that has not sent anything yet; sweep
    once at once (a drain wherever accepted messages wait without one, after a
    restart), then every few seconds, without depending on beat."""
    from workers.callback_tasks import sweep_lost_callbacks_if_due
    from workers.services import worker_services

    services = worker_services()
    _sweepers[:] = [
        Periodic(lambda: services.stages.sweep_if_due(SWEEPS_EVERY_SECONDS), SWEEPS_EVERY_SECONDS,
                 "stage-sweep").start(),
        Periodic(lambda: sweep_lost_callbacks_if_due(SWEEPS_EVERY_SECONDS), SWEEPS_EVERY_SECONDS,
                 "callback-sweep").start(),
    ]
    try:
        services.stages.sweep()
        services.connectors.connect_all(services.carriers.current().carriers)
    except Exception:
        log.warning("sweeping or binding at start-up failed (a backing service is away?); the periodic sweep "
                    "and the first submit try again", exc_info=True)


@worker_process_shutdown.connect
@worker_shutdown.connect
def _unbind_carriers(**_kwargs) -> None:
    """Stop sweeping and unbind SMPP links cleanly when a worker (or a pool child) stops."""
    from workers.services import close_worker_services

    for sweeper in _sweepers:
        sweeper.stop()
    close_worker_services()


import workers.bulk_tasks  # noqa: E402,F401  (bulk fan-out, schedule release in beat)
import workers.callback_tasks  # noqa: E402,F401  (DR/MO callbacks: send, retry, sweep)
import workers.heartbeat  # noqa: E402,F401  (workers and beat say they are alive: smsagg status)
import workers.inbound_tasks  # noqa: E402,F401  (receipts and MO)
import workers.metrics  # noqa: E402,F401  (every process's counts flushed to Redis: GET /metrics)
import workers.tasks  # noqa: E402,F401  (registers the tasks on this app)
