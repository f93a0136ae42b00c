"""Shared fixtures. Every test isolates itself:

* Redis: the local server on 127.0.0.1:6379, in a database this test session claims
  for itself (the first of 15, 14 ... 1 that is free or whose claimant is gone), so two suites
  running at once never share Celery's queues; or ``SMSAGG_TEST_REDIS_URL`` when set.
  Each test also has a key prefix of its own and deletes only keys under it and the
  queue keys it created — never ``FLUSHDB``.
* Databases: a fresh SQLite file per test, and for tests marked ``postgres`` (or
  taking ``any_database_url``) a fresh PostgreSQL database dropped afterwards.
"""

from __future__ import annotations

import atexit
import os
import socket
import uuid
from pathlib import Path

import pytest
import redis

from app.db import migrate
from app.settings import Settings

_CLAIM_KEY = "smsagg:test-session-claim"
_CLAIM_SECONDS = 3 * 3600


def _claim_redis_database() -> str:
    """The URL of a Redis database no other running test session uses: the first of
    15 ... 1 that is unclaimed, or whose claim belongs to a process that is gone (a
    session killed with ``kill -9`` never releases its claim)."""
    if os.environ.get("SMSAGG_TEST_REDIS_URL"):
        return os.environ["SMSAGG_TEST_REDIS_URL"]
    token = f"{os.getpid()}:{uuid.uuid4().hex}"
    for db in range(15, 0, -1):
        url = f"redis://127.0.0.1:6379/{db}"
        try:
            client = redis.Redis.from_url(url, socket_connect_timeout=1)
            if client.set(_CLAIM_KEY, token, nx=True, ex=_CLAIM_SECONDS) or _take_over_a_dead_claim(client, token):
                atexit.register(_release_claim, client, token)
                return url
        except redis.RedisError:
            break
    raise RuntimeError("every test Redis database (1-15) is claimed by a running test session")


def _take_over_a_dead_claim(client: redis.Redis, token: str) -> bool:
    held = client.get(_CLAIM_KEY)
    if held is None or _session_alive(held.decode()):
        return False
    with client.pipeline() as pipe:  # only if the dead session's claim is still the one there
        try:
            pipe.watch(_CLAIM_KEY)
            if pipe.get(_CLAIM_KEY) != held:
                return False
            pipe.multi()
            pipe.set(_CLAIM_KEY, token, ex=_CLAIM_SECONDS)
            pipe.execute()
            return True
        except redis.WatchError:
            return False


def _session_alive(claim: str) -> bool:
    try:
        os.kill(int(claim.split(":", 1)[0]), 0)
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return True
    return True


def _release_claim(client: redis.Redis, token: str) -> None:
    try:
        if client.get(_CLAIM_KEY) == token.encode():
            client.delete(_CLAIM_KEY)
    except redis.RedisError:
        pass


TEST_REDIS_URL = _claim_redis_database()
TEST_POSTGRES_URL = os.environ.get("SMSAGG_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def key_prefix() -> str:
    return f"test:{uuid.uuid4().hex[:12]}:"


@pytest.fixture
def redis_client(key_prefix):
    client = redis.Redis.from_url(TEST_REDIS_URL)
    try:
        client.ping()
    except redis.ConnectionError:
        pytest.skip(f"no Redis at {TEST_REDIS_URL}")
    yield client
    keys = list(client.scan_iter(match=f"{key_prefix}*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


def _postgres_available() -> bool:
    try:
        import psycopg

        with psycopg.connect(TEST_POSTGRES_URL.replace("+psycopg", ""), connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.fixture
def postgres_url():
    """A fresh PostgreSQL database for this test, dropped afterwards."""
    if not _postgres_available():
        pytest.skip("no PostgreSQL on 127.0.0.1:5432")
    import psycopg

    admin_url = TEST_POSTGRES_URL.replace("+psycopg", "")
    name = f"smsagg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base, _, _ = TEST_POSTGRES_URL.rpartition("/")
    yield f"{base}/{name}"
    from app.db.session import _ENGINES

    for url in [u for u in _ENGINES if u.endswith("/" + name)]:
        _ENGINES.pop(url).dispose()
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'smsagg.db'}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_database_url(request, tmp_path):
    """Runs the test once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'smsagg.db'}"
    return request.getfixturevalue("postgres_url")


@pytest.fixture
def database_url(any_database_url) -> str:
    migrate.upgrade(any_database_url)
    return any_database_url


@pytest.fixture
def settings(tmp_path, sqlite_url, key_prefix, redis_client) -> Settings:
    """Settings for one test: its own SQLite file (migrated), Redis prefix and home.
    Database-layer tests run on PostgreSQL too through ``database_url``."""
    migrate.upgrade(sqlite_url)
    return Settings(
        home=tmp_path,
        redis_url=TEST_REDIS_URL,
        database_url=sqlite_url,
        key_prefix=key_prefix,
        credential_cache_seconds=30.0,
        directory_refresh_seconds=0.0,
        allow_private_callbacks=True,
    )
