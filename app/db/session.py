"""Engines and sessions: plain SQLAlchemy 2.x, no Flask, so workers never import it.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the
ingress, several worker processes and the CLI can share one file.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import fcntl
import os
import threading
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool


def _tune_sqlite(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


# A worker process runs up to ~20 task threads (an SMPP window's worth) plus the
# connector loop; each may hold a connection for a short unit of work.
POOL_SIZE, POOL_OVERFLOW = 10, 30


def make_engine(database_url: str, *, pooled: bool = True) -> Engine:
    """An engine for ``database_url``; ``pooled=False`` for one-shot tools (migrations)."""
    pool_options = {} if pooled else {"poolclass": NullPool}
    if database_url.startswith("sqlite"):
        path = database_url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        if pooled:
            pool_options = {"pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
        engine = create_engine(database_url, connect_args={"timeout": 30}, **pool_options)
        event.listen(engine, "connect", _tune_sqlite)
        return engine
    if pooled:
        pool_options = {"pool_pre_ping": True, "pool_size": POOL_SIZE, "max_overflow": POOL_OVERFLOW}
    return create_engine(database_url, **pool_options)


_ENGINES: dict[str, Engine] = {}
_SESSIONS: dict[str, sessionmaker[Session]] = {}


def engine_for(database_url: str) -> Engine:
    """One engine per URL per process (disposed after a fork: see workers)."""
    engine = _ENGINES.get(database_url)
    if engine is None:
        engine = _ENGINES[database_url] = make_engine(database_url)
    return engine


def session_factory(database_url: str) -> sessionmaker[Session]:
    factory = _SESSIONS.get(database_url)
    if factory is None:
        factory = _SESSIONS[database_url] = sessionmaker(bind=engine_for(database_url), expire_on_commit=False)
    return factory


class _SqliteTurns:
    """Units of work on one SQLite file take turns, across the threads of a process
    (an ``RLock``: units may nest, a snapshot reload inside one) and across processes
    (``flock`` on ``<file>.turns``, taken by the outermost unit of the holding thread).

    SQLite has one writer at a time, and a writer that finds the file locked backs off
    in sleeps of up to 100 ms (its busy handler) however soon the lock is free: with
    the ingress, three workers and beat on one file, those sleeps decided throughput
    and latency. A waiter on ``flock`` is woken by the kernel the moment it is free.
    Units of work never hold it across network I/O."""

    def __init__(self, path: str | None):
        self._threads = threading.RLock()
        self._path = f"{path}.turns" if path else None
        self._file = None
        self._owner_pid = 0
        self._depth = 0  # changed only by the thread holding self._threads

    def __enter__(self) -> None:
        self._threads.acquire()
        if self._depth == 0 and self._path is not None:
            fcntl.flock(self._lock_file(), fcntl.LOCK_EX)
        self._depth += 1

    def __exit__(self, *_exc) -> None:
        self._depth -= 1
        if self._depth == 0 and self._path is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
        self._threads.release()

    def _lock_file(self):
        """This process's own open file: a descriptor inherited across a fork would
        share its lock with the parent."""
        if self._file is None or self._owner_pid != os.getpid():
            Path(self._path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(self._path, "a+b")  # noqa: SIM115 (kept open for the process's life)
            self._owner_pid = os.getpid()
        return self._file


_TURNS: dict[str, _SqliteTurns] = {}
_TURNS_LOCK = threading.Lock()


def _turns(database_url: str) -> _SqliteTurns:
    with _TURNS_LOCK:
        turns = _TURNS.get(database_url)
        if turns is None:
            path = database_url.split("///", 1)[1].split("?", 1)[0] if "///" in database_url else ""
            turns = _TURNS[database_url] = _SqliteTurns(path if path and path != ":memory:" else None)
        return turns


@contextmanager
def session_scope(database_url: str) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error. On SQLite, units of
    work take turns (:class:`_SqliteTurns`)."""
    guard = _turns(database_url) if database_url.startswith("sqlite") else contextlib.nullcontext()
    with guard:
        session = session_factory(database_url)()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()


def dispose_engines() -> None:
    """Drop pooled connections inherited across a fork (``worker_process_init``)."""
    for engine in _ENGINES.values():
        engine.dispose(close=False)


def after_commit(session: Session, action) -> None:
    """Run ``action()`` once ``session``'s transaction has committed: Redis and other
    side effects follow the database, never the other way round."""
    event.listen(session, "after_commit", lambda _session: action(), once=True)
