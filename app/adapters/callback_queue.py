"""Handing committed callbacks to the ``callbacks`` queue: one Celery task message,
pushed with a single ``LPUSH`` (no ``apply_async``, no Celery app import).

Call it only after the commit that wrote the ``Callback`` rows: a message whose rows
are not visible yet finds nothing to send. If the push itself is lost (the process
dies between the commit and here), the rows stay pending and the callbacks sweeper
(beat, ``smsagg.callbacks.sweep``) enqueues them again.
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from app.adapters.celery_wire import task_message
from app.domain.priorities import CALLBACK_QUEUE
from app.domain.task_names import CALLBACK_SWEEP_TASK as SWEEP_TASK
from app.domain.task_names import SEND_BATCH_TASK, SEND_ONE_TASK

MAX_BATCH = 200
"""Ids per task message: a larger set (a replay of thousands) goes as several messages."""


def enqueue_callbacks(client: redis.Redis, ids: Iterable[str]) -> int:
    """Queue ``send_batch(ids)``: one message (one ``LPUSH``) for up to ``MAX_BATCH`` ids.
    Returns the number of task messages pushed (0 for no ids)."""
    ids = [str(i) for i in ids]
    messages = [task_message(SEND_BATCH_TASK, CALLBACK_QUEUE, [ids[i:i + MAX_BATCH]])
                for i in range(0, len(ids), MAX_BATCH)]
    if messages:
        client.lpush(CALLBACK_QUEUE, *messages)
    return len(messages)
