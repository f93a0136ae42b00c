"""Message priorities and the Celery queue that serves each one.

The Genesys API (seed 000, MT parameter table) names four priorities; each has
its own queue so that interactive traffic has workers of its own and is never
stuck behind a bulk backlog (DESIGN.md, "Queues and priority").
"""

from __future__ import annotations

import enum


class Priority(str, enum.Enum):
    INTERACTIVE = "INTERACTIVE"
    INTERACTIVE_LOW = "INTERACTIVE_LOW"
    BULK = "BULK"
    BULK_LOW = "BULK_LOW"

    @property
    def queue(self) -> str:
        return "mt." + self.value.lower()

    @property
    def task_name(self) -> str:
        """The Celery task that drains this priority's accepted messages in batches
        (see ``workers.tasks`` and ``app.adapters.stage_queue``)."""
        return "smsagg." + self.queue

    @property
    def deliver_task_name(self) -> str:
        """The Celery task that tries recorded messages again (retries, throttling)."""
        return self.task_name + ".deliver"

    @classmethod
    def parse(cls, raw: str) -> "Priority":
        """Case-insensitive lookup; raises ``ValueError`` for anything else."""
        return cls(raw.strip().upper())


DEFAULT_PRIORITY = Priority.BULK
MT_QUEUES = tuple(p.queue for p in Priority)
INTERACTIVE_QUEUES = (Priority.INTERACTIVE.queue, Priority.INTERACTIVE_LOW.queue)
BULK_QUEUES = (Priority.BULK.queue, Priority.BULK_LOW.queue)
INBOUND_QUEUE = "inbound"
CALLBACK_QUEUE = "callbacks"
ALL_QUEUES = MT_QUEUES + (INBOUND_QUEUE, CALLBACK_QUEUE)
