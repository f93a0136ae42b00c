"""An asyncio event loop on a daemon thread: one per worker process hosts every
long-lived SMPP bind of that process (and the callback sender has one for its
kept-alive HTTP connections).

Celery tasks are synchronous; they hand coroutines to this loop and wait for the
result. Many tasks at once (a ``threads`` pool) therefore share one windowed bind,
with several submit_sm outstanding, instead of each paying a round trip alone.

A thread that wants the GIL waits up to ``sys.getswitchinterval()`` for a thread
running Python to hand it over: 5 ms by default, which on every PDU made this loop wait
behind the pool threads recording the next batch. With two such threads busy, a bind
with a window of 10 then carried 190-350 submit_sm/s; at 0.5 ms, 1,700-2,400/s (this
machine, 2026-12-02). So a process that runs this loop hands the GIL over every 0.5 ms.

The loop is uvloop's where it is installed (a runtime dependency off Windows): libuv's
event loop, in C, spends less CPU per wake-up than asyncio's pure-Python one, and an
SMPP bind or a callback connection wakes it for every PDU and every answer.
"""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

GIL_SWITCH_SECONDS = 0.0005


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop's event loop, or asyncio's where uvloop is not installed (Windows)."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


class BackgroundLoop:
    def __init__(self, name: str = "smsagg-connectors") -> None:
        self.name = name
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                sys.setswitchinterval(min(sys.getswitchinterval(), GIL_SWITCH_SECONDS))
                self._loop = new_event_loop()
                self._thread = threading.Thread(target=self._loop.run_forever, name=self.name, daemon=True)
                self._thread.start()
            return self._loop

    def run(self, coroutine: Coroutine[Any, Any, T], timeout: float) -> T:
        """Run ``coroutine`` on the loop and wait at most ``timeout`` seconds."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the loop and, once its thread has finished, close it (its selector and
        wake-up descriptors go with it). A later :attr:`loop` starts a new one."""
        with self._lock:
            loop, thread, self._loop, self._thread = self._loop, self._thread, None, None
        if loop is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)
            if not thread.is_alive():
                loop.close()
