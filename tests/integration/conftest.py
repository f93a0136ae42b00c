"""Fixtures for tests that run the real ingress, Redis and workers."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from app.adapters.redis_scripts import RedisKeys
from app.cli.main import main
from app.db.session import session_scope
from app.domain.priorities import ALL_QUEUES
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.settings import get_settings
from app.web import create_app

PASSWORD = "s3cret-pw"


def provision(database_url: str, login: str = "acme", *, senders=("99222",), **options) -> None:
    with session_scope(database_url) as session:
        svc.create_account(session, login, PASSWORD, senders=senders, options=AccountOptions(**options),
                           default_max_length=1600)


@pytest.fixture
def queues(redis_client):
    """The Celery queue keys, emptied before and after the test (the test's Redis
    database is the suite's own; these lists are created by the tests)."""
    redis_client.delete(*ALL_QUEUES)
    yield ALL_QUEUES
    redis_client.delete(*ALL_QUEUES)


@pytest.fixture
def queued(redis_client, key_prefix):
    """``queued("mt.bulk")``: the accepted payloads waiting on that priority's MT list
    (``app.adapters.stage_queue``), newest first."""
    keys = RedisKeys(key_prefix)

    def read(queue: str = "mt.bulk") -> list[dict]:
        return [json.loads(raw) for raw in redis_client.lrange(keys.stage_pending(queue), 0, -1)]

    return read


@pytest.fixture
def gateway(settings, queues):
    """A provisioned gateway: account ``acme`` (sender 99222, a second account
    ``other`` owning 55555, an unowned sender 77777, carrier 99901 with a route for 1)."""
    provision(settings.database_url)
    provision(settings.database_url, "other", senders=("55555",))
    with session_scope(settings.database_url) as session:
        svc.add_sender(session, "77777", login=None)
        svc.add_carrier(session, 99901, "us", connector="http", settings={"url": "http://127.0.0.1:9"}, throughput=None)
        svc.add_route(session, "1", 99901)
    return settings


@pytest.fixture
def client(gateway):
    app = create_app(gateway)
    return app.test_client()


@pytest.fixture
def cli(settings, monkeypatch):
    """``cli("account", "show", "acme")`` runs ``smsagg`` in-process against this test's
    database and Redis, asserts its exit status (``ok=False``: a clean failure) and
    returns its output."""
    monkeypatch.setenv("SMSAGG_HOME", str(settings.home))
    monkeypatch.setenv("SMSAGG_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SMSAGG_REDIS_URL", settings.redis_url)
    monkeypatch.setenv("SMSAGG_REDIS_PREFIX", settings.key_prefix)
    get_settings.cache_clear()
    runner = CliRunner()

    def invoke(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    yield invoke
    get_settings.cache_clear()
