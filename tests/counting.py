"""Counting into a recorder of the test's own (:mod:`app.adapters.metrics`): the
process's recorder may be flushed at any moment by a flusher an earlier test started."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from app.adapters import metrics
from app.adapters.metrics import Counter, Histogram, Recorder

COUNTING = [value for value in vars(metrics).values() if isinstance(value, (Counter, Histogram))]


@contextmanager
def counted() -> Iterator[Recorder]:
    """``with counted() as recorder:`` every counter and histogram of the gateway adds
    to ``recorder`` while the block runs."""
    recorder = Recorder()
    before = [counter.recorder for counter in COUNTING]
    for counter in COUNTING:
        counter.recorder = recorder
    try:
        yield recorder
    finally:
        for counter, previous in zip(COUNTING, before):
            counter.recorder = previous
