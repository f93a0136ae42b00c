"""The background event loop: runs coroutines for synchronous callers, stops cleanly
(its thread ends and the loop is closed) and can be started again."""

from __future__ import annotations

import asyncio
import sys
import threading

from app.connectors.loop import BackgroundLoop


async def _thread_name() -> str:
    await asyncio.sleep(0)
    return threading.current_thread().name


def test_runs_coroutines_on_its_named_thread_and_stops_cleanly():
    background = BackgroundLoop("test-loop")
    assert background.run(_thread_name(), timeout=5) == "test-loop"
    loop = background.loop
    background.stop()
    assert loop.is_closed()
    assert not any(t.name == "test-loop" and t.is_alive() for t in threading.enumerate())


def test_a_stopped_loop_starts_again_on_use():
    background = BackgroundLoop("test-again")
    background.run(_thread_name(), timeout=5)
    background.stop()
    assert background.run(_thread_name(), timeout=5) == "test-again"
    background.stop()
    background.stop()  # stopping twice is harmless


def test_the_loop_is_uvloops_and_its_process_hands_the_gil_over_often(monkeypatch):
    """uvloop where installed (a runtime dependency here); the switch interval lowered,
    never raised (app.connectors.loop says why)."""
    import uvloop

    from app.connectors.loop import GIL_SWITCH_SECONDS

    monkeypatch.setattr(sys, "setswitchinterval", lambda value: intervals.append(value))
    monkeypatch.setattr(sys, "getswitchinterval", lambda: 0.005)
    intervals: list[float] = []
    background = BackgroundLoop("test-uvloop")
    try:
        assert isinstance(background.loop, uvloop.Loop)
    finally:
        background.stop()
    assert intervals == [GIL_SWITCH_SECONDS]


def test_asyncios_loop_where_uvloop_is_missing(monkeypatch):
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    background = BackgroundLoop("test-asyncio")
    try:
        assert background.run(_thread_name(), timeout=5) == "test-asyncio"
        assert type(background.loop).__module__.startswith("asyncio")
    finally:
        background.stop()
