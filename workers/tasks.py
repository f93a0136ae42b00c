"""Celery tasks: thin. Load by id (or the accepted payload), call one service
function, map errors to retry or fail. One task per priority queue."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from celery import Task
from sqlalchemy.exc import OperationalError

from app.db.session import session_scope
from app.domain.priorities import Priority
from app.services.intake import record_accepted
from app.settings import get_settings
from workers.celery_app import celery

log = logging.getLogger(__name__)


class SmsaggTask(Task):
    """Cross-cutting policy: a database that is briefly unavailable (locked SQLite,
    PostgreSQL failover) is retried with capped exponential backoff, forever — an
    accepted message must never be dropped because of it."""

    abstract = True
    max_retries = None
    autoretry_for = (OperationalError,)
    retry_backoff = 1
    retry_backoff_max = 60
    retry_jitter = True


def _process_accepted(payload: dict) -> dict:
    with session_scope(get_settings().database_url) as session:
        recorded = record_accepted(session, payload, now=datetime.now(timezone.utc))
    return {"id": recorded.message_id, "state": int(recorded.state), "carrier": recorded.carrier_id}


def _register_mt_task(priority: Priority) -> Task:
    @celery.task(name=priority.task_name, base=SmsaggTask, queue=priority.queue)
    def process_mt(payload: dict) -> dict:
        return _process_accepted(payload)

    return process_mt


MT_TASKS = {priority: _register_mt_task(priority) for priority in Priority}
