"""Failed logins on every API against real Redis and the real database
(docs/security.md): after the limit the API's authentication code comes back without
the KDF running, a client elsewhere still logs in, a busy KDF gets the documented
"retry" answer at once, and no refusal queues anything."""

from __future__ import annotations

import pytest

from app.adapters.redis_scripts import RedisKeys
from app.console import operators
from app.db.session import session_scope
from app.domain.priorities import ALL_QUEUES
from app.gms import registry
from app.gms.http import basic_auth_header
from app.services import auth_guard
from app.web import create_app
from tests.integration.api.conftest import basic, body
from tests.integration.bulk.conftest import params as bulk_params
from tests.integration.conftest import PASSWORD
from tests.integration.console.conftest import csrf_of
from tests.integration.test_httpapi import params as mt_params

ATTACKER, CLIENT = "203.0.113.66", "198.51.100.7"
LIMIT = 5  # SMSAGG_AUTH_ADDRESS_FAILURES's default


class CountedKdf:
    def __init__(self, real):
        self.real = real
        self.calls = 0

    def __call__(self, password: str, stored: str) -> bool:
        self.calls += 1
        return self.real(password, stored)


@pytest.fixture
def kdf(monkeypatch):
    counted = CountedKdf(auth_guard.verify_password)
    monkeypatch.setattr(auth_guard, "verify_password", counted)
    return counted


@pytest.fixture
def app(gateway):
    with session_scope(gateway.database_url) as session:
        registry.add_app(session, "mobileapp", "app-secret-1")
    flask_app = create_app(gateway)
    flask_app.testing = True
    return flask_app


@pytest.fixture
def http(app):
    return app.test_client()


def _busy(app) -> None:
    """Take every KDF slot of this app's process, as a check in progress would."""
    guard = app.extensions["smsagg"]["auth_guard"]
    for _ in range(guard.kdf_concurrency):
        assert guard._slots.acquire(blocking=False)


def _nothing_queued(redis_client, key_prefix, queues) -> None:
    """No Celery message, no MT waiting on a stage list, no idempotency claim."""
    keys = RedisKeys(key_prefix)
    assert [redis_client.llen(queue) for queue in queues] == [0] * len(queues)
    assert [redis_client.llen(keys.stage_pending(queue)) for queue in ALL_QUEUES] == [0] * len(ALL_QUEUES)
    assert redis_client.keys(keys.idempotency(0, "*").replace(":0:", ":*:")) == []


def mt(http, address: str, **changes) -> str:
    response = http.post("/httpapi/receiver", data=mt_params(**changes), environ_base={"REMOTE_ADDR": address})
    return response.get_data(as_text=True)


def test_mt_after_the_limit_answers_2_without_the_kdf_and_another_address_still_logs_in(http, kdf, redis_client,
                                                                                         key_prefix, queues):
    for n in range(LIMIT):
        assert mt(http, ATTACKER, password=f"guess-{n}", message_id=f"a-{n}") == "result_code=2"
    assert kdf.calls == LIMIT
    assert mt(http, ATTACKER, password="guess-x", message_id="a-x") == "result_code=2"
    assert mt(http, ATTACKER, message_id="a-right") == "result_code=2"  # locked: not even the right one
    assert kdf.calls == LIMIT
    _nothing_queued(redis_client, key_prefix, queues)
    assert mt(http, CLIENT, message_id="c-1") == "result_code=0"


def test_mt_with_the_kdf_busy_answers_6_at_once_and_queues_nothing(app, http, kdf, redis_client, key_prefix, queues):
    _busy(app)
    assert mt(http, CLIENT) == "result_code=6"
    assert kdf.calls == 0
    _nothing_queued(redis_client, key_prefix, queues)


def test_mt_a_client_verified_before_is_not_locked_out_with_its_address(http, kdf, queues):
    assert mt(http, CLIENT, message_id="before") == "result_code=0"
    for n in range(LIMIT + 2):
        mt(http, CLIENT, password=f"guess-{n}", message_id=f"g-{n}")
    assert mt(http, CLIENT, message_id="after") == "result_code=0"


def bulk(http, address: str, **changes) -> str:
    response = http.post("/bulksms/bulksms", data=bulk_params(**changes), environ_base={"REMOTE_ADDR": address})
    return response.get_data(as_text=True)


def test_bulk_after_the_limit_answers_1709_without_the_kdf(app, http, kdf, redis_client, key_prefix, queues):
    for n in range(LIMIT):
        assert bulk(http, ATTACKER, password=f"guess-{n}") == "1709||"
    assert bulk(http, ATTACKER, password="guess-x") == "1709||" and kdf.calls == LIMIT
    _nothing_queued(redis_client, key_prefix, queues)
    assert bulk(http, CLIENT).startswith("1701|")
    assert kdf.calls == LIMIT + 1


def test_bulk_with_the_kdf_busy_answers_1709(app, http, kdf, queues):
    _busy(app)
    assert bulk(http, CLIENT) == "1709||" and kdf.calls == 0


def rest(http, address: str, headers: dict):
    return http.post("/api/v1/messages", json=body(), headers=headers, environ_base={"REMOTE_ADDR": address})


def test_rest_basic_after_the_limit_is_401_without_the_kdf(http, kdf, redis_client, key_prefix, queues):
    for n in range(LIMIT):
        assert rest(http, ATTACKER, basic("acme", f"guess-{n}")).status_code == 401
    response = rest(http, ATTACKER, basic("acme", PASSWORD))
    assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
    assert kdf.calls == LIMIT
    _nothing_queued(redis_client, key_prefix, queues)
    assert rest(http, CLIENT, basic("acme", PASSWORD)).status_code == 202


def test_rest_refused_api_keys_count_against_the_address(http, kdf):
    for n in range(LIMIT):
        assert rest(http, ATTACKER, {"Authorization": f"Bearer smsagg_{n}"}).status_code == 401
    assert rest(http, ATTACKER, basic("acme", PASSWORD)).status_code == 401 and kdf.calls == 0


def test_rest_with_the_kdf_busy_is_503_with_retry_after(app, http, kdf, queues):
    _busy(app)
    response = rest(http, CLIENT, basic("acme", PASSWORD))
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "authentication_busy" and kdf.calls == 0


def gms(http, address: str, password: str):
    return http.get("/genesys/1/service/none", headers={"Authorization": basic_auth_header("mobileapp", password)},
                    environ_base={"REMOTE_ADDR": address})


def test_gms_after_the_limit_is_401_without_the_kdf(http, kdf):
    for n in range(LIMIT):
        assert gms(http, ATTACKER, f"guess-{n}").status_code == 401
    assert gms(http, ATTACKER, "app-secret-1").status_code == 401 and kdf.calls == LIMIT
    assert gms(http, CLIENT, "app-secret-1").status_code == 404  # authenticated: no such service


def test_gms_with_the_kdf_busy_is_503_with_retry_after(app, http, kdf):
    _busy(app)
    response = gms(http, CLIENT, "app-secret-1")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.get_json()["error"] == "authentication_busy" and kdf.calls == 0


def test_console_after_the_limit_is_429_without_the_kdf(gateway, app, monkeypatch):
    with session_scope(gateway.database_url) as session:
        operators.add_operator(session, "alice", "operator-pw-1")
    counted = CountedKdf(operators.verify_password)
    monkeypatch.setattr(operators, "verify_password", counted)

    def login(client, address: str, password: str):
        token = csrf_of(client.get("/console/login").get_data(as_text=True))
        return client.post("/console/login", data={"login": "alice", "password": password, "csrf_token": token},
                           environ_base={"REMOTE_ADDR": address})

    attacker = app.test_client()
    for n in range(LIMIT):
        assert login(attacker, ATTACKER, f"guess-{n}").status_code == 200
    assert login(attacker, ATTACKER, "operator-pw-1").status_code == 429 and counted.calls == LIMIT
    assert login(app.test_client(), CLIENT, "operator-pw-1").status_code == 302
