"""MT tasks, two per priority queue, thin: the logic is in ``app.services.delivery``.

* ``smsagg.mt.<priority>`` (drain): claims a batch of accepted payloads from the
  priority's MT list (:mod:`app.adapters.stage_queue`), delivers it, finishes the claim.
  The ingress queues one when none is waiting; a drain that leaves payloads behind
  queues the next, so every worker process of the queue works a backlog at once.
* ``smsagg.mt.<priority>.deliver(ids)``: another attempt for recorded messages
  (throttled, retried, failed over), sent with the ``countdown`` their outcome asked
  for, grouped so that messages due together travel in one task.
* ``smsagg.stages.sweep`` (beat): puts back batches of workers that died and queues a
  drain wherever payloads wait without one.

An accepted message is never dropped: whatever goes wrong is retried with backoff (a
bug shows up as a retrying task in the logs, not as a lost message); a drain retried
by Celery keeps its task id, and with it the batch it claimed.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict

from celery import Task

from app.adapters.stage_queue import SWEEP_TASK
from app.domain.priorities import INTERACTIVE_QUEUES, Priority
from app.services.delivery import Outcome
from workers.base import SmsaggTask
from workers.celery_app import celery
from workers.services import worker_services

DRAIN_BATCH = 200
"""Payloads per drain task: enough to make a transaction and an SMPP window worth
their overhead, few enough that one batch takes well under a second."""
RETRY_GRANULARITY_SECONDS = 0.05
MAX_IDS_PER_TASK = 500


def retry_groups(outcomes: dict[str, Outcome]) -> dict[float, list[str]]:
    """Messages to try again, by countdown (rounded up to ``RETRY_GRANULARITY_SECONDS``)."""
    groups: dict[float, list[str]] = defaultdict(list)
    for message_id, outcome in outcomes.items():
        if outcome.retry_in is not None:
            steps = math.ceil(outcome.retry_in / RETRY_GRANULARITY_SECONDS - 1e-9)
            groups[round(steps * RETRY_GRANULARITY_SECONDS, 3)].append(message_id)
    return dict(groups)


def _register(priority: Priority) -> tuple[Task, Task]:
    interactive = priority.queue in INTERACTIVE_QUEUES

    def follow_up(outcomes: dict[str, Outcome]) -> None:
        for countdown, ids in retry_groups(outcomes).items():
            for start in range(0, len(ids), MAX_IDS_PER_TASK):
                deliver.apply_async((ids[start:start + MAX_IDS_PER_TASK],), countdown=countdown)

    @celery.task(name=priority.task_name, base=SmsaggTask, queue=priority.queue, bind=True,
                 autoretry_for=(Exception,))
    def drain(self) -> int:
        services = worker_services()
        batch = services.stages.claim(priority.queue, self.request.id, DRAIN_BATCH)
        if batch:
            follow_up(services.delivery.process_batch(batch, interactive=interactive))
        services.stages.finish(priority.queue, self.request.id)
        return len(batch)

    @celery.task(name=priority.deliver_task_name, base=SmsaggTask, queue=priority.queue,
                 autoretry_for=(Exception,))
    def deliver(message_ids: list[str]) -> None:
        follow_up(worker_services().delivery.deliver_batch(message_ids, interactive=interactive))

    return drain, deliver


MT_TASKS = {priority: _register(priority) for priority in Priority}


@celery.task(name=SWEEP_TASK, base=SmsaggTask, queue=Priority.INTERACTIVE.queue)
def sweep() -> int:
    return worker_services().stages.sweep(time.time())
