"""The Celery application. Workers import this, never Flask."""

from __future__ import annotations

import time

from celery import Celery
from celery.signals import (
    worker_process_init,
    worker_process_shutdown,
    worker_ready,
    worker_shutdown,
)

from app.db.session import dispose_engines

celery = Celery("smsagg")
celery.config_from_object("celeryconfig")


@worker_process_init.connect
def _fresh_connections_after_fork(**_kwargs) -> None:
    """Children of a prefork pool must not share the parent's pooled sockets."""
    dispose_engines()


@worker_ready.connect
def _start_delivering(**_kwargs) -> None:
    """Bind to every SMPP carrier as soon as the worker is up, so receipts and MO
    messages are received even by a gateway that has not sent anything yet; and queue
    a drain wherever accepted messages wait without one (after a restart), without
    waiting for beat."""
    from workers.services import worker_services

    services = worker_services()
    services.connectors.connect_all(services.carriers.current().carriers)
    services.stages.sweep(time.time())


@worker_process_shutdown.connect
@worker_shutdown.connect
def _unbind_carriers(**_kwargs) -> None:
    """Unbind SMPP links cleanly when a worker (or a pool child) stops."""
    from workers.services import close_worker_services

    close_worker_services()


import workers.bulk_tasks  # noqa: E402,F401  (bulk fan-out, schedule release in beat)
import workers.callback_tasks  # noqa: E402,F401  (DR/MO callbacks: send, retry, sweep)
import workers.heartbeat  # noqa: E402,F401  (workers and beat say they are alive: smsagg status)
import workers.inbound_tasks  # noqa: E402,F401  (receipts and MO)
import workers.tasks  # noqa: E402,F401  (registers the tasks on this app)
