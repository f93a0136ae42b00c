"""The process-wide Redis store of the bulk area, for callers that have no app to ask
(workers, the CLI, the delivery and MO services calling :mod:`app.bulk.credit` and
:mod:`app.bulk.compliance`)."""

from __future__ import annotations

from functools import lru_cache

import redis

from app.adapters.redis_scripts import connect
from app.bulk.settings import get_bulk_settings
from app.bulk.store import BulkStore
from app.settings import get_settings


@lru_cache(maxsize=1)
def default_store() -> BulkStore:
    settings = get_settings()
    return BulkStore(connect(settings.require_redis_url()), settings.key_prefix)


def ingress_store(redis_url: str, key_prefix: str) -> BulkStore:
    """The ingress's own client: its socket timeout decides when an answer counts as
    lost (1715), and redis-py's own retries are off (the store asks again itself)."""
    timeout = get_bulk_settings().redis_timeout_seconds
    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=timeout,
                                  health_check_interval=30, retry=None)
    return BulkStore(client, key_prefix)
