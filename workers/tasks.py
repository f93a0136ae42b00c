"""MT tasks, thin: the logic is in ``app.services.delivery``.

* ``smsagg.mt.<priority>`` (drain): claims a batch from the priority's MT list under a
  lease (:mod:`app.adapters.stage_queue`), delivers it, finishes the claim. The list
  holds accepted payloads and *retries* (``{"retry": message_id}``: a recorded message
  to try again). The ingress queues a drain when none is waiting; a drain that leaves
  items behind queues the next, so every worker process of the queue works a backlog.
* Messages to try again (throttled, transient errors, failover) go back to the MT list
  with the delay their outcome asked for (:meth:`StageQueue.later`), grouped so that
  messages due together travel in one batch: durable in Redis, claimed and leased
  like any batch, never held only in a worker's memory.
* ``smsagg.mt.<priority>.deliver(ids)``: hands recorded messages to the MT list at once
  (retries queued by earlier versions, and operators).
* ``smsagg.stages.sweep``: the sweep, on demand (every worker also runs it on a timer,
  ``workers.celery_app``): lapsed leases, due delays, lost drains.

An accepted message is never dropped: an outage is retried with backoff keeping the
claim, and a payload that cannot be handled is set aside on the stage's dead letters
while the rest of its batch goes on (:func:`app.services.failures.handle_isolating`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence

from celery import Task

from app.adapters import metrics, stage_queue
from app.adapters.stage_queue import SWEEP_TASK
from app.domain.priorities import INTERACTIVE_QUEUES, Priority
from app.services.delivery import Outcome
from app.services.failures import handle_isolating
from workers.base import SmsaggTask
from workers.celery_app import celery
from workers.services import worker_services

DRAIN_BATCH = 200
"""Items per drain task: enough to make a transaction and an SMPP window worth
their overhead, few enough that one batch takes well under a second."""
RETRY_GRANULARITY_SECONDS = 0.05
RETRY_KEY = "retry"


def retry_groups(outcomes: dict[str, Outcome]) -> dict[float, list[str]]:
    """Messages to try again, by delay (rounded up to ``RETRY_GRANULARITY_SECONDS``)."""
    groups: dict[float, list[str]] = defaultdict(list)
    for message_id, outcome in outcomes.items():
        if outcome.retry_in is not None:
            steps = math.ceil(outcome.retry_in / RETRY_GRANULARITY_SECONDS - 1e-9)
            groups[round(steps * RETRY_GRANULARITY_SECONDS, 3)].append(message_id)
    return dict(groups)


def retry_item(message_id: str) -> str:
    return stage_queue.item({RETRY_KEY: message_id})


def _register(priority: Priority) -> tuple[Task, Task]:
    interactive = priority.queue in INTERACTIVE_QUEUES

    def deliver_items(raw_items: Sequence[str]) -> dict[str, Outcome]:
        items = [stage_queue.decode(raw) for raw in raw_items]
        retries = [entry[RETRY_KEY] for entry in items if RETRY_KEY in entry]
        payloads = [entry for entry in items if RETRY_KEY not in entry]
        return worker_services().delivery.process_batch(payloads, interactive=interactive, retry_ids=retries)

    def follow_up(outcomes: dict[str, Outcome]) -> None:
        stages = worker_services().stages
        for delay, ids in retry_groups(outcomes).items():
            stages.later(priority.queue, [retry_item(message_id) for message_id in ids], delay)
            metrics.RETRIES.inc(priority.queue, amount=len(ids))

    @celery.task(name=priority.task_name, base=SmsaggTask, queue=priority.queue, bind=True)
    def drain(self) -> int:
        with worker_services().stages.claimed(priority.queue, self.request.id, DRAIN_BATCH) as batch:
            if batch.items:
                for outcomes in handle_isolating(batch.items, deliver_items, batch.set_aside,
                                                 what=f"{priority.queue} batch"):
                    follow_up(outcomes)
        return len(batch.items)

    @celery.task(name=priority.deliver_task_name, base=SmsaggTask, queue=priority.queue)
    def deliver(message_ids: list[str]) -> None:
        worker_services().stages.later(priority.queue, [retry_item(message_id) for message_id in message_ids], 0)

    return drain, deliver


MT_TASKS = {priority: _register(priority) for priority in Priority}


@celery.task(name=SWEEP_TASK, base=SmsaggTask, queue=Priority.INTERACTIVE.queue)
def sweep() -> int:
    return worker_services().stages.sweep()
