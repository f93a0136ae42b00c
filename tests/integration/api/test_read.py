"""``GET /api/v1/messages/{id}`` (the older status API, kept compatible) and the paged
``GET /api/v1/messages``: only the caller's messages, pages that stay consistent while
messages arrive, and documented errors for bad queries."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

import pytest
import redis

from app.adapters.redis_scripts import RedisKeys
from app.db.models import Message
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services.intake import record_accepted
from tests.integration.api.conftest import PASSWORD, account_id, basic, body, issue_key

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=timezone.utc)


def record_pending(gateway) -> None:
    """What a worker does: record the payload the ingress queued."""
    client = redis.Redis.from_url(gateway.redis_url)
    raw = client.rpop(RedisKeys(gateway.key_prefix).stage_pending("mt.bulk"))
    with session_scope(gateway.database_url) as session:
        record_accepted(session, json.loads(raw), now=datetime.now(timezone.utc), route=lambda _n: 99901,
                        refund=lambda *_: None)


def add_messages(gateway, login: str, count: int, *, start: datetime = T0, state=MessageState.ACCEPTED,
                 tag: str = "m") -> list[str]:
    owner = account_id(gateway.database_url, login)
    ids = []
    with session_scope(gateway.database_url) as session:
        for index in range(count):
            message_id = f"{tag}{index:031d}"[-32:]
            session.add(Message(id=message_id, account_id=owner, client_message_id=f"{tag}-{index}",
                                phone_number="12025550100", sender="99222", text="hi", priority="BULK",
                                state=int(state), accepted_at=start + timedelta(seconds=index // 2), options={}))
            ids.append(message_id)
    return ids


def test_a_sent_message_with_its_timeline(gateway, rest):
    answer = rest("POST", "/api/v1/messages", json=body()).get_json()
    assert rest("GET", "/api/v1/messages/r-1").status_code == 404  # not recorded yet
    record_pending(gateway)
    shown = rest("GET", "/api/v1/messages/r-1").get_json()
    assert shown["id"] == answer["messages"][0]["id"] and shown["message_id"] == "r-1"
    assert shown["state"] == 6 and shown["state_name"] == "accepted" and shown["carrier"] == 99901
    assert [e["kind"] for e in shown["events"]] == ["accepted", "routed"]
    assert datetime.fromisoformat(shown["accepted_at"]).tzinfo is not None
    assert rest("GET", f"/api/v1/messages/{shown['id']}").get_json() == shown


def test_the_status_api_clients_keep_working(gateway, rest):
    """The fields the status API answered (docs/inbound.md) are all still there, with
    HTTP Basic; another account sees nothing."""
    rest("POST", "/api/v1/messages", json=body())
    record_pending(gateway)
    shown = rest("GET", "/api/v1/messages/r-1", token=None, headers=basic("acme", PASSWORD)).get_json()
    assert {"id", "message_id", "phone_number", "sender", "priority", "state", "state_name", "result_code",
            "carrier", "segments", "accepted_at", "segment_submits", "events", "callbacks"} <= set(shown)
    assert rest("GET", "/api/v1/messages/r-1", token=None).status_code == 401
    other = rest("GET", "/api/v1/messages/r-1", token=issue_key(gateway.database_url, "other"))
    assert other.status_code == 404 and other.get_json()["error"] == "not_found"
    assert rest("GET", "/api/v1/messages/r-1", token=None, headers=basic("other", PASSWORD)).status_code == 404


def test_pages_newest_first_only_own_messages(gateway, rest):
    mine = add_messages(gateway, "acme", 7)
    add_messages(gateway, "other", 3, tag="o")
    seen, cursor = [], None
    while True:
        query = {"limit": "3", **({"cursor": cursor} if cursor else {})}
        page = rest("GET", "/api/v1/messages", query_string=query).get_json()
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    expected = [m.id for m in sorted(_rows(gateway, mine), key=lambda m: (m.accepted_at, m.id), reverse=True)]
    assert seen == expected


def _rows(gateway, ids):
    with session_scope(gateway.database_url) as session:
        rows = list(session.query(Message).filter(Message.id.in_(ids)))
        session.expunge_all()
        return rows


def test_a_page_is_stable_while_messages_arrive(gateway, rest):
    add_messages(gateway, "acme", 6)
    first = rest("GET", "/api/v1/messages", query_string={"limit": "2"}).get_json()
    add_messages(gateway, "acme", 4, start=T0 + timedelta(hours=1), tag="n")  # newer ones arrive
    rest_of = []
    cursor = first["next_cursor"]
    while cursor:
        page = rest("GET", "/api/v1/messages", query_string={"limit": "2", "cursor": cursor}).get_json()
        rest_of += [m["id"] for m in page["messages"]]
        cursor = page["next_cursor"]
    listed = [m["id"] for m in first["messages"]] + rest_of
    assert len(listed) == len(set(listed)) == 6 and not any(i.startswith("n") for i in listed)


def test_filters_state_since_until(gateway, rest):
    add_messages(gateway, "acme", 4)
    add_messages(gateway, "acme", 2, state=MessageState.DELIVERED, start=T0 + timedelta(minutes=5), tag="d")
    delivered = rest("GET", "/api/v1/messages", query_string={"state": "delivered"}).get_json()["messages"]
    assert [m["state_name"] for m in delivered] == ["delivered", "delivered"]
    window = {"since": (T0 + timedelta(seconds=1)).isoformat(), "until": (T0 + timedelta(minutes=5)).isoformat()}
    within = rest("GET", "/api/v1/messages", query_string=window).get_json()["messages"]
    assert sorted(m["message_id"] for m in within) == ["m-2", "m-3"]
    offset = {"since": (T0 + timedelta(minutes=5)).astimezone(timezone(timedelta(hours=-3))).isoformat()}
    assert len(rest("GET", "/api/v1/messages", query_string=offset).get_json()["messages"]) == 2


@pytest.mark.parametrize("query,code", [
    ({"limit": "0"}, "validation_error"),
    ({"limit": "201"}, "validation_error"),
    ({"limit": "5.0"}, "validation_error"),
    ({"limit": " 5"}, "validation_error"),
    ({"state": "sent"}, "validation_error"),
    ({"since": "yesterday"}, "validation_error"),
    ({"since": "1700000000"}, "validation_error"),
    ({"since": "2026-11-01T12:00:00"}, "validation_error"),
    ({"cursor": "bm90LWEtY3Vyc29y"}, "validation_error"),
    ({"cursor": "%%%"}, "validation_error"),
    ({"page": "2"}, "unknown_field"),
    ("limit=1&limit=2", "validation_error"),
])
def test_bad_queries_are_422(rest, query, code):
    response = rest("GET", "/api/v1/messages", query_string=query)
    assert response.status_code == 422 and response.get_json()["error"] == code


def test_unknown_paths_and_methods_answer_json(app, api_key):
    client = app.test_client()
    auth = {"Authorization": f"Bearer {api_key}"}
    missing = client.get("/api/v1/nothing", headers=auth)
    assert missing.status_code == 404 and missing.get_json()["error"] == "not_found"
    wrong = client.put("/api/v1/messages", headers=auth, json={})
    assert wrong.status_code == 405 and wrong.get_json()["error"] == "method_not_allowed"


def test_messages_of_a_batch_are_found_by_their_ids_once_recorded(gateway, rest):
    batch_id = rest("POST", "/api/v1/messages", json=body(phone_numbers=["12025550100", "12025550101"])
                    ).get_json()["batch_id"]
    with session_scope(gateway.database_url) as session:
        session.add(Message(id=f"{batch_id}00000000", account_id=account_id(gateway.database_url),
                            phone_number="12025550100", sender="99222", text="Hello", priority="BULK",
                            state=int(MessageState.DELIVERED), accepted_at=T0, options={"batch_id": batch_id}))
    shown = rest("GET", f"/api/v1/messages/{batch_id}00000000").get_json()
    assert shown["state_name"] == "delivered" and shown["batch_id"] == batch_id and shown["schedule_status"] is None
    listed = rest("GET", "/api/v1/messages").get_json()["messages"]
    assert [m["batch_id"] for m in listed] == [batch_id]


@pytest.mark.postgres
def test_paging_and_times_on_postgresql(postgres_url, tmp_path, key_prefix, redis_client, queues):
    from app.db import migrate
    from app.settings import Settings
    from app.web import create_app
    from tests.api_conformance import assert_conforms
    from tests.conftest import TEST_REDIS_URL
    from tests.integration.conftest import provision

    migrate.upgrade(postgres_url)
    gateway = Settings(home=tmp_path, redis_url=TEST_REDIS_URL, database_url=postgres_url, key_prefix=key_prefix,
                       directory_refresh_seconds=0.0)
    provision(postgres_url)
    provision(postgres_url, "other", senders=("55555",))
    mine = add_messages(gateway, "acme", 5)
    add_messages(gateway, "other", 2, tag="o")
    client = create_app(gateway).test_client()
    auth = {"Authorization": f"Bearer {issue_key(postgres_url)}"}
    seen, cursor = [], None
    while True:
        path = "/api/v1/messages?limit=2" + (f"&cursor={cursor}" if cursor else "")
        response = client.get(path, headers=auth)
        assert_conforms("GET", path, response)
        seen += [m["id"] for m in response.get_json()["messages"]]
        cursor = response.get_json()["next_cursor"]
        if cursor is None:
            break
    assert sorted(seen) == sorted(mine) and len(seen) == 5
    since = client.get("/api/v1/messages", query_string={"since": (T0 + timedelta(seconds=1)).isoformat()},
                       headers=auth).get_json()["messages"]
    assert len(since) == 3


@pytest.mark.postgres
def test_hostile_ids_and_credentials_on_postgresql(postgres_url, tmp_path, key_prefix, redis_client, queues):
    """U+0000 cannot reach PostgreSQL (it refuses it in a query): answered before."""
    from app.db import migrate
    from app.settings import Settings
    from app.web import create_app
    from tests.conftest import TEST_REDIS_URL
    from tests.integration.conftest import provision

    migrate.upgrade(postgres_url)
    provision(postgres_url)
    client = create_app(Settings(home=tmp_path, redis_url=TEST_REDIS_URL, database_url=postgres_url,
                                 key_prefix=key_prefix, directory_refresh_seconds=0.0)).test_client()
    auth = {"Authorization": f"Bearer {issue_key(postgres_url)}"}
    assert client.get("/api/v1/messages/a%00b", headers=auth).status_code == 404
    assert client.delete("/api/v1/messages/a%00b", headers=auth).status_code == 404
    assert client.get("/api/v1/messages", headers=basic("acme\x00", PASSWORD)).status_code == 401
