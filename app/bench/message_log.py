"""What the message-log lookup costs a submit: ``python -m app.bench.message_log``.

The ingress asks the database whether a ``message_id`` was accepted before
(:mod:`app.services.message_log`) on every submit that carries one. This measures, in
one run and against one Redis, the MT submit path (:meth:`SubmitService.submit`, in
process: parse, cached credential, sender, one Redis script) without and with that
lookup, on SQLite and on PostgreSQL, in alternating rounds so the machine's drift hits
both alike, over a log already holding ``--rows`` messages. Figures are per submit, as
wall time and as this process's CPU time (what the ingress host pays; the database
server's own work shows only in the wall time); the ratios are the ones to quote.

Uses the Redis at ``--redis`` under a key prefix of its own (deleted at the end) and a
scratch SQLite file / PostgreSQL database (dropped at the end).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from datetime import datetime, timezone
from pathlib import Path

import redis
from sqlalchemy import create_engine, insert, text

from app.adapters.redis_scripts import RedisStore
from app.bulk.directory import BulkDirectory
from app.db import migrate
from app.db.models import Message
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.auth_guard import build_guard
from app.services.directory import Directory
from app.services.message_log import MessageLog
from app.services.submit import SubmitService
from app.settings import Settings


def _prepare(database_url: str, rows: int) -> None:
    migrate.upgrade(database_url)
    with session_scope(database_url) as session:
        account = svc.create_account(session, "bench", "pw", senders=("99222",), default_max_length=1600,
                                     options=AccountOptions(rate=0))
        now = datetime.now(timezone.utc)
        for start in range(0, rows, 10_000):
            session.execute(insert(Message), [
                dict(id=uuid.uuid4().hex, account_id=account.id, client_message_id=f"old-{n}",
                     phone_number="12025550100", sender="99222", text="x", priority="BULK", receipt=False,
                     state=2, accepted_at=now, options={})
                for n in range(start, min(start + 10_000, rows))])


def _round(service: SubmitService, count: int, tag: str) -> tuple[float, float]:
    """Seconds per submit over ``count`` new message ids: wall clock, and this process's CPU."""
    params = {"login": "bench", "password": "pw", "phone_number": "12025550100", "sender": "99222",
              "message": "Hello"}
    started, cpu = time.perf_counter(), time.process_time()
    for n in range(count):
        code = service.submit({**params, "message_id": f"{tag}-{n}"}, "127.0.0.1")
        if code != 0:
            raise SystemExit(f"submit answered {int(code)}")
    return (time.perf_counter() - started) / count, (time.process_time() - cpu) / count


def measure(name: str, database_url: str, client: redis.Redis, prefix: str, rows: int, count: int,
            rounds: int) -> None:
    _prepare(database_url, rows)
    rules = BulkDirectory(database_url, refresh_seconds=3600, default_price_units=1)
    directory = Directory(database_url, guard=build_guard(client, prefix, Settings()), credential_ttl=3600,
                          credential_cache_size=1000, refresh_seconds=3600, rules=rules)
    store = RedisStore(client, prefix)
    services = {"without": SubmitService(directory, store, claim_ttl_seconds=600, max_mms_bytes=300 * 1024),
                "with": SubmitService(directory, store, claim_ttl_seconds=600, max_mms_bytes=300 * 1024,
                                      message_log=MessageLog(database_url))}
    for label, service in services.items():  # warm up: the KDF, the directory, the pools
        _round(service, 50, f"{name}-warm-{label}")
    times: dict[str, list[tuple[float, float]]] = {label: [] for label in services}
    for index in range(rounds):
        for label, service in services.items():
            times[label].append(_round(service, count, f"{name}-{label}-{index}"))
    for kind, column in (("wall", 0), ("cpu", 1)):
        without = statistics.median(t[column] for t in times["without"])
        with_log = statistics.median(t[column] for t in times["with"])
        print(f"{name:10} {rows:>7} rows, {kind:4}: submit {without * 1e6:7.1f} us without the lookup, "
              f"{with_log * 1e6:7.1f} us with it: +{(with_log - without) * 1e6:6.1f} us, "
              f"ratio {with_log / without:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres",
                        help="an admin URL to create the scratch database with ('' to skip PostgreSQL)")
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--count", type=int, default=500, help="submits per round")
    parser.add_argument("--rounds", type=int, default=5)
    options = parser.parse_args()
    client = redis.Redis.from_url(options.redis)
    prefix = f"bench-msglog-{uuid.uuid4().hex[:8]}:"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            measure("sqlite", f"sqlite:///{Path(scratch) / 'bench.db'}", client, prefix + "s:", options.rows,
                    options.count, options.rounds)
        if options.postgres:
            _with_postgres(options, client, prefix + "p:")
    finally:
        for key in client.scan_iter(match=prefix + "*", count=1000):
            client.delete(key)


def _with_postgres(options, client: redis.Redis, prefix: str) -> None:
    name = f"smsagg_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(options.postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        measure("postgresql", options.postgres.rpartition("/")[0] + "/" + name, client, prefix, options.rows,
                options.count, options.rounds)
    finally:
        from app.db.session import _ENGINES

        for url in [u for u in _ENGINES if u.endswith("/" + name)]:
            _ENGINES.pop(url).dispose()
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
