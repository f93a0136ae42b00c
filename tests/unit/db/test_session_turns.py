"""SQLite units of work take turns across processes (``app.db.session._SqliteTurns``):
no two overlap, urgent or not; nesting in one thread is fine; a fork gets locks of its
own; an urgent unit goes ahead of queued ordinary ones."""

from __future__ import annotations

import multiprocessing
import threading
import time

from sqlalchemy import text

from app.db.session import session_scope
from tests.integration.workers import wait_until


def _units(database_url: str, log_path: str, name: str, count: int, urgent: bool = False) -> None:
    for _ in range(count):
        with session_scope(database_url, urgent=urgent) as session:
            with open(log_path, "a") as log:
                log.write(f"enter {name}\n")
            session.execute(text("SELECT 1"))
            time.sleep(0.003)  # the unit stays open a while, so an overlap would show (kept: the test)
            with open(log_path, "a") as log:
                log.write(f"exit {name}\n")


def test_units_of_work_of_several_processes_never_overlap(sqlite_url, tmp_path):
    log_path = str(tmp_path / "turns.log")
    with session_scope(sqlite_url):
        pass  # the parent opened its lock file before forking: the children must not share it
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_units, args=(sqlite_url, log_path, f"p{i}", 15, i == 0)) for i in range(3)]
    for worker in workers:
        worker.start()
    _units(sqlite_url, log_path, "parent", 15)
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    lines = open(log_path).read().split()
    events = list(zip(lines[0::2], lines[1::2]))
    assert len(events) == 2 * 15 * 4
    for (enter, who), (leave, same) in zip(events[0::2], events[1::2]):
        assert (enter, leave) == ("enter", "exit") and who == same


def test_nested_units_in_one_thread_do_not_deadlock(sqlite_url):
    finished = threading.Event()

    def nested() -> None:
        with session_scope(sqlite_url) as outer:
            with session_scope(sqlite_url) as inner:
                inner.execute(text("SELECT 1"))
            outer.execute(text("SELECT 1"))
        finished.set()

    threading.Thread(target=nested, daemon=True).start()
    assert finished.wait(10), "the inner unit is waiting for the outer one's turn"


def _hold(database_url: str, started, release) -> None:
    with session_scope(database_url):
        started.set()
        release.wait(30)


def _timed_unit(database_url: str, urgent: bool, log_path: str, name: str) -> None:
    with session_scope(database_url, urgent=urgent):
        with open(log_path, "a") as log:
            log.write(f"{name}\n")


def _blocked_on_a_lock(pids: set[int]) -> set[int]:
    """The processes among ``pids`` waiting for a ``flock`` (``/proc/locks`` lists a waiter
    with ``->``)."""
    with open("/proc/locks") as locks:
        waiting = {int(line.split()[5]) for line in locks if "->" in line and "FLOCK" in line}
    return waiting & pids


def _wait_until_blocked(pids: set[int]) -> None:
    """Until every one of ``pids`` has queued up behind the holder."""
    wait_until(lambda: _blocked_on_a_lock(pids) == pids, timeout=20)


def test_an_urgent_unit_goes_ahead_of_queued_ordinary_ones(sqlite_url, tmp_path):
    log_path = str(tmp_path / "order.log")
    context = multiprocessing.get_context("fork")
    started, release = context.Event(), context.Event()
    holder = context.Process(target=_hold, args=(sqlite_url, started, release))
    holder.start()
    assert started.wait(10)
    ordinary = [context.Process(target=_timed_unit, args=(sqlite_url, False, log_path, f"bulk{i}")) for i in range(4)]
    for process in ordinary:
        process.start()
    _wait_until_blocked({process.pid for process in ordinary})  # one at the turn, three at the gate
    urgent = context.Process(target=_timed_unit, args=(sqlite_url, True, log_path, "urgent"))
    urgent.start()
    _wait_until_blocked({urgent.pid})
    release.set()
    for process in [holder, urgent, *ordinary]:
        process.join(30)
        assert process.exitcode == 0
    order = open(log_path).read().split()
    assert order.index("urgent") <= 1  # at most the one ordinary unit already at the turn went first
