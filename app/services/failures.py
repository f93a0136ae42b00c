"""Errors classified as data: a backing service that is away, or work nobody can do.

Two kinds of failure, handled in opposite ways (DESIGN.md, "Recovery"):

* **Outage**: Redis or the database cannot be reached, is restarting, loading its data,
  read-only after a failover, or timed out (:data:`OUTAGES`, :func:`is_outage`). Nothing
  is wrong with the work: it is retried with capped, jittered backoff, forever, keeping
  its claim (``workers.base.SmsaggTask``).
* **Poison**: anything else that one item raises (a payload missing a field, a value the
  database refuses, a bug). Retrying it would only hold up its batch, so
  :func:`handle_isolating` hands the rest of the batch on and the item is *set aside*
  (a dead letter its stage keeps, visible in ``smsagg queues``, replayable).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import TypeVar

import redis
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import exc as sa

log = logging.getLogger(__name__)

T = TypeVar("T")
R = TypeVar("R")

OUTAGES: tuple[type[BaseException], ...] = (
    redis.ConnectionError,  # includes BusyLoadingError: Redis loading its data after a restart
    redis.TimeoutError,
    redis.exceptions.ReadOnlyError,  # a replica promoted, or the old primary after a failover
    redis.exceptions.TryAgainError,
    redis.exceptions.ClusterDownError,
    BrokerUnavailable,  # kombu publishing to a broker that is away
    sa.OperationalError,  # the database is down, restarting, locked, out of connections
    sa.DisconnectionError,
    sa.TimeoutError,  # no pooled connection in time
    ConnectionError,  # OSError subclasses: refused, reset, aborted
    TimeoutError,
)


def is_outage(error: BaseException) -> bool:
    """True if ``error`` means a backing service is away (retry), not bad work."""
    if isinstance(error, OUTAGES):
        return True
    if isinstance(error, sa.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, redis.ResponseError) and str(error).startswith(
            ("LOADING", "MASTERDOWN", "READONLY", "MISCONF", "OOM", "NOREPLICAS")):
        return True
    return False


def handle_isolating(items: Sequence[T], handle: Callable[[Sequence[T]], R],
                     set_aside: Callable[[T, BaseException], None], *, what: str = "batch") -> list[R]:
    """``[handle(items)]``; if that raises something other than an outage, each item is
    handled on its own and an item that still fails is ``set_aside`` (with its error),
    so one poison payload never holds up the rest of its batch. An outage at any point
    propagates (the caller retries the whole batch; every stage is idempotent)."""
    try:
        return [handle(items)]
    except Exception as error:
        if is_outage(error):
            raise
        if len(items) == 1:
            log.error("%s: its only item cannot be handled; set aside: %s", what, error, exc_info=True)
            set_aside(items[0], error)
            return []
        log.warning("%s of %d failed (%s: %s); handling its items one at a time", what, len(items),
                    type(error).__name__, error)
    results = []
    for one in items:
        try:
            results.append(handle([one]))
        except Exception as error:
            if is_outage(error):
                raise
            log.error("%s: an item cannot be handled; set aside: %s", what, error, exc_info=True)
            set_aside(one, error)
    return results
