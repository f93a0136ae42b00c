"""The base class of every smsagg task (warehouse's ``WarehouseTask`` idea): the
cross-cutting failure policy lives here, once (:mod:`app.services.failures`).

* An **outage** (Redis or the database away) is retried with capped exponential
  backoff and jitter, forever: an accepted message is never dropped because a backing
  service blinked. A drain retried under its task id gets back the batch it holds.
* Anything else that escapes a task is **poison**: retrying it forever would only keep
  a worker busy. The task is set aside whole, with its arguments and the error, on the
  dead-letter list of its queue (``smsagg queues dead <queue>``, replayable), and
  acknowledged. Tasks that work on many items (drains, callback batches, the bulk
  fan-out) isolate a poison item themselves, so the rest of their batch goes on.
"""

from __future__ import annotations

import logging

from celery import Task
from celery.exceptions import Ignore, Reject, Retry
from celery.utils.time import get_exponential_backoff_interval

from app.services.failures import is_outage

log = logging.getLogger(__name__)


class SmsaggTask(Task):
    abstract = True
    max_retries = None
    retry_backoff_max = 30
    """Seconds: the longest wait between two attempts while a service is away."""

    def __call__(self, *args, **kwargs):
        # Called by Celery's tracer with the request already pushed (Task.__call__ would
        # push a second one without the task id): run the task, classify what it raises.
        try:
            return self.run(*args, **kwargs)
        except (Retry, Ignore, Reject):
            raise
        except Exception as error:
            if is_outage(error):
                countdown = get_exponential_backoff_interval(factor=1, retries=self.request.retries or 0,
                                                             maximum=self.retry_backoff_max, full_jitter=True)
                log.warning("task %s[%s]: %s: %s; retrying in %ss", self.name, self.request.id,
                            type(error).__name__, error, countdown)
                raise self.retry(exc=error, countdown=countdown, max_retries=None) from error
            self.set_aside(list(args), error)
            return None

    def set_aside(self, args: list, error: BaseException) -> None:
        """Keep this task's call on its queue's dead-letter list instead of retrying it."""
        from workers.services import worker_services

        queue = (self.request.delivery_info or {}).get("routing_key") or self.queue or "celery"
        log.error("task %s%r cannot be done; set aside on %s's dead letters: %s", self.name, tuple(args), queue,
                  error, exc_info=error)
        worker_services().stages.set_aside_task(queue, self.name, args, error)
