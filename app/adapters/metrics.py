"""Counting in every process of the gateway, merged in Redis.

The gateway runs as many processes on many hosts (ingress processes, worker processes
per queue, beat; deploy/kubernetes puts them in separate pods), and ``/metrics`` is
scraped from one ingress. prometheus_client's multiprocess mode shares files on one
host only, so each process instead counts in memory (:class:`Recorder`: a dict under a
lock, a fraction of a microsecond per count, no I/O in any request or task) and a
thread of its own (:class:`MetricsFlusher`) adds what was counted since the last flush
to one Redis hash, ``<prefix>metrics``, every ``SMSAGG_METRICS_FLUSH_SECONDS`` and when
the process stops: one ``MULTI``/``HINCRBYFLOAT``.../``EXEC`` round trip. The hash holds
the gateway's totals since its Redis was new, so a counter never goes back when a
process restarts. A flush that fails (Redis away) keeps its deltas for the next one;
one whose answer was lost after Redis applied it may count those deltas twice.

A field of the hash is the JSON ``[name, [label values], part]``: ``part`` is ``""``
for a counter, and for a histogram ``"sum"`` or a bucket's upper bound (``"0.5"``,
``"+Inf"``) holding the observations that fell in that bucket alone (the scrape makes
them cumulative).

Counts made in a database unit of work that may still roll back are kept with the
session and added only once it commits (:func:`count_on_commit`), so a retried batch is
not counted twice.

A process forked from a counting one (a prefork pool child) starts from nothing: what
the parent counted is the parent's to flush.
"""

from __future__ import annotations

import atexit
import json
import logging
import multiprocessing.util
import os
import threading
from bisect import bisect_left
from collections.abc import Iterator

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.domain.metrics import COUNTER, HISTOGRAM, PROCESS, definition

log = logging.getLogger(__name__)

Key = tuple[str, tuple[str, ...], str]
"""(metric name, label values, part): what one hash field counts."""

DEFAULT_FLUSH_SECONDS = 5.0


def field_of(key: Key) -> str:
    name, labels, part = key
    return json.dumps([name, list(labels), part], separators=(",", ":"))


def key_of(field: str | bytes) -> Key | None:
    """The key a hash field counts, or None for a field this version cannot read."""
    try:
        name, labels, part = json.loads(field)
        return str(name), tuple(str(label) for label in labels), str(part)
    except (ValueError, TypeError):
        return None


class Recorder:
    """What this process counted since its last flush, by :data:`Key`."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas: dict[Key, float] = {}

    def add(self, key: Key, amount: float) -> None:
        with self._lock:
            self._deltas[key] = self._deltas.get(key, 0.0) + amount

    def add_pair(self, first: Key, second: Key, second_amount: float) -> None:
        """One to ``first``, ``second_amount`` to ``second``, under one lock (a histogram)."""
        with self._lock:
            deltas = self._deltas
            deltas[first] = deltas.get(first, 0.0) + 1.0
            deltas[second] = deltas.get(second, 0.0) + second_amount

    def take(self) -> dict[Key, float]:
        with self._lock:
            deltas, self._deltas = self._deltas, {}
        return deltas

    def give_back(self, deltas: dict[Key, float]) -> None:
        with self._lock:
            for key, amount in deltas.items():
                self._deltas[key] = self._deltas.get(key, 0.0) + amount

    def forget(self) -> None:
        """Drop everything (a forked child: the counts are the parent's)."""
        self._lock = threading.Lock()
        self._deltas = {}

    def flush(self, client: redis.Redis, hash_key: str) -> int:
        """Add the deltas to ``hash_key`` in one transaction; returns how many fields.
        Raises what Redis raises, the deltas kept for the next flush."""
        deltas = self.take()
        if not deltas:
            return 0
        try:
            pipe = client.pipeline(transaction=True)
            for key, amount in deltas.items():
                pipe.hincrbyfloat(hash_key, field_of(key), amount)
            pipe.execute()
        except BaseException:
            self.give_back(deltas)
            raise
        return len(deltas)


RECORDER = Recorder()
"""This process's counts (every counter and histogram below adds to it); a forked child
forgets them (:func:`_after_fork_in_child`)."""


class Counter:
    """A counter of :mod:`app.domain.metrics`: ``SUBMITS.inc("genesys", "0")``."""

    __slots__ = ("name", "arity", "recorder")

    def __init__(self, name: str, recorder: Recorder = RECORDER) -> None:
        metric = definition(name)
        if metric.kind != COUNTER or metric.source != PROCESS:
            raise ValueError(f"{name} is not a counter processes count")
        self.name, self.arity, self.recorder = name, len(metric.labels), recorder

    def inc(self, *labels: str, amount: float = 1.0) -> None:
        if len(labels) != self.arity:
            raise ValueError(f"{self.name} takes {self.arity} label values, not {labels!r}")
        if amount:
            self.recorder.add((self.name, labels, ""), amount)


class Histogram:
    """A histogram of :mod:`app.domain.metrics`: ``CALLBACK_SECONDS.observe("delivered", value=0.12)``."""

    __slots__ = ("name", "arity", "bounds", "parts", "recorder")

    def __init__(self, name: str, recorder: Recorder = RECORDER) -> None:
        metric = definition(name)
        if metric.kind != HISTOGRAM:
            raise ValueError(f"{name} is not a histogram")
        self.name, self.arity, self.recorder = name, len(metric.labels), recorder
        self.bounds = metric.buckets
        self.parts = (*(bucket_label(b) for b in metric.buckets), "+Inf")

    def observe(self, *labels: str, value: float) -> None:
        if len(labels) != self.arity:
            raise ValueError(f"{self.name} takes {self.arity} label values, not {labels!r}")
        bucket = self.parts[bisect_left(self.bounds, value)]
        self.recorder.add_pair((self.name, labels, bucket), (self.name, labels, "sum"), value)


def bucket_label(bound: float) -> str:
    """A bucket's ``le`` as Prometheus writes it (``1.0``, ``0.25``)."""
    return repr(float(bound))


SUBMITS = Counter("smsagg_submits_total")
ACCEPTED = Counter("smsagg_accepted_total")
SUBMIT_SM = Counter("smsagg_submit_sm_total")
THROTTLE_WAITS = Counter("smsagg_carrier_throttle_waits_total")
RECEIPTS = Counter("smsagg_receipts_total")
CALLBACKS = Counter("smsagg_callbacks_total")
CALLBACK_SECONDS = Histogram("smsagg_callback_duration_seconds")
RETRIES = Counter("smsagg_retries_total")
DEAD_LETTERS = Counter("smsagg_dead_letters_total")


# --- counts that wait for a commit ---------------------------------------------------------

_ON_COMMIT = "smsagg_metrics"


def count_on_commit(session: Session, counter: Counter, *labels: str, amount: float = 1.0) -> None:
    """``counter.inc(*labels)`` once ``session`` commits; nothing if it rolls back."""
    if amount:
        session.info.setdefault(_ON_COMMIT, []).append((counter, labels, amount))


@event.listens_for(Session, "after_commit")
def _counted_on_commit(session: Session) -> None:
    for counter, labels, amount in session.info.pop(_ON_COMMIT, ()):
        counter.inc(*labels, amount=amount)


@event.listens_for(Session, "after_rollback")
def _rolled_back(session: Session) -> None:
    session.info.pop(_ON_COMMIT, None)


# --- the flush thread ----------------------------------------------------------------------


class MetricsFlusher:
    """Flushes :data:`RECORDER` to ``<prefix>metrics`` every ``interval`` seconds on a
    thread of its own, and once more when stopped (or when the process exits). A
    process has one (:func:`process_flusher`)."""

    def __init__(self, client: redis.Redis, hash_key: str, interval: float = DEFAULT_FLUSH_SECONDS,
                 recorder: Recorder = RECORDER) -> None:
        self.client = client
        self.hash_key = hash_key
        self.interval = interval
        self.recorder = recorder
        self._pid = os.getpid()
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._failing = False
        self._stops_at_exit = False

    @property
    def started(self) -> bool:
        """Whether this process flushes (a check per request: no system call)."""
        return self._thread is not None and not self._stopping.is_set()

    def _forked(self) -> None:
        """In a forked child (the parent's thread is not running here), or stopped."""
        self._pid, self._thread = os.getpid(), None
        self._stopping, self._wake, self._start_lock = threading.Event(), threading.Event(), threading.Lock()

    @property
    def pid(self) -> int:
        return self._pid

    def aim(self, client: redis.Redis, hash_key: str, interval: float) -> None:
        """Flush what was counted so far, then flush to ``hash_key`` from now on."""
        if client is not self.client or hash_key != self.hash_key:
            self.flush()
        self.client, self.hash_key, self.interval = client, hash_key, interval
        self._wake.set()  # the thread's wait started with the old interval

    def start(self) -> None:
        """Start flushing in this process (once; later calls do nothing)."""
        if self.started:
            return
        with self._start_lock:
            if self._pid != os.getpid() or self._stopping.is_set():  # forked, or stopped: start afresh
                self._forked()
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="metrics-flush", daemon=True)
                self._thread.start()
                if not self._stops_at_exit:
                    atexit.register(self.stop)
                    # a multiprocessing child (a granian ingress worker) ends in os._exit,
                    # which skips atexit but runs multiprocessing's exit finalizers
                    multiprocessing.util.Finalize(None, self.stop, exitpriority=0)
                    self._stops_at_exit = True

    def flush(self) -> int:
        """One flush now; an unavailable Redis is logged once per outage, not raised."""
        try:
            flushed = self.recorder.flush(self.client, self.hash_key)
        except (redis.RedisError, OSError) as exc:
            if not self._failing:
                log.warning("metrics not flushed to Redis (%s); kept, trying again every %ss", exc, self.interval)
            self._failing = True
            return 0
        if self._failing:
            log.info("metrics flushed to Redis again")
        self._failing = False
        return flushed

    def _run(self) -> None:
        while True:
            self._wake.wait(self.interval)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.flush()

    def stop(self) -> None:
        """Stop the thread and flush what is left."""
        self._stopping.set()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread() and self._pid == os.getpid():
            thread.join(self.interval + 5)
        self.flush()


_process_flusher: MetricsFlusher | None = None
_process_flusher_lock = threading.Lock()  # taken for a moment at start-up only


def _after_fork_in_child() -> None:
    RECORDER.forget()
    if _process_flusher is not None:
        _process_flusher._forked()


os.register_at_fork(after_in_child=_after_fork_in_child)


def process_flusher(client: redis.Redis, hash_key: str, interval: float = DEFAULT_FLUSH_SECONDS) -> MetricsFlusher:
    """This process's flusher, aimed at ``hash_key``. One per process, because the
    counters are: a second gateway built in the same process (a test building another
    app) takes it over, and a forked child gets one of its own."""
    global _process_flusher
    with _process_flusher_lock:
        flusher = _process_flusher
        if flusher is None or flusher.pid != os.getpid():
            flusher = _process_flusher = MetricsFlusher(client, hash_key, interval)
        else:
            flusher.aim(client, hash_key, interval)
        return flusher


def read_totals(client: redis.Redis, hash_key: str) -> Iterator[tuple[Key, float]]:
    """Every (key, total) the gateway's processes flushed (one round trip)."""
    for field, value in client.hgetall(hash_key).items():
        key = key_of(field)
        if key is not None:
            yield key, float(value)
