"""The MT stage a batch at a time (``DeliveryService.process_batch``): the set-based
path writes the same rows as the one-at-a-time path, a batch handled twice changes
nothing twice, the odd message in a batch takes the slow path without holding up the
rest, and a carrier's bucket lets through what it holds and paces the others."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app.db.models import Callback, Carrier, Message, MessageEvent, SegmentSubmit
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.delivery import BULK_RESERVE_FRACTION
from tests.unit.delivery.conftest import make_payload


def with_dr_url(database_url):
    with session_scope(database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(dr_url="https://client.example/dr"))


def rows(database_url, model, **where):
    with session_scope(database_url) as session:
        query = select(model)
        for name, value in where.items():
            query = query.where(getattr(model, name) == value)
        return session.scalars(query).all()


def events(database_url, message_id):
    return [e.kind for e in rows(database_url, MessageEvent, message_id=message_id)]


def test_a_batch_is_recorded_submitted_and_reported_like_single_messages(world):
    database_url, service, connectors, store = world
    with_dr_url(database_url)
    batch = [make_payload("a"), make_payload("b", text="x" * 400, receipt=False), make_payload("c", app_id="app-7")]
    outcomes = service.process_batch(batch, interactive=False)
    assert outcomes == {"a": outcomes["a"], "b": outcomes["b"], "c": outcomes["c"]}
    assert all(o.retry_in is None for o in outcomes.values())
    messages = {m.id: m for m in rows(database_url, Message)}
    assert {mid: (m.state, m.segments) for mid, m in messages.items()} == {
        "a": (MessageState.ACCEPTED, 1), "b": (MessageState.ACCEPTED, 3), "c": (MessageState.ACCEPTED, 1)}
    assert {m.carrier_id for m in messages.values()} == {1, 2}  # route 44: round robin over carriers 1 and 2
    assert messages["c"].app_id == "app-7" and messages["a"].receipt and not messages["b"].receipt
    assert all(events(database_url, mid) == ["accepted", "routed", "submitted"] for mid in "abc")
    assert [s.seq for s in rows(database_url, SegmentSubmit, message_id="b")] == [1, 2, 3]
    assert len(connectors[1].submissions) + len(connectors[2].submissions) == 3
    # DR callbacks of state 6 only for receipt=TRUE (seed 000, "Receiving a Delivery Receipt")
    callbacks = {c.message_id: dict(c.fields) for c in rows(database_url, Callback)}
    assert set(callbacks) == {"a", "c"}
    assert callbacks["c"] == {"type": "receipt", "message_id": "c", "message_state": "6", "result_code": "0",
                              "app_id": "app-7"}
    [segment] = rows(database_url, SegmentSubmit, message_id="a")
    assert segment.smsc_message_id.startswith("mem") and segment.total == 1 and segment.submitted_at is not None


def test_committed_callbacks_are_handed_on_after_the_batch(world):
    database_url, service, _, _ = world
    with_dr_url(database_url)
    handed = []
    service.notify = handed.extend
    service.process_batch([make_payload("a"), make_payload("b")], interactive=False)
    assert sorted(handed) == sorted(c.id for c in rows(database_url, Callback))


def test_a_batch_handled_twice_submits_and_records_nothing_twice(world):
    database_url, service, connectors, _ = world
    with_dr_url(database_url)
    batch = [make_payload("a"), make_payload("b")]
    service.process_batch(batch, interactive=False)
    again = service.process_batch(batch, interactive=False)  # a retried or redelivered drain task
    assert all(o.retry_in is None for o in again.values())
    assert len(connectors[1].submissions) + len(connectors[2].submissions) == 2
    with session_scope(database_url) as session:
        assert session.scalar(select(func.count()).select_from(Message)) == 2
        assert session.scalar(select(func.count()).select_from(Callback)) == 2


def test_odd_messages_take_the_slow_path_and_the_rest_still_goes(world):
    database_url, service, connectors, _ = world
    batch = [
        make_payload("plain"),
        make_payload("no-route", phone_number="12025550100"),  # only 44 is routed
        make_payload("latin", text="中文", encoding="latin1"),
        make_payload("mms", attachments=[["image/png", "iVBORw0KGgo="]]),
    ]
    service.process_batch(batch, interactive=False)
    messages = {m.id: m for m in rows(database_url, Message)}
    assert set(messages) == {"plain", "no-route", "latin", "mms"}
    assert (messages["no-route"].state, messages["no-route"].result_code) == (MessageState.REJECTED, 3)
    assert (messages["latin"].state, messages["latin"].result_code) == (MessageState.REJECTED, 99)
    assert events(database_url, "plain") == ["accepted", "routed", "submitted"]
    assert "plain" in {s.message_id for c in connectors.values() for s in c.submissions}


def test_a_reused_client_message_id_leaves_only_that_message_out_and_says_7(world, caplog):
    database_url, service, connectors, _ = world
    with_dr_url(database_url)
    service.process_batch([make_payload("first", client_message_id="dup", app_id="app-1")], interactive=False)
    batch = [make_payload("x"), make_payload("second", client_message_id="dup", app_id="app-2"), make_payload("y")]
    outcomes = service.process_batch(batch, interactive=False)  # "dup" outlived its Redis claim
    assert {m.id for m in rows(database_url, Message)} == {"first", "x", "y"}
    assert all(o.retry_in is None for o in outcomes.values())
    assert sorted(s.message_id for c in connectors.values() for s in c.submissions) == ["first", "x", "y"]
    # not dropped in silence: the client hears of it, seed 000 Result Code 7 "the message is a duplicate"
    [refusal] = rows(database_url, Callback, message_id="second")
    assert refusal.fields == [["type", "receipt"], ["message_id", "dup"], ["message_state", "8"],
                              ["result_code", "7"], ["app_id", "app-2"]]
    assert "accepted before as first (result code 7)" in caplog.text


def test_an_insert_that_fails_for_another_reason_is_not_called_a_duplicate(world):
    database_url, service, _, _ = world
    with pytest.raises(IntegrityError):  # no such account: the task machinery sets it aside
        service.process_batch([make_payload("orphan", account_id=999)], interactive=False)
    assert rows(database_url, Callback) == []


def test_the_carrier_bucket_lets_through_what_it_holds_and_paces_the_rest(world):
    database_url, service, connectors, _ = world
    with session_scope(database_url) as session:
        session.get(Carrier, 1).throughput = 2.0  # burst 10; bulk leaves a reserve of 1
    service.connectors.install(1, service.carriers.current().carriers[1], connectors[1])
    outcomes = service.process_batch([make_payload(f"m{i}", carrier=1) for i in range(14)], interactive=False)
    sent = int(10 - 10 * BULK_RESERVE_FRACTION)
    assert [o.retry_in is None for o in outcomes.values()].count(True) == sent == len(connectors[1].submissions)
    waits = [outcomes[f"m{i}"].retry_in for i in range(sent, 14)]
    assert waits == sorted(waits) and 0 < waits[0] <= 0.5
    assert [round(b - a, 3) for a, b in zip(waits, waits[1:])] == [0.5] * (len(waits) - 1)  # 1 token / 2 per s
    assert all(m.state == MessageState.ACCEPTED for m in rows(database_url, Message))
    later = service.deliver_batch([f"m{i}" for i in range(sent, 14)], interactive=True)  # interactive: no reserve
    assert sum(o.retry_in is None for o in later.values()) >= 1


def test_segments_the_smsc_acknowledged_before_the_worker_died_are_recorded_not_sent_again(world, monkeypatch):
    database_url, service, connectors, store = world
    batch = [make_payload("a"), make_payload("b", text="x" * 400)]

    def killed(*_args):
        raise SystemExit("kill -9 between the submit_sm_resp and the record transaction")

    with monkeypatch.context() as patched:
        patched.setattr(service, "_record", killed)
        try:
            service.process_batch(batch, interactive=False)
        except SystemExit:
            pass
    sent = len(connectors[1].submissions) + len(connectors[2].submissions)
    assert sent == 2 and store.remembered_acks(["a", "b"]).keys() == {"a", "b"}
    outcomes = service.process_batch(batch, interactive=False)  # the batch comes back after its lease lapsed
    assert all(o.retry_in is None for o in outcomes.values())
    assert len(connectors[1].submissions) + len(connectors[2].submissions) == sent  # nothing sent twice
    assert [s.seq for s in rows(database_url, SegmentSubmit, message_id="b")] == [1, 2, 3]
    assert all(events(database_url, mid) == ["accepted", "routed", "submitted"] for mid in "ab")
    assert store.remembered_acks(["a", "b"]) == {}  # recorded: Redis keeps them no longer


def test_a_message_half_acknowledged_before_the_worker_died_sends_only_the_rest(world, monkeypatch):
    database_url, service, connectors, store = world
    payload = make_payload("a", text="x" * 400, carrier=1)
    with monkeypatch.context() as patched:
        patched.setattr(service, "_record", lambda *_a: (_ for _ in ()).throw(SystemExit("killed")))
        try:
            service.process_batch([payload], interactive=False)
        except SystemExit:
            pass
    store.client.hdel(store.keys.segment_acks("a"), "3")  # segment 3's answer never came
    service.process_batch([payload], interactive=False)
    assert [s.seq for s in connectors[1].submissions[-1].segments] == [3]
    assert [s.seq for s in rows(database_url, SegmentSubmit, message_id="a")] == [1, 2, 3]
    assert events(database_url, "a") == ["accepted", "routed", "submitted"]
