"""Scheduling (seed 001, "Submit Scheduler Messages") with a controllable clock: the
ingress decides ``now``, the release takes ``now``; durable rows, the Redis index rebuilt
from them, listing and cancelling (CLI-free: the HTTP extension and the services)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.bulk import batches, credit
from app.bulk.models import Batch
from app.db.session import session_scope
from tests.integration.bulk.conftest import (
    METHODS,
    account_id,
    call,
    codes,
    entries,
    params,
)

SCHEDULE = "/bulksms/schedulemsg"
NOW = datetime(2027, 5, 4, 9, 0, tzinfo=timezone.utc).timestamp()   # 05/04/2027 09:00 UTC
DUE = datetime(2027, 5, 4, 10, 30, tzinfo=timezone.utc).timestamp()  # 16:00 at +05:30


def scheduled(**changes):
    return params(**{"date": "05/04/2027", "time": "04:00 pm", "gmt": "GMT +5:30", **changes})


@pytest.fixture
def clocked(bulk_app):
    bulk_app.extensions["bulksms"].clock = lambda: NOW
    return bulk_app.test_client()


def batch_of(body: str) -> str:
    return entries(body)[0][2][:24]


@METHODS
def test_scheduled_batch_waits_is_released_once_at_its_time(clocked, redis_client, bulk_store, gateway, method, queued_tasks):
    body = call(clocked, method, SCHEDULE, scheduled(destination="12025550100,12025550101"))
    assert codes(body) == [1701, 1701]
    batch_id = batch_of(body)
    assert redis_client.zscore(bulk_store.keys.schedule(), batch_id) == DUE
    assert queued_tasks() == [("smsagg.bulk.persist", [batch_id])]
    with session_scope(gateway.database_url) as session:
        row = batches.ensure_record(session, bulk_store, batch_id)
        assert (row.status, row.total, row.due_at.timestamp()) == ("scheduled", 2, DUE)
    redis_client.delete("mt.bulk")
    with session_scope(gateway.database_url) as session:
        assert batches.release_due(session, bulk_store, DUE - 0.001) == []
        assert batches.release_due(session, bulk_store, DUE) == [batch_id]
        assert batches.release_due(session, bulk_store, DUE + 5) == []
    assert queued_tasks() == [("smsagg.bulk.fanout", [batch_id])]
    with session_scope(gateway.database_url) as session:
        assert session.get(Batch, batch_id).status == "released"
    assert batches.fan_out(bulk_store, batch_id, chunk=1) == 2
    assert batches.fan_out(bulk_store, batch_id, chunk=1) == 0  # a redelivered fan-out pushes nothing
    tasks = queued_tasks()
    assert [t for t, _ in tasks] == ["smsagg.bulk.fanout", "smsagg.mt.bulk", "smsagg.mt.bulk"]
    assert [p["phone_number"] for _, [p] in tasks[1:]] == ["12025550100", "12025550101"]
    assert all(p["batch_id"] == batch_id for _, [p] in tasks[1:])


def test_bulksms_with_date_time_gmt_is_scheduled_too(clocked, redis_client, bulk_store):
    """The seed's own scheduler examples call /bulksms/bulksms with date/time/gmt."""
    body = call(clocked, "GET", "/bulksms/bulksms", scheduled())
    assert redis_client.zscore(bulk_store.keys.schedule(), batch_of(body)) == DUE


@METHODS
def test_a_time_in_the_past_is_sent_at_once(clocked, redis_client, bulk_store, method, queued_tasks):
    body = call(clocked, method, SCHEDULE, scheduled(date="05/03/2027", destination="12025550100,12025550101"))
    assert codes(body) == [1701, 1701]
    assert redis_client.zcard(bulk_store.keys.schedule()) == 0
    assert queued_tasks() == [("smsagg.bulk.fanout", [batch_of(body)])]


BAD = [
    ("no-such-day", {"date": "02/30/2027"}), ("hour-13-minute-75", {"time": "13:75 pm"}),
    ("gmt-plus-14", {"gmt": "GMT +14:00"}), ("gmt-45-minutes", {"gmt": "+05:45"}),
    ("date-missing", {"date": None}), ("time-blank", {"time": ""}), ("year-3000", {"date": "01/01/3000"}),
]


@METHODS
@pytest.mark.parametrize("case,change", BAD, ids=[c for c, _ in BAD])
def test_absurd_schedules_get_1702_and_leave_nothing(clocked, redis_client, bulk_store, method, case, change, queued_tasks):
    assert call(clocked, method, SCHEDULE, scheduled(**change)) == "1702||"
    assert queued_tasks() == [] and redis_client.zcard(bulk_store.keys.schedule()) == 0


def test_list_and_cancel_over_http_refund_a_prepaid_account(clocked, redis_client, bulk_store, gateway):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        credit.adjust(session, bulk_store, acme, 50_000)
    body = call(clocked, "POST", SCHEDULE, scheduled(destination="12025550100,12025550101,12025550102"))
    batch_id = batch_of(body)
    assert credit.balance(bulk_store, acme) == 20_000
    auth = {"username": "acme", "password": params()["password"]}
    assert call(clocked, "GET", "/bulksms/schedules", auth) == f"{batch_id}|2027-05-04T10:30:00+00:00|3"
    assert call(clocked, "GET", "/bulksms/schedules", {"username": "other", "password": auth["password"]}) == ""
    assert call(clocked, "GET", "/bulksms/cancelschedule", {**auth, "batch_id": "0" * 24}) == f"1702|{'0' * 24}|missing"
    other = {"username": "other", "password": auth["password"], "batch_id": batch_id}
    assert call(clocked, "GET", "/bulksms/cancelschedule", other) == f"1702|{batch_id}|missing"
    message_id = entries(body)[1][2]
    assert call(clocked, "POST", "/bulksms/cancelschedule", {**auth, "message_id": message_id}) == \
        f"1701|{batch_id}|cancelled"
    assert call(clocked, "POST", "/bulksms/cancelschedule", {**auth, "batch_id": batch_id}) == \
        f"1702|{batch_id}|cancelled"
    assert credit.balance(bulk_store, acme) == 50_000
    assert redis_client.zcard(bulk_store.keys.schedule()) == 0
    with session_scope(gateway.database_url) as session:
        assert batches.release_due(session, bulk_store, DUE + 60) == []
        assert session.get(Batch, batch_id).status == "cancelled"
        credit.drain_journal(session, bulk_store)
        assert credit.ledger_balance(session, acme) == 50_000
    # the duplicate window was freed with the cancellation
    assert codes(call(clocked, "GET", SCHEDULE, scheduled(destination="12025550100"))) == [1701]


def test_cancel_after_release_is_too_late(clocked, bulk_store, gateway):
    batch_id = batch_of(call(clocked, "GET", SCHEDULE, scheduled()))
    with session_scope(gateway.database_url) as session:
        batches.release_due(session, bulk_store, DUE)
        assert batches.cancel(session, bulk_store, batch_id) == (False, "released")


def test_index_rebuilt_from_the_database_when_redis_lost_it(clocked, redis_client, bulk_store, gateway):
    batch_id = batch_of(call(clocked, "GET", SCHEDULE, scheduled(destination="12025550100,12025550101")))
    with session_scope(gateway.database_url) as session:
        batches.ensure_record(session, bulk_store, batch_id)
    for key in redis_client.scan_iter(match=f"{bulk_store.keys.prefix}*"):
        redis_client.delete(key)  # Redis lost everything of ours
    redis_client.delete("mt.bulk")
    with session_scope(gateway.database_url) as session:
        assert batches.rebuild_index(session, bulk_store)["restored"] == 1
        assert batches.rebuild_index(session, bulk_store) == {"restored": 0, "indexed": 1, "moved_forward": 0}
        assert [s.batch_id for s in batches.list_scheduled(bulk_store)] == [batch_id]
        assert batches.release_due(session, bulk_store, DUE) == [batch_id]
    assert batches.fan_out(bulk_store, batch_id, chunk=10) == 2
    with session_scope(gateway.database_url) as session:
        assert batches.rebuild_index(session, bulk_store) == {"restored": 0, "indexed": 0, "moved_forward": 0}
