"""Leases a live process renews: whatever a worker holds (a claimed batch, callbacks
being sent) carries a deadline that this thread keeps pushing back while the work runs,
so a holder that died loses its work within one lease, and a slow but alive one never
does (DESIGN.md, "Recovery: seconds, not minutes").

A :class:`LeaseKeeper` is one daemon thread per process (started on first use, and
again in a forked child, which inherits no threads). ``hold(key)`` adds a lease to the
set it renews every ``every`` seconds with one call of ``renew(keys)``; ``release(key)``
removes it and returns only once no renewal of it is in flight, so the caller may then
record its outcome without a late renewal overwriting it. A renewal that fails (the
backing service is away) is logged and tried again at the next tick: the lease is made
long enough to outlast a few missed renewals.

:class:`Periodic` runs a function every few seconds on a daemon thread of its own (the
sweeps every worker runs), logging and surviving whatever it raises.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Collection, Hashable, Iterable
from contextlib import contextmanager
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class LeaseKeeper(Generic[K]):
    def __init__(self, renew: Callable[[Collection[K]], None], every: float, name: str):
        self._renew = renew
        self.every = every
        self.name = name
        self._held: dict[K, int] = {}
        self._state = threading.Lock()  # guards _held, never held during I/O
        self._renewing = threading.Lock()  # held while a renewal runs: release() waits for it
        self._thread: threading.Thread | None = None
        self._pid = 0

    def hold(self, keys: Iterable[K]) -> None:
        with self._state:
            for key in keys:
                self._held[key] = self._held.get(key, 0) + 1
            self._ensure_thread()

    def release(self, keys: Iterable[K]) -> None:
        with self._renewing, self._state:
            for key in keys:
                count = self._held.get(key, 0) - 1
                if count > 0:
                    self._held[key] = count
                else:
                    self._held.pop(key, None)

    @contextmanager
    def holding(self, keys: Collection[K]):
        self.hold(keys)
        try:
            yield
        finally:
            self.release(keys)

    def held(self) -> set[K]:
        with self._state:
            return set(self._held)

    def renew_now(self) -> None:
        """One renewal of everything held, in the caller's thread (tests, and the loop)."""
        with self._renewing:
            with self._state:
                keys = list(self._held)
            if not keys:
                return
            try:
                self._renew(keys)
            except Exception:
                log.warning("%s: renewing %d lease(s) failed; trying again in %.1fs", self.name, len(keys),
                            self.every, exc_info=True)

    def _ensure_thread(self) -> None:
        if self._thread is not None and self._thread.is_alive() and self._pid == os.getpid():
            return
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.every)
            self.renew_now()


class Periodic:
    """``work()`` every ``every`` seconds on a daemon thread, until :meth:`stop`."""

    def __init__(self, work: Callable[[], object], every: float, name: str):
        self._work = work
        self.every = every
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> "Periodic":
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            try:
                self._work()
            except Exception:
                log.warning("%s failed; trying again in %.1fs", self.name, self.every, exc_info=True)
