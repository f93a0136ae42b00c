"""Engines and sessions: plain SQLAlchemy 2.x, no Flask, so workers never import it.

SQLite (the embedded default) runs in WAL mode with a busy timeout, so the
ingress, several worker processes and the CLI can share one file.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
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


_SQLITE_WRITER = threading.RLock()  # units of work may nest (a snapshot reload inside one)


@contextmanager
def session_scope(database_url: str) -> Iterator[Session]:
    """A unit of work: commit on success, roll back on any error.

    On SQLite, units of work of one process take turns: SQLite has one writer at a
    time, and threads that collide on its lock back off in sleeps of up to 100 ms,
    which costs far more than waiting on a lock here (units of work never hold it
    across network I/O)."""
    guard = _SQLITE_WRITER if database_url.startswith("sqlite") else contextlib.nullcontext()
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
