"""Fixtures for the REST API against real Redis and a real database: the gateway of
``tests/integration/conftest.py`` (account ``acme`` with sender 99222, ``other`` with
55555), an API key for each account, and ``rest(...)``, a request through Flask's test
client whose answer is checked against the published OpenAPI document."""

from __future__ import annotations

import base64
import json

import pytest

from app.adapters.redis_scripts import RedisKeys
from app.api import keys
from app.bulk.store import BulkStore
from app.db.session import session_scope
from app.services import accounts as svc
from app.web import create_app
from tests.api_conformance import assert_conforms
from tests.integration.conftest import PASSWORD

VALID = {"phone_numbers": ["12025550100"], "sender": "99222", "message": "Hello", "message_id": "r-1"}


def body(**changes) -> dict:
    result = dict(VALID)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def basic(login: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def issue_key(database_url: str, login: str = "acme", name: str | None = None) -> str:
    with session_scope(database_url) as session:
        return keys.create_key(session, login, name).token


def account_id(database_url: str, login: str = "acme") -> int:
    with session_scope(database_url) as session:
        return svc.get_account(session, login).id


@pytest.fixture
def app(gateway):
    return create_app(gateway)


@pytest.fixture
def api_key(gateway) -> str:
    return issue_key(gateway.database_url)


@pytest.fixture
def rest(app, api_key):
    """``rest("POST", "/api/v1/messages", json={...})``: the response, already checked
    against the spec. ``token=None`` sends no credentials; ``headers`` adds or overrides."""
    client = app.test_client()

    def call(method: str, path: str, *, token: str | None = api_key, headers: dict | None = None,
             remote_addr: str = "127.0.0.1", **kwargs):
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        sent.update(headers or {})
        response = client.open(path, method=method, headers=sent, environ_base={"REMOTE_ADDR": remote_addr}, **kwargs)
        assert_conforms(method, path, response)
        return response

    return call


@pytest.fixture
def store(gateway, redis_client) -> BulkStore:
    return BulkStore(redis_client, gateway.key_prefix)


@pytest.fixture
def pending(redis_client, key_prefix):
    """``pending("mt.bulk")``: the accepted payloads waiting on that MT list, newest first."""
    keys_ = RedisKeys(key_prefix)

    def read(queue: str = "mt.bulk") -> list[dict]:
        return [json.loads(raw) for raw in redis_client.lrange(keys_.stage_pending(queue), 0, -1)]

    return read
