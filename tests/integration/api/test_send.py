"""``POST /api/v1/messages`` against real Redis and a real database: one phone number
goes through the MT API's admission (same payload, same idempotency claim, same token
bucket), and every refusal is a documented JSON error that leaves nothing behind."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest

from app.adapters.redis_scripts import RedisKeys
from app.bulk import compliance, credit
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from tests.integration.api.conftest import PASSWORD, account_id, basic, body, issue_key
from tests.integration.test_httpapi import params as genesys_params
from tests.integration.test_httpapi import submit as genesys_submit


def nothing_left(redis_client, key_prefix, pending, claim: str | None = "r-1", acme: int = 1) -> None:
    keys = RedisKeys(key_prefix)
    assert pending() == [] and pending("mt.interactive") == []
    assert redis_client.exists(keys.account_bucket(acme)) == 0
    if claim:
        assert redis_client.exists(keys.idempotency(acme, claim)) == 0


def test_one_number_is_queued_like_the_mt_api(rest, client, pending):
    response = rest("POST", "/api/v1/messages", json=body(receipt=True, app_id="a1", conversation_id="c1"))
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["batch_id"] is None and answer["message_id"] == "r-1" and answer["send_at"] is None
    [sent] = answer["messages"]
    assert sent["status"] == "accepted" and sent["phone_number"] == "12025550100"
    assert genesys_submit(client, "POST", genesys_params(message_id="g-1", receipt="TRUE", app_id="a1",
                                                         conversation_id="c1")) == 0
    genesys_payload, rest_payload = pending()
    assert rest_payload["id"] == sent["id"]
    assert set(rest_payload) == set(genesys_payload)
    for key in ("id", "client_message_id", "accepted_at"):
        rest_payload.pop(key), genesys_payload.pop(key)
    assert rest_payload == genesys_payload


def test_priority_attachments_and_carrier_reach_the_payload(rest, pending):
    response = rest("POST", "/api/v1/messages", json=body(
        priority="INTERACTIVE", carrier=99901, message="",
        attachments=[{"content_type": "image/png", "content": "aGVsbG8="}]))
    assert response.status_code == 202
    [payload] = pending("mt.interactive")
    assert payload["carrier"] == 99901 and payload["attachments"] == [["image/png", "aGVsbG8="]]


def test_dr_mask_reaches_the_payload_only_when_given(rest, pending):
    assert rest("POST", "/api/v1/messages", json=body(receipt=True, dr_mask="final")).status_code == 202
    assert rest("POST", "/api/v1/messages", json=body(message_id="r-2", receipt=True)).status_code == 202
    default, final = pending()
    assert final["dr_mask"] == "final" and "dr_mask" not in default  # none: the account's mask


def test_a_batchs_dr_mask_is_kept_with_its_meta(rest, store):
    response = rest("POST", "/api/v1/messages", json=body(
        phone_numbers=["12025550100", "12025550111"], receipt=True, dr_mask="final",
        send_at=(datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()))
    assert response.status_code == 202
    meta = json.loads(store.client.hget(store.keys.batch(response.get_json()["batch_id"]), "meta"))
    assert meta["dr_mask"] == "final"


def test_idempotency_key_is_the_mt_apis_message_id(rest, client, pending):
    first = rest("POST", "/api/v1/messages", json=body()).get_json()["messages"][0]["id"]
    again = rest("POST", "/api/v1/messages", json=body(phone_numbers=["12025550111"]))
    assert again.status_code == 409
    assert again.get_json()["error"] == "duplicate" and again.get_json()["existing_id"] == first
    assert genesys_submit(client, "POST", genesys_params(message_id="r-1")) == 7
    assert genesys_submit(client, "POST", genesys_params(message_id="g-1")) == 0
    by_header = rest("POST", "/api/v1/messages", json=body(message_id=None), headers={"Idempotency-Key": "g-1"})
    assert by_header.status_code == 409 and by_header.get_json()["existing_id"] == pending()[0]["id"]
    assert len(pending()) == 2


def test_idempotency_key_header(rest, pending):
    response = rest("POST", "/api/v1/messages", json=body(message_id=None), headers={"Idempotency-Key": "h-1"})
    assert response.status_code == 202 and response.get_json()["message_id"] == "h-1"
    assert pending()[0]["client_message_id"] == "h-1"
    disagree = rest("POST", "/api/v1/messages", json=body(message_id="x"), headers={"Idempotency-Key": "y"})
    assert disagree.status_code == 422 and disagree.get_json()["error"] == "validation_error"


def test_concurrent_repeats_yield_one_acceptance(app, api_key, pending):
    from concurrent.futures import ThreadPoolExecutor

    def post(_):
        return app.test_client().post("/api/v1/messages", json=body(message_id="race"),
                                      headers={"Authorization": f"Bearer {api_key}"}).status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(post, range(16)))
    assert statuses == [202] + [409] * 15 and len(pending()) == 1


def test_throttled_spends_nothing(gateway, rest, redis_client, key_prefix, pending):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(rate=0.01, burst=1))
    assert rest("POST", "/api/v1/messages", json=body(message_id="t-1")).status_code == 202
    throttled = rest("POST", "/api/v1/messages", json=body(message_id="t-2"))
    assert throttled.status_code == 429 and throttled.get_json()["error"] == "throttled"
    assert throttled.get_json()["retry_after"] > 1 and int(throttled.headers["Retry-After"]) >= 1
    assert redis_client.exists(RedisKeys(key_prefix).idempotency(account_id(gateway.database_url), "t-2")) == 0
    assert len(pending()) == 1


def test_basic_auth_works_and_bad_credentials_are_401(rest, pending):
    assert rest("POST", "/api/v1/messages", token=None, headers=basic("acme", PASSWORD), json=body()).status_code == 202
    for headers in ({}, basic("acme", "wrong"), {"Authorization": "Bearer nope"},
                    {"Authorization": "Bearer smsagg_aaaaaaaaaa_" + "A" * 43}, {"Authorization": "Token x"},
                    {"X-Api-Key": "whatever"}):
        response = rest("POST", "/api/v1/messages", token=None, headers=headers, json=body(message_id="b-2"))
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"
        assert "Bearer" in response.headers["WWW-Authenticate"]
    assert len(pending()) == 1


def test_revoked_key_and_disabled_account_are_refused(gateway, rest, api_key):
    from datetime import datetime, timezone

    from app.api import keys

    with session_scope(gateway.database_url) as session:
        keys.revoke_key(session, keys.claimed_key_id(api_key), now=datetime.now(timezone.utc))
    assert rest("GET", "/api/v1/messages").status_code == 401
    fresh = issue_key(gateway.database_url)
    assert rest("GET", "/api/v1/messages", token=fresh).status_code == 200
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", enabled=False, options=AccountOptions())
    assert rest("GET", "/api/v1/messages", token=fresh).status_code == 401


def test_ip_allowlist_and_denylist_are_403(gateway, rest, pending):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(allowed_ips=("10.0.0.0/8",)))
    refused = rest("POST", "/api/v1/messages", json=body())
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    assert rest("POST", "/api/v1/messages", json=body(), remote_addr="10.1.2.3").status_code == 202
    with session_scope(gateway.database_url) as session:
        compliance.deny_ip(session, "10.1.0.0/16")
    assert rest("GET", "/api/v1/messages", remote_addr="10.1.2.3").status_code == 403
    assert len(pending()) == 1


# (case, body or raw bytes, content type, status, error code)
BAD_INPUT = [
    ("not-json", b"{nope", "application/json", 400, "invalid_json"),
    ("not-utf8", b'{"message": "\xff"}', "application/json", 400, "invalid_json"),
    ("lone-surrogate", b'{"message": "\\ud800"}', "application/json", 400, "invalid_json"),
    ("form", b"phone_numbers=1", "application/x-www-form-urlencoded", 415, "unsupported_media_type"),
    ("no-type", b"{}", None, 415, "unsupported_media_type"),
    ("array", b"[]", "application/json", 422, "validation_error"),
    ("empty-object", b"{}", "application/json", 422, "validation_error"),
    ("unknown-field", body(shortcode="99222"), None, 422, "unknown_field"),
    ("string-for-list", body(phone_numbers="12025550100"), None, 422, "validation_error"),
    ("string-for-bool", body(receipt="TRUE"), None, 422, "validation_error"),
    ("number-for-string", body(message=5), None, 422, "validation_error"),
    ("string-for-int", body(carrier="99901"), None, 422, "validation_error"),
    ("float-carrier", body(carrier=1.5), None, 422, "validation_error"),
    ("bad-priority", body(priority="interactive"), None, 422, "validation_error"),
    ("bad-dr-mask", body(dr_mask="FINAL"), None, 422, "validation_error"),
    ("number-dr-mask", body(dr_mask=3), None, 422, "validation_error"),
    ("plus-number", body(phone_numbers=["+12025550100"]), None, 422, "validation_error"),
    ("national-number", body(phone_numbers=["02025550100"]), None, 422, "validation_error"),
    ("repeated-number", body(phone_numbers=["12025550100", "12025550100"]), None, 422, "validation_error"),
    ("no-numbers", body(phone_numbers=[]), None, 422, "validation_error"),
    ("empty-message", body(message=""), None, 422, "validation_error"),
    ("nul-in-message", body(message="a\u0000b"), None, 422, "validation_error"),
    ("long-message-id", body(message_id="x" * 129), None, 422, "validation_error"),
    ("naive-send-at", body(send_at="2030-01-01T10:00:00"), None, 422, "validation_error"),
    ("epoch-send-at", body(send_at="1900000000"), None, 422, "validation_error"),
    ("bad-base64", body(attachments=[{"content_type": "image/png", "content": "%%%"}]), None, 422,
     "validation_error"),
    ("attachment-extra", body(attachments=[{"content_type": "image/png", "content": "eA==", "x": 1}]), None, 422,
     "unknown_field"),
    ("carrier-with-batch", body(phone_numbers=["12025550100", "12025550101"], carrier=99901), None, 422,
     "validation_error"),
    ("unknown-carrier", body(carrier=4242), None, 422, "unknown_carrier"),
    ("foreign-sender", body(sender="55555"), None, 403, "sender_not_allowed"),
    ("unknown-sender", body(sender="31337"), None, 403, "sender_not_allowed"),
    ("bad-key-header", body(), None, 422, "validation_error"),
]


@pytest.mark.parametrize("case,payload,content_type,status,code", BAD_INPUT, ids=[c[0] for c in BAD_INPUT])
def test_bad_input_is_a_json_error_and_leaves_nothing(rest, redis_client, key_prefix, pending, gateway,
                                                      case, payload, content_type, status, code):
    headers = {"Idempotency-Key": " padded "} if case == "bad-key-header" else {}
    if isinstance(payload, bytes):
        kwargs = {"data": payload, "content_type": content_type} if content_type else {"data": payload}
    else:
        kwargs = {"data": json.dumps(payload), "content_type": "application/json"}
    response = rest("POST", "/api/v1/messages", headers=headers, **kwargs)
    assert (response.status_code, response.get_json()["error"]) == (status, code), response.get_json()
    nothing_left(redis_client, key_prefix, pending, acme=account_id(gateway.database_url))


def test_validation_errors_name_their_fields(rest):
    answer = rest("POST", "/api/v1/messages", json=body(receipt="yes", extra=1, phone_numbers=["1"])).get_json()
    assert answer["error"] == "unknown_field" and answer["errors"] == [{"field": "extra", "message": "unknown field"}]
    answer = rest("POST", "/api/v1/messages", json=body(receipt="yes", phone_numbers=["1"])).get_json()
    assert {e["field"] for e in answer["errors"]} == {"receipt", "phone_numbers.0"}


def test_oversized_body_is_413(gateway, rest, pending):
    big = json.dumps(body(message="x" * (gateway.max_request_bytes + 10)))
    response = rest("POST", "/api/v1/messages", data=big, content_type="application/json")
    assert response.status_code == 413 and response.get_json()["error"] == "payload_too_large"
    assert pending() == []


def test_account_rules_map_to_their_codes(gateway, rest, store, pending):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(max_length=5, message_id_optional=False))
    too_long = rest("POST", "/api/v1/messages", json=body(message="123456"))
    assert too_long.status_code == 422 and too_long.get_json()["error"] == "message_too_long"
    no_key = rest("POST", "/api/v1/messages", json=body(message_id=None, message="hi"))
    assert no_key.status_code == 422 and no_key.get_json()["error"] == "validation_error"
    with session_scope(gateway.database_url) as session:
        compliance.record_mo_keyword(session, acme, "12025550199", "STOP", store=store)
        credit.adjust(session, store, acme, 10_000)
    opted = rest("POST", "/api/v1/messages", json=body(phone_numbers=["12025550199"], message="hi"))
    assert opted.status_code == 422 and opted.get_json()["error"] == "opted_out"
    assert rest("POST", "/api/v1/messages", json=body(message="hi", message_id="c-1")).status_code == 202
    broke = rest("POST", "/api/v1/messages", json=body(message="hi", message_id="c-2"))
    assert broke.status_code == 402 and broke.get_json()["error"] == "insufficient_credit"
    assert len(pending()) == 1 and credit.balance(store, acme) == 0


def test_redis_down_is_503_and_nothing_is_queued(gateway, pending):
    from dataclasses import replace

    from app.api import keys
    from app.web import create_app

    with session_scope(gateway.database_url) as session:
        token = keys.create_key(session, "acme").token
    broken = create_app(replace(gateway, redis_url="redis://127.0.0.1:1/0"))
    response = broken.test_client().post("/api/v1/messages", json=body(),
                                         headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 503 and response.get_json()["error"] == "unavailable"


def test_a_huge_bad_list_is_refused_cheaply_with_a_short_answer(rest, pending):
    many_bad = rest("POST", "/api/v1/messages", json=body(phone_numbers=["x"] * 5000))
    assert many_bad.status_code == 422 and len(many_bad.get_json()["errors"]) == 20
    assert "(and 4980 more)" in many_bad.get_json()["message"] and len(many_bad.data) < 5000
    too_many = rest("POST", "/api/v1/messages", json=body(phone_numbers=[str(10**10 + i) for i in range(100_001)]))
    assert too_many.status_code == 422 and too_many.get_json()["errors"] == [
        {"field": "phone_numbers", "message": "List should have at most 100000 items after validation, not 100001"}]
    over_setting = rest("POST", "/api/v1/messages", json=body(phone_numbers=[str(10**10 + i) for i in range(10_001)]))
    assert over_setting.status_code == 422 and over_setting.get_json()["error"] == "validation_error"
    assert pending() == []


def test_a_chunked_body_is_read_and_one_over_the_limit_is_413(app, api_key, gateway, pending):
    """A chunked body has no Content-Length: werkzeug cuts it at the limit silently, so
    the view refuses one that reaches it instead of reading it as truncated JSON."""
    import io

    def chunked(data: bytes):
        return app.test_client().post(
            "/api/v1/messages", input_stream=io.BytesIO(data), content_type="application/json",
            headers={"Authorization": f"Bearer {api_key}", "Transfer-Encoding": "chunked"},
            environ_overrides={"wsgi.input_terminated": True})

    assert chunked(json.dumps(body()).encode()).status_code == 202
    big = chunked(json.dumps(body(message_id="r-2", message="x" * gateway.max_request_bytes)).encode())
    assert big.status_code == 413 and big.get_json()["error"] == "payload_too_large"
    assert len(pending()) == 1
