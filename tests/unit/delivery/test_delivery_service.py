"""The delivery stage against the in-memory connector, fakeredis and a real database:
segments, idempotent retries, throttling, the error-class table and failover."""

from __future__ import annotations

import time
from datetime import datetime, timezone

import pytest
from sqlalchemy import select

from app.connectors.base import CONNECTION_LOST
from app.db.models import Callback, Carrier, Message, MessageEvent, SegmentSubmit
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.carriers import CarrierDirectory
from app.services.delivery import (
    GIVE_UP_THROTTLED_AFTER,
    GIVE_UP_UNREACHABLE_AFTER,
    LINK_RETRY_CAP_SECONDS,
    MAX_TRANSIENT_ATTEMPTS,
)
from app.services.intake import record_accepted
from tests.unit.delivery.conftest import make_payload


def accept(database_url, message_id="m1", text="Hello", carriers=None, **extra):
    carriers = carriers or CarrierDirectory(database_url, refresh_seconds=0)
    payload = make_payload(message_id, text, **extra)
    with session_scope(database_url) as session:
        record_accepted(session, payload, now=datetime.now(timezone.utc), route=carriers.route, refund=lambda *_: None)
    return message_id


def deliver(service, message_id):
    """One more attempt for one recorded message (a ``deliver`` task of one id)."""
    return service.deliver_batch([message_id], interactive=False)[message_id]


def message(database_url, message_id="m1"):
    with session_scope(database_url) as session:
        found = session.get(Message, message_id)
        events = [e.kind for e in session.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id)
                                                   .order_by(MessageEvent.id))]
        submits = sorted((s.seq, s.smsc_message_id) for s in session.scalars(
            select(SegmentSubmit).where(SegmentSubmit.message_id == message_id)))
        return found, events, submits


def test_single_segment_goes_en_route_with_its_smsc_id(world):
    database_url, service, connectors, store = world
    accept(database_url)
    assert deliver(service, "m1").retry_in is None
    found, events, submits = message(database_url)
    assert found.state == MessageState.ACCEPTED and found.segments == 1 and found.carrier_id == 1
    assert events == ["accepted", "routed", "submitted"]
    assert submits == [(1, "mem000001")]  # stored in canonical form (normalize_smsc_id)
    [submission] = connectors[1].submissions
    assert submission.registered_delivery == 1 and submission.destination == "447700900123"


def test_long_message_is_three_udh_segments_with_one_reference(world):
    database_url, service, connectors, _ = world
    accept(database_url, text="x" * 400)
    deliver(service, "m1")
    segments = connectors[1].submissions[0].segments
    assert [s.seq for s in segments] == [1, 2, 3]
    assert len({s.short_message[3] for s in segments}) == 1  # one concatenation reference
    assert all(s.esm_class & 0x40 for s in segments)
    assert message(database_url)[0].segments == 3


def test_retry_never_resubmits_an_acknowledged_segment(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.extend([0, 0x08, 0])  # segment 2 hits a transient system error
    accept(database_url, text="y" * 400)
    first = deliver(service, "m1")
    assert first.retry_in == 1.0
    assert message(database_url)[0].state == MessageState.ACCEPTED
    deliver(service, "m1")
    second = connectors[1].submissions[1]
    assert [s.seq for s in second.segments] == [2]
    found, events, submits = message(database_url)
    assert found.state == MessageState.ACCEPTED and [seq for seq, _ in submits] == [1, 2, 3]
    assert events == ["accepted", "routed", "retry", "submitted"]


def test_redelivered_task_after_success_sends_nothing(world):
    database_url, service, connectors, _ = world
    accept(database_url)
    deliver(service, "m1")
    deliver(service, "m1")
    assert len(connectors[1].submissions) == 1


def test_permanent_error_rejects_with_the_mapped_result_code(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.append(0x0B)  # ESME_RINVDSTADR
    accept(database_url)
    assert deliver(service, "m1").retry_in is None
    found, events, _ = message(database_url)
    assert found.state == MessageState.REJECTED and found.result_code == 1
    assert events[-1] == "rejected"


def test_a_priced_message_rejected_by_the_carrier_is_refunded_once_through_the_injected_refund(world):
    """Issue 5: a message rejected before it reaches a carrier gets its credit back. The
    core calls what the composition root injected (the bulk area's refund), after commit."""
    database_url, service, connectors, _ = world
    refunds = []
    service.refund = lambda *args: refunds.append(args)
    connectors[1]._statuses.append(0x0B)  # ESME_RINVDSTADR: permanent
    accept(database_url, price=3_000)
    assert deliver(service, "m1").retry_in is None
    assert message(database_url)[0].state == MessageState.REJECTED
    assert refunds == [(1, 3_000, "m1")]
    deliver(service, "m1")  # redelivered: already rejected, nothing more
    assert refunds == [(1, 3_000, "m1")]


@pytest.mark.parametrize("status, code", [(0x0B, 3), (0x0A, 4), (0x45, 1)])
def test_a_carrier_table_overrides_the_result_code_not_the_retry_decision(world, status, code):
    """The table is read from the snapshot; the connector is not rebuilt for it."""
    database_url, service, connectors, _ = world
    with session_scope(database_url) as session:
        svc.set_carrier_result_codes(session, 1, {"command_status": {"0x0B": 3, "ESME_RINVSRCADR": 4}})
    connectors[1]._statuses.extend([status] * MAX_TRANSIENT_ATTEMPTS)
    accept(database_url, carrier=1)
    for _ in range(MAX_TRANSIENT_ATTEMPTS):  # ESME_RSUBMITFAIL is still retried, then ends with its code
        if deliver(service, "m1").retry_in is None:
            break
    found, events, _ = message(database_url)
    assert (found.state, found.result_code) == (MessageState.REJECTED, code)


def test_throttled_answer_retries_without_counting_an_attempt(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.append(0x58)
    accept(database_url)
    assert deliver(service, "m1").retry_in == 1.0
    assert message(database_url)[0].submit_attempts == 0


def test_smsc_throttling_for_over_an_hour_ends_rejected_with_result_code_6(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.append(0x58)  # ESME_RTHROTTLED
    accept(database_url, accepted_at=time.time() - GIVE_UP_THROTTLED_AFTER.total_seconds() - 1, carrier=1)
    assert deliver(service, "m1").retry_in is None
    found, events, _ = message(database_url)
    assert (found.state, found.result_code) == (MessageState.REJECTED, 6)  # seed 000 Result Code 6
    assert events[-1] == "rejected" and len(connectors[1].submissions) == 1


def test_carrier_that_keeps_failing_fails_over_to_the_next(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.extend([CONNECTION_LOST] * MAX_TRANSIENT_ATTEMPTS)
    accept(database_url)
    outcomes = [deliver(service, "m1") for _ in range(MAX_TRANSIENT_ATTEMPTS)]
    assert outcomes[-1].retry_in == 0.0 and outcomes[-1].reason == "failover"
    deliver(service, "m1")
    found, events, submits = message(database_url)
    assert found.carrier_id == 2 and events[-1] == "submitted"
    assert "failover" in events and len(connectors[2].submissions) == 1


def test_trusted_carrier_is_never_swapped(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.extend([0x08] * MAX_TRANSIENT_ATTEMPTS)  # ESME_RSYSERR, transient
    accept(database_url, carrier=1)
    for _ in range(MAX_TRANSIENT_ATTEMPTS):
        deliver(service, "m1")
    found, events, _ = message(database_url)
    assert found.state == MessageState.REJECTED and found.result_code == 98
    assert connectors[2].submissions == []


def test_lost_links_are_retried_within_seconds_then_wait_for_the_bind_rather_than_reject(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.extend([CONNECTION_LOST] * (MAX_TRANSIENT_ATTEMPTS + 2))
    accept(database_url, carrier=1)  # trusted: no failover, so it waits for its carrier
    waits = [deliver(service, "m1").retry_in for _ in range(MAX_TRANSIENT_ATTEMPTS + 2)]
    assert waits == [1.0, 2.0, 4.0] + [LINK_RETRY_CAP_SECONDS] * (MAX_TRANSIENT_ATTEMPTS - 1)
    assert message(database_url)[0].state == MessageState.ACCEPTED  # an SMSC down for minutes loses nothing
    assert deliver(service, "m1").retry_in is None  # the bind is back
    assert message(database_url)[1][-1] == "submitted"


def test_a_carrier_unreachable_for_over_an_hour_ends_rejected(world):
    database_url, service, connectors, _ = world
    connectors[1]._statuses.extend([CONNECTION_LOST] * MAX_TRANSIENT_ATTEMPTS)
    accept(database_url, carrier=1, accepted_at=time.time() - GIVE_UP_UNREACHABLE_AFTER.total_seconds() - 1)
    outcomes = [deliver(service, "m1") for _ in range(MAX_TRANSIENT_ATTEMPTS)]
    assert outcomes[-1].retry_in is None
    found = message(database_url)[0]
    assert (found.state, found.result_code) == (MessageState.REJECTED, 98)


def test_carrier_bucket_throttles_with_the_computed_wait(world):
    database_url, service, connectors, store = world
    with session_scope(database_url) as session:
        session.get(Carrier, 1).throughput = 1.0  # burst 10, bulk reserve 1: slow refill, no timing luck
    service.connectors.install(1, service.carriers.current().carriers[1], connectors[1])
    accept(database_url, "a")
    accept(database_url, "b", text="z" * 2000)  # 14 segments, more than the bucket holds
    assert deliver(service, "a").retry_in is None
    store.take_carrier_token(1, 1.0, 10.0, cost=9)  # other workers drained the rest
    outcome = deliver(service, "b")
    assert outcome.retry_in is not None and 8 < outcome.retry_in <= 10
    assert message(database_url, "b")[0].state == MessageState.ACCEPTED


def test_unencodable_text_for_a_requested_encoding_is_rejected(world):
    database_url, service, _, _ = world
    accept(database_url, text="中文", encoding="latin1")
    deliver(service, "m1")
    found = message(database_url)[0]
    assert found.state == MessageState.REJECTED and found.result_code == 99


def test_message_with_no_route_is_rejected_with_code_3_and_reported(world):
    database_url, service, connectors, _ = world
    with session_scope(database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(dr_url="https://client.example/dr"))
    accept(database_url, phone_number="12025550100")  # only 44 is routed
    found, events, _ = message(database_url)
    assert found.state == MessageState.REJECTED and found.result_code == 3 and events == ["accepted", "rejected"]
    with session_scope(database_url) as session:
        [callback] = session.scalars(select(Callback)).all()
        assert dict(callback.fields)["message_state"] == "8" and dict(callback.fields)["result_code"] == "3"
    assert deliver(service, "m1").retry_in is None and connectors[1].submissions == []


def test_every_state_change_report_is_queued_for_receipt_messages(world):
    database_url, service, _, _ = world
    with session_scope(database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(dr_url="https://client.example/dr"))
    accept(database_url)
    deliver(service, "m1")
    with session_scope(database_url) as session:
        [callback] = session.scalars(select(Callback)).all()
        assert dict(callback.fields) == {"type": "receipt", "message_id": "m1", "message_state": "6",
                                         "result_code": "0"}


def test_a_route_added_after_the_snapshot_is_used_before_any_no_route_rejection(world):
    database_url, service, _, _ = world
    service.carriers.refresh_seconds = 3600
    service.carriers.current()  # a snapshot without the route below
    with session_scope(database_url) as session:
        svc.add_route(session, "1", 2)
    accept(database_url, phone_number="12025550100", carriers=service.carriers)
    assert message(database_url)[0].carrier_id == 2


def test_every_segment_answer_and_every_throttle_wait_is_counted_by_carrier(world):
    from tests.counting import counted

    database_url, service, connectors, store = world
    with session_scope(database_url) as session:
        session.get(Carrier, 1).throughput = 1.0
    service.connectors.install(1, service.carriers.current().carriers[1], connectors[1])
    connectors[1]._statuses.extend([0, 0, 0x0B])  # ESME_RINVDSTADR for the last segment
    accept(database_url, "a", text="x" * 400)  # three segments
    accept(database_url, "b")
    with counted() as recorder:
        deliver(service, "a")
        store.take_carrier_token(1, 1.0, 10.0, cost=7)  # other workers drained the rest
        deliver(service, "b")
    deltas = recorder.take()
    assert deltas[("smsagg_submit_sm_total", ("1", "0x00000000"), "")] == 2
    assert deltas[("smsagg_submit_sm_total", ("1", "0x0000000b"), "")] == 1
    assert deltas[("smsagg_carrier_throttle_waits_total", ("1",), "")] == 1
