"""Heartbeats: every running part says it is alive, what it serves and what it did.

Each process of the gateway (an ingress process, a worker process, beat) writes one
Redis key every :data:`INTERVAL_SECONDS`,
``<prefix>parts:<part>:<host>:<pid>``, a JSON object with a TTL of :data:`TTL_SECONDS`
(three intervals): so a part killed with ``kill -9`` disappears on its own within
seconds, and a part stopped cleanly deletes its key at once. The key is also put into
the index ``<prefix>parts`` (a sorted set), so readers never ``SCAN`` a keyspace that
holds millions of idempotency claims; readers drop index members whose key expired.

The record::

    {"part": "worker", "host": "gw1", "pid": 4242, "started_at": 1718000000.0,
     "at": 1718000042.5, "queues": ["mt.bulk", "mt.bulk_low"],
     "binds": {"7": [2, 2]}, "handled": {"mt.bulk": 1200}, "rates": {"mt.bulk": 41.5}}

``binds`` is, per SMPP carrier id, [binds up, binds configured] in this process;
``handled`` counts the items each stage's tasks handled in this process since it
started, and ``rates`` is how many per second over the last interval (this process's
throughput now: :class:`Throughput`). A write is one pipelined round trip (``SET`` with
``EX`` and ``ZADD``), off any request or task path: a thread of its own.

A Redis that is down or restarting is not fatal: the beat is tried again at the next
interval (logged once per outage); a lost index is rebuilt by the next beats.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

from app.adapters.redis_scripts import RedisKeys

log = logging.getLogger(__name__)

INTERVAL_SECONDS = 5.0
TTL_SECONDS = 15
"""Three intervals: a part is shown as up until it missed about three beats."""


class Throughput:
    """Items handled per stage in this process (thread-safe), and the rate per second
    since the previous :meth:`sample`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._handled: Counter[str] = Counter()
        self._sampled: Counter[str] = Counter()
        self._sampled_at: float | None = None

    def add(self, stage: str, count: int) -> None:
        with self._lock:
            self._handled[stage] += count

    def sample(self, now: float) -> tuple[dict[str, int], dict[str, float]]:
        """(items handled so far, items per second since the previous sample)."""
        with self._lock:
            handled = dict(self._handled)
            elapsed = None if self._sampled_at is None else now - self._sampled_at
            rates = {stage: round((count - self._sampled[stage]) / elapsed, 2) if elapsed else 0.0
                     for stage, count in handled.items()}
            self._sampled, self._sampled_at = Counter(handled), now
        return handled, rates


class Heartbeat:
    """The heartbeat of this process: :meth:`start` a thread that :meth:`beat`-s every
    ``interval`` seconds, :meth:`stop` it (the key is deleted)."""

    def __init__(self, client: redis.Redis, key_prefix: str, part: str, *, queues: tuple[str, ...] = (),
                 binds: Callable[[], dict[int, tuple[int, int]]] | None = None,
                 throughput: Throughput | None = None, interval: float = INTERVAL_SECONDS,
                 clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self.part = part
        self.queues = tuple(queues)
        self.binds = binds
        self.throughput = throughput
        self.interval = interval
        self.clock = clock
        self._identify()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failing = False

    def _identify(self) -> None:
        self.host = socket.gethostname()
        self.pid = os.getpid()
        self.started_at = self.clock()
        self.key = self.keys.part(self.part, self.host, self.pid)

    def record(self) -> dict[str, Any]:
        """What this process reports now."""
        now = self.clock()
        handled, rates = self.throughput.sample(now) if self.throughput else ({}, {})
        binds = self.binds() if self.binds else {}
        return {"part": self.part, "host": self.host, "pid": self.pid, "started_at": self.started_at, "at": now,
                "queues": list(self.queues), "binds": {str(c): list(b) for c, b in sorted(binds.items())},
                "handled": handled, "rates": rates}

    def beat(self) -> None:
        """Write the record once (one round trip). Raises what Redis raises."""
        pipe = self.client.pipeline(transaction=False)
        pipe.set(self.key, json.dumps(self.record(), separators=(",", ":")), ex=TTL_SECONDS)
        pipe.zadd(self.keys.parts_index(), {self.key: self.started_at})
        pipe.execute()

    def _run(self) -> None:
        while True:
            try:
                self.beat()
                if self._failing:
                    log.info("heartbeat of %s: Redis is back", self.key)
                self._failing = False
            except (redis.RedisError, OSError) as exc:
                if not self._failing:
                    log.warning("heartbeat of %s: Redis unavailable (%s); trying again every %ss",
                                self.key, exc, self.interval)
                self._failing = True
            except Exception:  # a probe that broke must not end the heartbeat for good
                log.exception("heartbeat of %s failed", self.key)
            if self._stopping.wait(self.interval):
                return

    @property
    def started(self) -> bool:
        return self._thread is not None

    def start(self) -> None:
        """Start beating (once; later calls do nothing)."""
        if self.started:
            return
        with self._start_lock:
            if self._thread is None:
                if self.pid != os.getpid():  # built before a fork: this is another process
                    self._identify()
                thread = threading.Thread(target=self._run, name=f"heartbeat-{self.part}", daemon=True)
                thread.start()
                self._thread = thread

    def stop(self) -> None:
        """Stop beating and delete the key, so the part disappears at once."""
        self._stopping.set()
        if self._thread is None:
            return
        if self._thread is not threading.current_thread():
            self._thread.join(self.interval + 5)
        try:
            pipe = self.client.pipeline(transaction=False)
            pipe.delete(self.key)
            pipe.zrem(self.keys.parts_index(), self.key)
            pipe.execute()
        except (redis.RedisError, OSError):
            pass  # stopping while Redis is away: the key expires by itself


def read_parts(client: redis.Redis, key_prefix: str) -> list[dict[str, Any]]:
    """Every live part's record (two round trips), oldest part first. Index members
    whose key expired (the part died or stopped) are removed from the index."""
    index = RedisKeys(key_prefix).parts_index()
    members = client.zrange(index, 0, -1)
    if not members:
        return []
    values = client.mget(members)
    gone = [member for member, value in zip(members, values) if value is None]
    if gone:
        client.zrem(index, *gone)
    records = []
    for member, value in zip(members, values):
        if value is None:
            continue
        try:
            records.append(json.loads(value))
        except ValueError:
            log.warning("heartbeat %s is not JSON; ignored", member)
    return records
