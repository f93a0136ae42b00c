"""Celery tasks: thin. Load by id (or the accepted payload), call one service
function, map errors to retry or fail. One task per priority queue."""

from __future__ import annotations

from celery import Task

from app.domain.priorities import INTERACTIVE_QUEUES, Priority
from workers.base import SmsaggTask
from workers.celery_app import celery
from workers.services import worker_services

def _process_mt(task: Task, payload: dict, priority: Priority) -> None:
    outcome = worker_services().delivery.process_accepted(payload, interactive=priority.queue in INTERACTIVE_QUEUES)
    if outcome.retry_in is not None:
        raise task.retry(countdown=outcome.retry_in, max_retries=None)


def _register_mt_task(priority: Priority) -> Task:
    # An accepted message is never dropped: whatever goes wrong is retried with backoff
    # (a bug shows up as a retrying task in the logs, not as a lost message).
    @celery.task(name=priority.task_name, base=SmsaggTask, queue=priority.queue, bind=True,
                 autoretry_for=(Exception,))
    def process_mt(self, payload: dict) -> None:
        _process_mt(self, payload, priority)

    return process_mt


MT_TASKS = {priority: _register_mt_task(priority) for priority in Priority}
