"""Fixtures for the bulk SMS API against real Redis and a real database."""

from __future__ import annotations

import base64
import json

import pytest

from app.adapters.redis_scripts import RedisKeys
from app.bulk.store import BulkStore
from app.db.session import session_scope
from app.domain.priorities import Priority
from app.services import accounts as svc
from app.web import create_app
from tests.integration.conftest import PASSWORD

VALID = {
    "username": "acme",
    "password": PASSWORD,
    "type": "0",
    "dlr": "1",
    "destination": "12025550100",
    "source": "99222",
    "message": "Hello",
}


def params(**changes) -> dict[str, str]:
    result = dict(VALID)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def call(client, method: str, path: str, data, remote_addr: str = "127.0.0.1") -> str:
    """One request; ``data`` is a dict, or a raw (already encoded) query/body string."""
    environ = {"REMOTE_ADDR": remote_addr}
    if method == "GET":
        if isinstance(data, str):
            response = client.get(f"{path}?{data}", environ_base=environ)
        else:
            response = client.get(path, query_string=data, environ_base=environ)
    elif isinstance(data, str):
        response = client.post(path, data=data.encode("latin-1"), environ_base=environ,
                               content_type="application/x-www-form-urlencoded")
    else:
        response = client.post(path, data=data, environ_base=environ)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    return response.get_data(as_text=True)


def entries(body: str) -> list[tuple[int, str, str]]:
    result = []
    for entry in body.split(","):
        code, destination, message_id = entry.split("|")
        result.append((int(code), destination, message_id))
    return result


def codes(body: str) -> list[int]:
    return [code for code, _, _ in entries(body)]


@pytest.fixture
def queued_tasks(redis_client, key_prefix):
    """``queued_tasks()``: what waits for the bulk workers, oldest first, as (task name,
    args): the task messages on ``mt.bulk`` (without the drain tasks), then each payload
    on its MT list as the ``smsagg.mt.bulk`` drain will take it: ("smsagg.mt.bulk", [payload])."""
    pending = RedisKeys(key_prefix).stage_pending("mt.bulk")

    def read() -> list[tuple[str, list]]:
        result = []
        for raw in reversed(redis_client.lrange("mt.bulk", 0, -1)):
            envelope = json.loads(raw)
            if envelope["headers"]["task"] != Priority.BULK.task_name:
                result.append((envelope["headers"]["task"], json.loads(base64.b64decode(envelope["body"]))[0]))
        result += [(Priority.BULK.task_name, [json.loads(raw)]) for raw in reversed(redis_client.lrange(pending, 0, -1))]
        return result

    return read


METHODS = pytest.mark.parametrize("method", ["GET", "POST"])


@pytest.fixture
def bulk_store(gateway, redis_client) -> BulkStore:
    return BulkStore(redis_client, gateway.key_prefix)


@pytest.fixture
def bulk_app(gateway):
    return create_app(gateway)


@pytest.fixture
def bulk_client(bulk_app):
    return bulk_app.test_client()


def account_id(database_url: str, login: str = "acme") -> int:
    with session_scope(database_url) as session:
        return svc.get_account(session, login).id
