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
    the ingress, several workers and beat on one file, those sleeps decided throughput
    and latency. A waiter on ``flock`` is woken by the kernel the moment it is free.

    Urgent units (interactive messages) go ahead of the rest: an ordinary unit first
    takes ``<file>.gate`` and holds it through its turn, so at most one ordinary unit
    waits for the turn beside an urgent one, however many are queued. Units of work
    never hold a turn across network I/O."""

    def __init__(self, path: str | None):
        self._threads = threading.RLock()
        self._paths = (f"{path}.turns", f"{path}.gate") if path else None
        self._files: tuple = ()
        self._owner_pid = 0
        self._held: list = []  # files flocked by the outermost unit; changed only under self._threads

    @contextmanager
    def unit(self, urgent: bool) -> Iterator[None]:
        with self._threads:
            outermost = not self._held and self._paths is not None
            if outermost:
                turns, gate = self._lock_files()
                self._held = [turns] if urgent else [gate, turns]
                for file in self._held:
                    fcntl.flock(file, fcntl.LOCK_EX)
            try:
                yield
            finally:
                if outermost:
                    for file in reversed(self._held):
                        fcntl.flock(file, fcntl.LOCK_UN)
                    self._held = []

    def _lock_files(self) -> tuple:
        """This process's own open files: a descriptor inherited across a fork would
        share its lock with the parent."""
        if not self._files or self._owner_pid != os.getpid():
            Path(self._paths[0]).parent.mkdir(parents=True, exist_ok=True)
            self._files = tuple(open(path, "a+b") for path in self._paths)  # noqa: SIM115 (open for the process's life)
            self._owner_pid = os.getpid()
        return self._files


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
def session_scope(database_url: str, *, urgent: bool = False) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error. On SQLite, units of
    work take turns, ``urgent`` ones first (:class:`_SqliteTurns`)."""
    guard = _turns(database_url).unit(urgent) if database_url.startswith("sqlite") else contextlib.nullcontext()
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
