"""The base class of every smsagg task (warehouse's ``WarehouseTask`` idea): the
cross-cutting retry policy lives here, once."""

from __future__ import annotations

from celery import Task
from sqlalchemy.exc import OperationalError


class SmsaggTask(Task):
    """A database that is briefly unavailable (locked SQLite, PostgreSQL failover) is
    retried with capped exponential backoff, forever — an accepted message must never
    be dropped because of it."""

    abstract = True
    max_retries = None
    autoretry_for = (OperationalError,)
    retry_backoff = 1
    retry_backoff_max = 60
    retry_jitter = True
