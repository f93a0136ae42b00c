"""MMS in the delivery stage: routed among the carriers that carry MMS, sent as one MMS
submission with the stored parts, and rejected with DR result code 3 (seed 000, "The
carrier is invalid") where the carrier cannot carry it, never sent as text."""

from __future__ import annotations

import base64

import fakeredis
import pytest
from sqlalchemy import select

from app.adapters.redis_scripts import RedisStore
from app.connectors.loop import BackgroundLoop
from app.connectors.memory import InMemoryConnector
from app.db.models import Callback, Message, MessageEvent
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.carriers import CarrierDirectory, ConnectorRegistry, carrier_kinds
from app.services.delivery import MAX_TRANSIENT_ATTEMPTS, DeliveryService
from tests.unit.delivery.conftest import make_payload

PNG, AMR = b"\x89PNG-bytes", b"#!AMR-bytes"
ATTACHMENTS = [["image/png", base64.b64encode(PNG).decode()], ["audio/amr", base64.b64encode(AMR).decode()]]
SMSC, MMSC, MMSC_B, BULK_HTTP = 1, 2, 3, 4


@pytest.fixture
def mms_world(database_url):
    """Carriers: 1 SMPP, 2 and 3 MM7, 4 HTTP of the bulksms kind (no MMS). Routes: 44 ->
    1 only; 1 -> 1, 2, 3; 33 -> 4."""
    with session_scope(database_url) as session:
        svc.create_account(session, "acme", "pw", senders=("99222",), options=AccountOptions(dr_url="http://cb/dr"),
                           default_max_length=2000)
        svc.add_carrier(session, SMSC, "smsc", connector="smpp", throughput=None,
                        settings={"host": "127.0.0.1", "port": 1, "system_id": "x"})
        for carrier_id, name in ((MMSC, "mmsc"), (MMSC_B, "mmsc-b")):
            svc.add_carrier(session, carrier_id, name, connector="mm7", throughput=None, settings={
                "url": "http://127.0.0.1:1/mm7", "vasp_id": "v", "vas_id": "s", "webhook_token": "t"})
        svc.add_carrier(session, BULK_HTTP, "bulk-http", connector="http", throughput=None,
                        settings={"url": "http://127.0.0.1:1", "preset": "bulksms"})
        svc.add_route(session, "44", SMSC)
        for carrier_id in (SMSC, MMSC, MMSC_B):
            svc.add_route(session, "1", carrier_id)
        svc.add_route(session, "33", BULK_HTTP)
    carriers = CarrierDirectory(database_url, refresh_seconds=0)
    registry = ConnectorRegistry(BackgroundLoop())
    connectors = {carrier_id: InMemoryConnector() for carrier_id in (SMSC, MMSC, MMSC_B, BULK_HTTP)}
    for carrier_id, connector in connectors.items():
        registry.install(carrier_id, carriers.current().carriers[carrier_id], connector)
    service = DeliveryService(database_url, RedisStore(fakeredis.FakeRedis(), "t:"), carriers, registry,
                              refund=lambda *_: None)
    return database_url, service, connectors


def mms(message_id="mms-1", phone_number="12025550100", **extra):
    return make_payload(message_id, "Look at these", phone_number=phone_number, attachments=ATTACHMENTS, **extra)


def outcome_of(database_url, message_id):
    with session_scope(database_url) as session:
        message = session.get(Message, message_id)
        events = list(session.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id)
                                      .order_by(MessageEvent.id)))
        callbacks = [c.fields for c in session.scalars(select(Callback).where(Callback.message_id == message_id)
                                                       .order_by(Callback.created_at))]
        return message, [(e.kind, e.detail) for e in events], callbacks


def sent(connectors):
    return {carrier_id: c.submissions for carrier_id, c in connectors.items() if c.submissions}


def test_carrier_kinds_follow_the_connector():
    assert carrier_kinds("smpp", {}) == ("sms",)
    assert carrier_kinds("mm7", {}) == ("mms",)
    assert carrier_kinds("http", {}) == ("sms", "mms")
    assert carrier_kinds("http", {"preset": "bulksms"}) == ("sms",)


def test_an_mms_goes_to_an_mm7_carrier_as_one_submission_with_its_parts(mms_world):
    database_url, service, connectors = mms_world
    outcomes = service.process_batch([mms()], interactive=False)
    assert outcomes["mms-1"].retry_in is None
    [(carrier_id, [submission])] = sent(connectors).items()
    assert carrier_id in (MMSC, MMSC_B)
    assert [s.seq for s in submission.segments] == [1] and submission.text == "Look at these"
    assert submission.mms.smil_wrapped
    assert [p.content for p in submission.mms.parts[2:]] == [PNG, AMR]
    message, events, callbacks = outcome_of(database_url, "mms-1")
    assert message.state == MessageState.ACCEPTED and message.segments == 1 and message.carrier_id == carrier_id
    assert [kind for kind, _ in events] == ["accepted", "routed", "submitted"]
    assert callbacks == [[["type", "receipt"], ["message_id", "mms-1"], ["message_state", "6"], ["result_code", "0"]]]


def test_sms_to_the_same_number_keep_going_to_the_smsc(mms_world):
    database_url, service, connectors = mms_world
    service.process_batch([make_payload(f"sms-{i}", "Hello", phone_number="12025550100") for i in range(4)],
                          interactive=False)
    assert list(sent(connectors)) == [SMSC] and len(connectors[SMSC].submissions) == 4
    assert all(s.mms is None for s in connectors[SMSC].submissions)


@pytest.mark.parametrize("phone_number", ["447700900123", "33612345678"], ids=["smpp-only", "http-without-mms"])
def test_an_mms_whose_routes_cannot_carry_it_is_rejected_with_3_and_never_sent(mms_world, phone_number):
    database_url, service, connectors = mms_world
    service.process_batch([mms(phone_number=phone_number)], interactive=False)
    assert sent(connectors) == {}
    message, events, _ = outcome_of(database_url, "mms-1")
    assert message.state == MessageState.REJECTED and message.result_code == 3
    assert events[-1] == ("rejected", {"reason": "no route for MMS", "result_code": 3})


def test_an_mms_for_a_trusted_smpp_carrier_is_rejected_with_3_not_sent_as_text(mms_world):
    database_url, service, connectors = mms_world
    service.process_batch([mms(carrier=SMSC)], interactive=False)
    assert sent(connectors) == {}
    message, events, callbacks = outcome_of(database_url, "mms-1")
    assert message.state == MessageState.REJECTED and message.result_code == 3
    assert events[-1][1]["reason"] == f"carrier {SMSC} does not carry MMS"
    assert ["message_state", "8"] in callbacks[-1] and ["result_code", "3"] in callbacks[-1]


def test_a_text_for_a_trusted_mm7_carrier_is_rejected_with_3(mms_world):
    database_url, service, connectors = mms_world
    service.process_batch([make_payload("sms-1", "Hello", phone_number="12025550100", carrier=MMSC)],
                          interactive=False)
    assert sent(connectors) == {}
    message, events, _ = outcome_of(database_url, "sms-1")
    assert message.state == MessageState.REJECTED and message.result_code == 3
    assert events[-1][1]["reason"] == f"carrier {MMSC} does not carry SMS"


def test_a_failing_mmsc_fails_over_to_the_other_mmsc_never_to_the_smsc(mms_world):
    database_url, service, connectors = mms_world
    for carrier_id in (MMSC, MMSC_B):
        connectors[carrier_id]._statuses.extend([0x08] * MAX_TRANSIENT_ATTEMPTS)  # ESME_RSYSERR: transient
    outcome = service.process_batch([mms()], interactive=False)["mms-1"]
    for _ in range(2 * MAX_TRANSIENT_ATTEMPTS):
        if outcome.retry_in is None:
            break
        outcome = service.deliver_batch(["mms-1"], interactive=False)["mms-1"]
    message, events, _ = outcome_of(database_url, "mms-1")
    [failover] = [detail for kind, detail in events if kind == "failover"]
    assert {failover["previous"], failover["carrier"]} == {MMSC, MMSC_B}
    assert message.state == MessageState.REJECTED and message.result_code == 98  # no MMS carrier left
    assert connectors[SMSC].submissions == []
    assert len(connectors[MMSC].submissions) == len(connectors[MMSC_B].submissions) == MAX_TRANSIENT_ATTEMPTS


def test_an_acknowledged_mms_is_not_submitted_again(mms_world):
    database_url, service, connectors = mms_world
    service.process_batch([mms()], interactive=False)
    service.process_batch([mms()], interactive=False)  # a redelivered drain
    service.deliver_batch(["mms-1"], interactive=False)  # a stray retry
    assert sum(len(s) for s in sent(connectors).values()) == 1


def test_an_mms_the_mmsc_refuses_is_rejected_with_the_mapped_code(mms_world):
    database_url, service, connectors = mms_world
    for connector in (connectors[MMSC], connectors[MMSC_B]):
        connector._statuses.append(0x0B)  # what the MM7 connector makes of 2002 Address Error
    service.process_batch([mms()], interactive=False)
    message, events, _ = outcome_of(database_url, "mms-1")
    assert message.state == MessageState.REJECTED and message.result_code == 1
    assert events[-1][1]["command_status"] == 0x0B
