"""Batches over the REST API: several phone numbers or a ``send_at`` go through the bulk
admission (one script, credit all or nothing, the idempotency claim in the same step),
are readable before any worker recorded them, and a scheduled one can be cancelled."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from app.adapters.redis_scripts import RedisKeys
from app.bulk import batches, compliance, credit
from app.db.session import session_scope
from tests.integration.api.conftest import account_id, body
from tests.integration.test_httpapi import params as genesys_params
from tests.integration.test_httpapi import submit as genesys_submit

NUMBERS = ["12025550100", "12025550101", "12025550102"]


def tasks(redis_client, queue: str = "mt.bulk") -> list[str]:
    return [json.loads(raw)["headers"]["task"] for raw in redis_client.lrange(queue, 0, -1)]


def later(hours: float = 2) -> str:
    return (datetime.now(timezone.utc) + timedelta(hours=hours)).isoformat()


def test_many_numbers_make_one_fanout_batch(rest, redis_client, pending):
    response = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, receipt=True, priority="BULK_LOW"))
    assert response.status_code == 202
    answer = response.get_json()
    batch_id = answer["batch_id"]
    assert len(batch_id) == 24 and answer["send_at"] is None
    assert [m["id"] for m in answer["messages"]] == [f"{batch_id}{i:08x}" for i in range(3)]
    assert all(m["status"] == "accepted" for m in answer["messages"])
    assert tasks(redis_client, "mt.bulk_low") == ["smsagg.bulk.fanout"] and pending() == []
    shown = rest("GET", f"/api/v1/messages/{batch_id}00000001").get_json()
    assert shown["phone_number"] == NUMBERS[1] and shown["state_name"] == "accepted"
    assert shown["schedule_status"] == "released" and shown["batch_id"] == batch_id and shown["priority"] == "BULK_LOW"


def test_unicode_text_goes_as_the_mt_api_would_choose(rest, store):
    batch_id = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS[:2], message="Привет")
                    ).get_json()["batch_id"]
    meta = json.loads(store.client.hget(store.keys.batch(batch_id), "meta"))
    assert meta["encoding"] == "ucs2" and meta["type"] == 2
    batch_id = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS[:2], message="Hi €",
                                                          message_id="r-2")).get_json()["batch_id"]
    assert json.loads(store.client.hget(store.keys.batch(batch_id), "meta"))["encoding"] == "gsm7"


def test_batch_idempotency_key_is_claimed_like_the_mt_apis(rest, client, redis_client, gateway, key_prefix):
    first = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS)).get_json()["batch_id"]
    again = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS[:1], send_at=later()))
    assert again.status_code == 409 and again.get_json()["existing_id"] == first, again.get_json()
    assert rest("POST", "/api/v1/messages", json=body()).get_json()["existing_id"] == first
    assert genesys_submit(client, "POST", genesys_params(message_id="r-1")) == 7
    claim = RedisKeys(key_prefix).idempotency(account_id(gateway.database_url), "r-1")
    assert redis_client.get(claim).decode() == first and 0 < redis_client.ttl(claim) <= gateway.idempotency_ttl_seconds
    assert tasks(redis_client) == ["smsagg.bulk.fanout"]


def test_per_number_refusals_and_all_refused(gateway, rest, store, redis_client):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        compliance.dnd_add(session, store, [NUMBERS[0]])
        compliance.record_mo_keyword(session, acme, NUMBERS[1], "STOP", store=store)
    answer = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS)).get_json()
    assert [(m["status"], m["error"]) for m in answer["messages"]] == [
        ("refused", "dnd"), ("refused", "opted_out"), ("accepted", None)]
    repeat = rest("POST", "/api/v1/messages", json=body(phone_numbers=[NUMBERS[2]], message_id="r-2",
                                                        send_at=later()))
    assert repeat.status_code == 422 and repeat.get_json()["error"] == "duplicate_content"
    mixed = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, message_id="r-3"))
    assert mixed.status_code == 422 and mixed.get_json()["error"] == "destinations_refused"
    assert [d["error"] for d in mixed.get_json()["destinations"]] == ["dnd", "opted_out", "duplicate_content"]
    assert redis_client.exists(store.keys.idempotency(acme, "r-3")) == 0
    assert tasks(redis_client) == ["smsagg.bulk.fanout"]


def test_credit_is_all_or_nothing(gateway, rest, store, redis_client):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        credit.adjust(session, store, acme, 2 * 10_000)
    refused = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS))
    assert refused.status_code == 402 and refused.get_json()["error"] == "insufficient_credit"
    assert credit.balance(store, acme) == 2 * 10_000 and tasks(redis_client) == []
    assert rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS[:2])).status_code == 202
    assert credit.balance(store, acme) == 0


def test_content_rules_of_the_bulk_api_apply(gateway, rest, store):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        compliance.spam_add(session, "free money", is_regex=False)
        compliance.template_add(session, acme, "Your code is {#var#}")
    spam = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, message="FREE money now"))
    assert spam.status_code == 422 and spam.get_json()["error"] == "spam"
    foreign = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, sender="55555"))
    assert foreign.status_code == 403 and foreign.get_json()["error"] == "sender_not_allowed"
    with session_scope(gateway.database_url) as session:
        credit.policy(session, acme).templates_only = True
    mismatch = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, message="Hello"))
    assert mismatch.status_code == 422 and mismatch.get_json()["error"] == "template_mismatch"
    assert rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, message="Your code is 1234")
                ).status_code == 202


def test_scheduled_batch_can_be_read_and_cancelled_once_with_a_refund(gateway, rest, store, redis_client):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        credit.adjust(session, store, acme, 5 * 10_000)
    send_at = (datetime.now(timezone.utc) + timedelta(days=1)).replace(microsecond=0)
    answer = rest("POST", "/api/v1/messages", json=body(phone_numbers=[NUMBERS[0]],
                                                        send_at=send_at.astimezone(timezone(timedelta(hours=5)))
                                                        .isoformat())).get_json()
    batch_id = answer["batch_id"]
    assert datetime.fromisoformat(answer["send_at"]) == send_at
    assert credit.balance(store, acme) == 4 * 10_000
    assert [s.batch_id for s in batches.list_scheduled(store, acme)] == [batch_id]
    message_id = answer["messages"][0]["id"]
    shown = rest("GET", f"/api/v1/messages/{message_id}").get_json()
    assert shown["schedule_status"] == "scheduled" and datetime.fromisoformat(shown["send_at"]) == send_at
    other_key = _key_of(gateway, "other")
    assert rest("DELETE", f"/api/v1/messages/{batch_id}", token=other_key).status_code == 404
    cancelled = rest("DELETE", f"/api/v1/messages/{message_id}")
    assert cancelled.status_code == 200 and cancelled.get_json() == {"batch_id": batch_id, "status": "cancelled",
                                                                     "messages": 1}
    assert credit.balance(store, acme) == 5 * 10_000
    assert rest("DELETE", f"/api/v1/messages/{batch_id}").get_json()["status"] == "cancelled"
    assert credit.balance(store, acme) == 5 * 10_000
    shown = rest("GET", f"/api/v1/messages/{message_id}").get_json()
    assert shown["schedule_status"] == "cancelled" and shown["state_name"] == "deleted"
    assert batches.list_scheduled(store, acme) == []


def _key_of(gateway, login: str) -> str:
    from tests.integration.api.conftest import issue_key

    return issue_key(gateway.database_url, login)


def test_only_a_scheduled_batch_is_cancellable(rest, store, gateway):
    now_batch = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS)).get_json()["batch_id"]
    released = rest("DELETE", f"/api/v1/messages/{now_batch}")
    assert released.status_code == 409 and released.get_json() == {
        "error": "not_cancellable", "message": f"batch {now_batch} is released", "state": "released"}
    assert rest("DELETE", "/api/v1/messages/nothing-here").status_code == 404
    assert rest("DELETE", "/api/v1/messages/" + "ab" * 12).status_code == 404


def test_due_batch_released_by_beat_is_no_longer_cancellable(rest, store, gateway, redis_client):
    answer = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, send_at=later(0.001))).get_json()
    with session_scope(gateway.database_url) as session:
        batches.release_due(session, store, datetime.now(timezone.utc).timestamp() + 10)
    refused = rest("DELETE", f"/api/v1/messages/{answer['batch_id']}")
    assert refused.status_code == 409 and refused.get_json()["state"] == "released"
    assert "smsagg.bulk.fanout" in tasks(redis_client)


def test_past_send_at_sends_now_and_too_far_is_refused(rest, redis_client, pending):
    past = rest("POST", "/api/v1/messages", json=body(send_at="2020-01-01T00:00:00Z")).get_json()
    assert past["send_at"] is None and past["batch_id"] is None  # one number now: the MT API's way
    assert pending()[0]["client_message_id"] == "r-1" and pending()[0]["api"] == "genesys"
    batch = rest("POST", "/api/v1/messages", json=body(phone_numbers=NUMBERS, message_id="r-3",
                                                        send_at="2020-01-01T00:00:00Z")).get_json()
    assert batch["send_at"] is None and batch["batch_id"] is not None
    assert tasks(redis_client) == ["smsagg.bulk.fanout", "smsagg.mt.bulk"]
    far = rest("POST", "/api/v1/messages", json=body(message_id="r-2", send_at=later(24 * 400)))
    assert far.status_code == 422 and far.get_json()["error"] == "validation_error"
