"""A value read from the database and held in-process, re-read once it is old.

The ingress and the workers consult senders, carriers, routes, API keys and the
account policies on every message; they read them from a snapshot instead, re-read
every ``refresh_seconds``, so a change made with the CLI is seen by every process
within that interval. One thread reloads while the others go on with the value they
have.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Generic, TypeVar

from app.services.failures import is_outage

log = logging.getLogger(__name__)

T = TypeVar("T")

OUTAGE_RETRY_SECONDS = 1.0
"""While the database is away, how often a snapshot that outlives it tries again."""


class TimedSnapshot(Generic[T]):
    """``load()``'s value, re-read when ``refresh_seconds`` old (``reload`` re-reads now).

    With ``outlive_outages``, a refresh that fails because the database is away keeps
    serving the last value (tried again every :data:`OUTAGE_RETRY_SECONDS`), so the
    ingress keeps accepting meanwhile; the first load, and any other error, raises."""

    def __init__(self, load: Callable[[], T], refresh_seconds: float, *, clock: Callable[[], float] = time.monotonic,
                 outlive_outages: bool = False, name: str = "snapshot"):
        self._load = load
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.outlive_outages = outlive_outages
        self.name = name
        self._value: T | None = None
        self._loaded_at: float | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        loaded_at = self._loaded_at
        if loaded_at is not None and self.clock() - loaded_at < self.refresh_seconds:
            return self._value  # type: ignore[return-value]
        with self._lock:
            if self._loaded_at is loaded_at:
                self._refresh()
            return self._value  # type: ignore[return-value]

    def reload(self) -> T:
        with self._lock:
            self._value, self._loaded_at = self._load(), self.clock()
            return self._value

    def _refresh(self) -> None:
        try:
            self._value, self._loaded_at = self._load(), self.clock()
        except Exception as error:
            if self._loaded_at is None or not self.outlive_outages or not is_outage(error):
                raise
            log.warning("%s refresh failed (%s); serving the snapshot of %.0fs ago", self.name, error,
                        self.clock() - self._loaded_at)
            self._loaded_at = self.clock() - self.refresh_seconds + OUTAGE_RETRY_SECONDS
