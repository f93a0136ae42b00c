"""Celery configuration for every smsagg worker and beat (read by ``workers.celery_app``).

Decisions (DESIGN.md, "Queues and priority" and "Time"):

* One queue per priority plus ``inbound`` and ``callbacks``; interactive queues get
  workers of their own (see ``smsagg up`` and ``deploy/``), and a worker that serves
  several queues drains them in the listed order (``queue_order_strategy``).
* ``task_acks_late`` + ``task_reject_on_worker_lost``: a worker killed mid-task gives
  the message back, so every task is idempotent.
* ``visibility_timeout`` is one hour, above the longest countdown any task uses
  (callback retries: 10 minutes; ``MAX_COUNTDOWN_SECONDS`` below). Anything further
  ahead (scheduled sends) is stored durably and released by beat, never held as an
  ETA. An unacknowledged message of a worker that died without a clean shutdown is
  handed to another worker after this timeout.
"""

import ssl

from kombu import Exchange, Queue

from app.domain.priorities import ALL_QUEUES, CALLBACK_QUEUE, INBOUND_QUEUE, Priority
from app.domain.task_names import (CALLBACK_TASKS, ID_FILTER_TASK, INBOUND_DRAIN_TASK, INBOUND_REMATCH_TASK,
                                   STAGE_SWEEP_TASK)
from app.settings import get_settings

MAX_COUNTDOWN_SECONDS = 15 * 60
VISIBILITY_TIMEOUT_SECONDS = 3600

broker_url = get_settings().require_redis_url()
# rediss:// (TLS): the certificate is verified unless the URL says otherwise
# (``?ssl_cert_reqs=none``); ``ssl_ca_certs=/path/ca.pem`` names a private CA. The
# gateway's own Redis clients read the same URL the same way (redis-py).
if broker_url.startswith("rediss://") and "ssl_cert_reqs=" not in broker_url:
    broker_use_ssl = {"ssl_cert_reqs": ssl.CERT_REQUIRED}
# Riding out a broker outage (tested by tests/integration/test_broker_outage.py with the
# celery/kombu versions pinned in pyproject.toml): reconnect forever, with Celery's own
# backoff, at start-up and after a loss; keep running tasks running (cancelling them
# would cut SMPP batches in half: their leases and idempotency make a finish safe, and
# their unacknowledged messages come back anyway); find a dead connection quickly.
broker_connection_retry = True
broker_connection_retry_on_startup = True
broker_connection_max_retries = None
worker_cancel_long_running_tasks_on_connection_loss = False
broker_transport_options = {
    "visibility_timeout": VISIBILITY_TIMEOUT_SECONDS,
    "queue_order_strategy": "priority",
    "health_check_interval": 10,
    "socket_keepalive": True,
    "socket_connect_timeout": 5,
    "retry_on_timeout": True,
}

task_serializer = "json"
accept_content = ["json"]
task_ignore_result = True
result_backend = None

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = 1

_exchange = Exchange("smsagg", type="direct")
task_queues = [Queue(name, _exchange, routing_key=name) for name in ALL_QUEUES]
task_default_exchange = "smsagg"
task_default_queue = Priority.BULK.queue
task_routes = {name: {"queue": priority.queue}
               for priority in Priority for name in (priority.task_name, priority.deliver_task_name)}

worker_hijack_root_logger = False
worker_send_task_events = False
task_send_sent_event = False

# Periodic work run by ``smsagg beat``. Each area adds its entries here.
# (The sweeps that put back what dead workers held run in every worker, every few
# seconds: workers.celery_app.)
beat_schedule = {
    "rematch-held-receipts": {"task": INBOUND_REMATCH_TASK, "schedule": 5.0},
    # The ingress's id filter rebuilt from the message log when Redis lacks a complete
    # one (app.services.id_filter); on the least urgent MT queue: a rebuild reads every id.
    "id-filter": {"task": ID_FILTER_TASK, "schedule": 5.0, "options": {"expires": 5.0}},
}
task_routes |= {ID_FILTER_TASK: {"queue": Priority.BULK_LOW.queue}}
task_routes |= {STAGE_SWEEP_TASK: {"queue": Priority.INTERACTIVE.queue}}
task_routes |= {INBOUND_DRAIN_TASK: {"queue": INBOUND_QUEUE}, INBOUND_REMATCH_TASK: {"queue": INBOUND_QUEUE}}
task_routes |= {name: {"queue": CALLBACK_QUEUE} for name in CALLBACK_TASKS}
