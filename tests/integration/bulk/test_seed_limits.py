"""Seed 001's limits at the edges: numeric sources up to 18 digits ("Max Length of 18 if
numeric"), and its API being a GET, so a long destination list is a long request line:
1,000 destinations work, and a line past ``SMSAGG_MAX_REQUEST_LINE`` is the seed's own
"Invalid URL" (``1702||``, table row 2), never a bare status from the HTTP server."""

from __future__ import annotations

import http.client
from urllib.parse import urlencode

import pytest

from app.db.session import session_scope
from app.services import accounts as svc
from app.services.errors import InvalidValue
from tests.conftest import free_port
from tests.integration.bulk.conftest import call, codes, entries, params
from tests.integration.workers import port_open, running

BULK = "/bulksms/bulksms"
THOUSAND = ",".join(str(4477009000000 + i) for i in range(1000))  # 13 digits each


def nothing_queued(redis_client, bulk_store) -> bool:
    batches = list(redis_client.scan_iter(match=bulk_store.keys.prefix + "batch:*"))
    return redis_client.llen("mt.bulk") + redis_client.llen(bulk_store.keys.stage_pending("mt.bulk")) == 0 \
        and not batches


@pytest.mark.parametrize("source", ["1234567890123456", "123456789012345678", "+123456789012345678"])
def test_numeric_sources_up_to_18_digits_register_and_send(bulk_client, gateway, queued_tasks, source):
    digits = source.lstrip("+")
    with session_scope(gateway.database_url) as session:
        assert svc.add_sender(session, digits, login="acme").kind == "long_number"
    [(code, _, _)] = entries(call(bulk_client, "GET", BULK, params(source=source)))
    assert code == 1701
    _, [payload] = queued_tasks()[-1]
    assert payload["sender"] == digits


def test_a_19_digit_sender_cannot_be_registered(gateway):
    with session_scope(gateway.database_url) as session, pytest.raises(InvalidValue):
        svc.add_sender(session, "1" * 19, login="acme")


def test_a_get_with_1000_destinations_is_taken(bulk_client, queued_tasks):
    query = urlencode(params(destination=THOUSAND))
    assert len(f"GET {BULK}?{query} HTTP/1.1") > 16_000
    body = call(bulk_client, "GET", BULK, query)
    assert codes(body) == [1701] * 1000
    assert [t for t, _ in queued_tasks()] == ["smsagg.bulk.fanout"]


def test_a_request_line_past_the_limit_is_1702_and_nothing_is_queued(gateway, redis_client, bulk_store):
    from dataclasses import replace

    from app.web import create_app

    client = create_app(replace(gateway, max_request_line=8192)).test_client()
    assert call(client, "GET", BULK, urlencode(params(destination=THOUSAND))) == "1702||"
    assert call(client, "GET", "/bulksms/schedulemsg", urlencode(params(destination=THOUSAND))) == "1702||"
    assert nothing_queued(redis_client, bulk_store)
    # the same destinations in a POST body are not a request line
    assert codes(call(client, "POST", BULK, params(destination=THOUSAND))) == [1701] * 1000
    # elsewhere: a 414, or the REST API's own error document
    assert client.get("/httpapi/receiver?" + "x" * 9000).status_code == 414
    response = client.get("/genesys/1/storage/x?" + "x" * 9000)
    assert response.status_code == 414 and response.get_json()["error"] == "request_uri_too_long"
    assert "error" in client.get("/api/v1/messages?" + "x" * 9000).get_json()


def _get(port: int, target: str) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", target)
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_under_smsagg_web(server, gateway, tmp_path, monkeypatch):
    """The server ``smsagg web`` runs (granian; gunicorn's own 8 KB limit is raised the
    same way) takes lines up to at least twice SMSAGG_MAX_REQUEST_LINE, so the app
    answers long lines in the seed's format."""
    monkeypatch.setenv("SMSAGG_MAX_REQUEST_LINE", "32768")
    monkeypatch.setenv("SMSAGG_WEB_SERVER", server)
    port = free_port()
    with running(["web", "--port", str(port), "--workers", "1", "--threads", "2"], gateway,
                 tmp_path / "web.log", ready=port_open(port)):
        status, body = _get(port, f"{BULK}?{urlencode(params(destination=THOUSAND))}")
        assert status == 200 and codes(body) == [1701] * 1000
        longer = ",".join(str(120255500000 + i) for i in range(2500))  # ~37 KB: past the app's limit
        assert _get(port, f"{BULK}?{urlencode(params(destination=longer))}") == (200, "1702||")
        # past twice the setting the server's own bound answers (a bare 414): finite,
        # so no client streams an endless line into the worker
        status, _ = _get(port, f"{BULK}?destination={'1' * 70_000}")
        assert status == 414
        assert _get(port, "/healthz")[0] == 200  # the worker is still serving
