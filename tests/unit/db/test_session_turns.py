"""SQLite units of work take turns across processes (``app.db.session._SqliteTurns``):
no two overlap, nesting in one thread is fine, and a fork gets a lock of its own."""

from __future__ import annotations

import multiprocessing
import time

from sqlalchemy import text

from app.db.session import session_scope


def _units(database_url: str, log_path: str, name: str, count: int) -> None:
    for _ in range(count):
        with session_scope(database_url) as session:
            with open(log_path, "a") as log:
                log.write(f"enter {name}\n")
            session.execute(text("SELECT 1"))
            time.sleep(0.003)
            with open(log_path, "a") as log:
                log.write(f"exit {name}\n")


def test_units_of_work_of_several_processes_never_overlap(sqlite_url, tmp_path):
    log_path = str(tmp_path / "turns.log")
    with session_scope(sqlite_url):
        pass  # the parent opened its lock file before forking: the children must not share it
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_units, args=(sqlite_url, log_path, f"p{i}", 15)) for i in range(3)]
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
    with session_scope(sqlite_url) as outer:
        with session_scope(sqlite_url) as inner:
            inner.execute(text("SELECT 1"))
        outer.execute(text("SELECT 1"))
