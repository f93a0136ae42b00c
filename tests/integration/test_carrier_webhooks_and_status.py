"""Carrier webhooks (``/carriers/<id>/dr|mo``) and the message status API."""

from __future__ import annotations

import base64
import json

import pytest

from app.adapters.stage_queue import INBOUND_DRAIN_TASK
from app.db.models import Carrier
from app.db.session import session_scope
from app.web import create_app
from tests.integration.conftest import PASSWORD
from tests.integration.test_httpapi import params, submit


@pytest.fixture
def webhook_client(gateway):
    with session_scope(gateway.database_url) as session:
        carrier = session.get(Carrier, 99901)
        carrier.settings = {**carrier.settings, "webhook_token": "tok-123"}
    return create_app(gateway).test_client()


def queued_items(redis_client, queued):
    """The items on the inbound list, oldest first; a drain task waits for them."""
    [drain] = [json.loads(raw) for raw in redis_client.lrange("inbound", 0, -1)]
    assert drain["headers"]["task"] == INBOUND_DRAIN_TASK
    return list(reversed(queued("inbound")))


def post(client, path, data, token="tok-123", **kwargs):
    headers = {"X-Smsagg-Carrier-Token": token} if token else {}
    return client.post(path, data=data, headers=headers, **kwargs)


def test_dr_webhook_is_queued(webhook_client, redis_client, queued):
    response = post(webhook_client, "/carriers/99901/dr", {"message_id": "abc", "status": "DELIVRD", "err": "000"})
    assert response.status_code == 200 and response.get_data(as_text=True) == "OK"
    [item] = queued_items(redis_client, queued)
    assert item["source"] == "webhook_dr" and item["carrier"] == 99901 and item["fields"]["message_id"] == "abc"


def test_basic_auth_works_too(webhook_client, redis_client):
    auth = "Basic " + base64.b64encode(b"99901:tok-123").decode()
    response = webhook_client.post("/carriers/99901/dr", data={"message_id": "a", "status": "2"},
                                   headers={"Authorization": auth})
    assert response.status_code == 200


def test_mo_webhook_with_mms(webhook_client, redis_client, queued):
    response = post(webhook_client, "/carriers/99901/mo", {
        "from": "447700900555", "to": "99222", "text": "pic",
        "mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "iVBORw=="})
    assert response.status_code == 200
    [item] = queued_items(redis_client, queued)
    assert item["fields"]["attachments"] == [["image/png", "iVBORw=="]]


@pytest.mark.parametrize("path,data,token,status,field", [
    ("/carriers/99901/dr", {"status": "DELIVRD"}, "tok-123", 400, "message_id"),
    ("/carriers/99901/dr", {"message_id": "a"}, "tok-123", 400, "status"),
    ("/carriers/99901/dr", {"message_id": "a", "status": "MAYBE"}, "tok-123", 400, "status"),
    ("/carriers/99901/mo", {"to": "99222", "text": "x"}, "tok-123", 400, "from"),
    ("/carriers/99901/mo", {"from": "1", "to": "2", "text": "x", "mms_attachment[0].content": "eA=="},
     "tok-123", 400, "mms_attachment"),
    ("/carriers/99901/dr", {"message_id": "a", "status": "2"}, "wrong", 401, None),
    ("/carriers/99901/dr", {"message_id": "a", "status": "2"}, None, 401, None),
    ("/carriers/424242/dr", {"message_id": "a", "status": "2"}, "tok-123", 404, None),
])
def test_bad_webhooks_get_clear_errors_and_queue_nothing(webhook_client, redis_client, path, data, token, status, field, queued):
    response = post(webhook_client, path, data, token)
    assert response.status_code == status
    body = response.get_json()
    assert body["error"] and (field is None or body["field"] == field)
    assert queued("inbound") == [] and redis_client.llen("inbound") == 0


def test_oversize_webhook_is_413(webhook_client, redis_client, queued):
    response = post(webhook_client, "/carriers/99901/dr", {"message_id": "a", "status": "2", "pad": "x" * 70000})
    assert response.status_code == 413 and queued("inbound") == [] and redis_client.llen("inbound") == 0


def test_carrier_without_token_cannot_use_webhooks(client, redis_client):
    assert post(client, "/carriers/99901/dr", {"message_id": "a", "status": "2"}).status_code == 401


def basic(login, password):
    return {"Authorization": "Basic " + base64.b64encode(f"{login}:{password}".encode()).decode()}


def record_one(gateway, client, message_id="st-1"):
    """Submit and record (as the worker does) without running a worker."""
    from datetime import datetime, timezone

    import redis

    from app.adapters.redis_scripts import RedisKeys
    from app.services.intake import record_accepted

    assert submit(client, "POST", params(message_id=message_id)) == 0
    raw = redis.Redis.from_url(gateway.redis_url).lindex(RedisKeys(gateway.key_prefix).stage_pending("mt.bulk"), 0)
    with session_scope(gateway.database_url) as session:
        record_accepted(session, json.loads(raw), now=datetime.now(timezone.utc), route=lambda _n: 99901,
                        refund=lambda *_: None)


def test_status_api_shows_the_message_and_its_timeline(gateway, client):
    record_one(gateway, client)
    response = client.get("/api/v1/messages/st-1", headers=basic("acme", PASSWORD))
    assert response.status_code == 200
    body = response.get_json()
    assert body["message_id"] == "st-1" and body["state"] == 6 and body["carrier"] == 99901
    assert [e["kind"] for e in body["events"]] == ["accepted", "routed"]
    assert client.get(f"/api/v1/messages/{body['id']}", headers=basic("acme", PASSWORD)).status_code == 200


def test_status_api_needs_credentials_and_hides_other_accounts(gateway, client):
    record_one(gateway, client)
    assert client.get("/api/v1/messages/st-1").status_code == 401
    assert client.get("/api/v1/messages/st-1", headers=basic("acme", "wrong")).status_code == 401
    other = client.get("/api/v1/messages/st-1", headers=basic("other", PASSWORD))
    assert other.status_code == 404 and other.get_json()["error"] == "not_found"
