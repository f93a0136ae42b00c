"""MMS end to end, every part real: HTTP submit with two attachments -> Redis -> a Celery
worker -> the MM7 connector -> the MMSC simulator over HTTP -> its DeliveryReportReq
to the ingress's ``/carriers/<id>/mm7`` -> inbound -> the client's DR callbacks. An MMS
MO from the MMSC reaches the client with its attachments (seed 000 MO table); an MMS to
a route that cannot carry it ends rejected with DR result code 3; an MMSC that
misbehaves or is down costs retries, never the message."""

from __future__ import annotations

import base64
import threading
from contextlib import contextmanager

import pytest
import requests
from sqlalchemy import select
from werkzeug.serving import make_server

from app.db.models import Account, Carrier, Message, MessageEvent
from app.db.session import session_scope
from app.domain.mt_request import Attachment
from app.domain.states import MessageState
from app.services import accounts as svc
from app.web import create_app
from tests.integration.mmsc import running_mmsc
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_httpapi import params
from tests.integration.workers import running, wait_until, worker_ready

ALL = "mt.interactive,mt.interactive_low,mt.bulk,mt.bulk_low,inbound,callbacks"
SMSC, MMSC = 99901, 99902
PNG, GIF = b"\x89PNG\r\n\x1a\nfirst-picture", b"GIF89a-second-picture"


def attachments(*pairs):
    return {key: value for index, (content_type, data) in enumerate(pairs)
            for key, value in ((f"mms_attachment[{index}].content_type", content_type),
                               (f"mms_attachment[{index}].content", base64.b64encode(data).decode()))}


@contextmanager
def serving(app):
    """The ingress over a real socket (the MMSC POSTs its reports to it)."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture
def world(gateway, tmp_path):
    """Carrier 99901 is the SMSC simulator, 99902 an MM7 carrier, both on route 1; 44
    routes to the SMSC only. The account's DR and MO go to a client endpoint."""

    @contextmanager
    def run(**mmsc_options):
        log = tmp_path / "worker.log"
        with Receiver() as client, running_simulator(dr_delay=0.2) as smsc, \
                serving(create_app(gateway)) as ingress:
            with session_scope(gateway.database_url) as session:
                session.get(Carrier, SMSC).connector = "smpp"
                session.get(Carrier, SMSC).settings = {"host": "127.0.0.1", "port": smsc.port, "system_id": "smsagg",
                                                       "password": "pw"}
                account = session.get(Account, 1)
                account.dr_url, account.mo_url = client.url("/dr"), client.url("/mo")
            with session_scope(gateway.database_url) as session:
                svc.add_route(session, "44", SMSC)
            with running_mmsc(vasp_url=f"{ingress}/carriers/{MMSC}/mm7", vasp_user=str(MMSC), vasp_password="tok",
                              dr_delay=0.2, **mmsc_options) as mmsc:
                with session_scope(gateway.database_url) as session:
                    svc.add_carrier(session, MMSC, "mmsc", connector="mm7", throughput=None, settings={
                        "url": mmsc.url, "vasp_id": "acme", "vas_id": "pics", "webhook_token": "tok", "timeout": 3})
                    svc.add_route(session, "1", MMSC)
                with running(["worker", "--queues", ALL, "--pool", "threads", "--concurrency", "8"], gateway, log,
                             ready=worker_ready(log)):
                    yield ingress, client, smsc, mmsc

    return run


def submit(ingress: str, **fields) -> str:
    return requests.post(f"{ingress}/httpapi/receiver", data=params(**fields), timeout=10).text


def message(gateway, client_message_id):
    with session_scope(gateway.database_url) as session:
        found = session.scalar(select(Message).where(Message.client_message_id == client_message_id))
        if found is None:
            return None
        events = [(e.kind, e.detail) for e in session.scalars(
            select(MessageEvent).where(MessageEvent.message_id == found.id).order_by(MessageEvent.id))]
        return MessageState(found.state), found.result_code, found.carrier_id, events


def drs(client, message_id):
    return [(p.form["message_state"], p.form["result_code"]) for p in client.received("/dr")
            if p.form["message_id"] == message_id]


def test_an_mms_with_two_attachments_goes_out_as_one_multipart_and_is_reported_delivered(world, gateway):
    with world() as (ingress, client, smsc, mmsc):
        assert submit(ingress, message_id="mms-1", message="Two pictures", receipt="TRUE",
                      **attachments(("image/png", PNG), ("image/gif", GIF))) == "result_code=0"
        assert submit(ingress, message_id="sms-1", message="Just text", receipt="TRUE") == "result_code=0"
        wait_until(lambda: ("2", "0") in drs(client, "mms-1") and ("2", "0") in drs(client, "sms-1"), timeout=60)
        [received] = mmsc.messages
        [text_message] = smsc.messages
    assert received.content_type == "multipart/related" and received.recipients == ("12025550100",)
    assert [p.content_type.split(";")[0] for p in received.parts] == ["application/smil", "text/plain", "image/png",
                                                                      "image/gif"]
    assert [p.data for p in received.parts[1:]] == [b"Two pictures", PNG, GIF]
    assert text_message.text == "Just text"  # SMS keep going to the SMSC
    assert drs(client, "mms-1") == [("6", "0"), ("2", "0")]
    state, result_code, carrier_id, events = message(gateway, "mms-1")
    assert (state, result_code, carrier_id) == (MessageState.DELIVERED, 0, MMSC)
    assert events[-1][1]["smsc_id"] == received.message_id and events[-1][1]["err"] == "Retrieved"


def test_an_mms_mo_reaches_the_client_with_its_attachments(world):
    with world() as (ingress, client, smsc, mmsc):
        status, accepted = mmsc.inject_mo("447700900555", "99222", "Back at you",
                                          (Attachment("image/png", PNG), Attachment("audio/amr", b"#!AMR")))
        assert (status, accepted) == (1000, True)
        wait_until(lambda: client.received("/mo"), timeout=60)
    [mo] = client.received("/mo")
    assert mo.form == {
        "type": "MO", "message_id": mo.form["message_id"], "shortcode": "99222", "phone_number": "447700900555",
        "carrier": str(MMSC), "message": "Back at you",
        "mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": base64.b64encode(PNG).decode(),
        "mms_attachment[1].content_type": "audio/amr", "mms_attachment[1].content": base64.b64encode(b"#!AMR").decode(),
    }


def test_an_mms_to_an_smpp_only_route_is_rejected_with_result_code_3(world, gateway):
    with world() as (ingress, client, smsc, mmsc):
        assert submit(ingress, message_id="mms-uk", phone_number="447700900123", message="", receipt="TRUE",
                      **attachments(("image/png", PNG))) == "result_code=0"
        wait_until(lambda: drs(client, "mms-uk"), timeout=60)
        assert mmsc.messages == [] and smsc.messages == []
    assert drs(client, "mms-uk") == [("8", "3")]
    state, result_code, _, events = message(gateway, "mms-uk")
    assert (state, result_code) == (MessageState.REJECTED, 3)
    assert events[-1] == ("rejected", {"reason": "no route for MMS", "result_code": 3})


@pytest.mark.parametrize("fault", [{"malformed": True}, {"soap_fault": True}, {"status_code": 4006}])
def test_an_mmsc_that_misbehaves_costs_retries_not_the_message(world, gateway, fault):
    with world(**fault) as (ingress, client, smsc, mmsc):
        assert submit(ingress, message_id="mms-r", receipt="TRUE", **attachments(("image/png", PNG))) == "result_code=0"
        wait_until(lambda: sum(kind == "retry" for kind, _ in (message(gateway, "mms-r") or (0, 0, 0, []))[3]) >= 2,
                   timeout=30)
        assert mmsc.messages == []
    state, _, carrier_id, events = message(gateway, "mms-r")
    assert state is MessageState.ACCEPTED and carrier_id == MMSC  # kept, to be tried again
    assert all(detail.get("reason", "").startswith(("MM7", "HTTP")) for kind, detail in events if kind == "retry")


def test_an_mmsc_that_is_down_costs_retries_and_the_mms_goes_out_once_it_is_back(world, gateway):
    with world() as (ingress, client, smsc, mmsc):
        with session_scope(gateway.database_url) as session:
            carrier = session.get(Carrier, MMSC)
            carrier.settings = {**carrier.settings, "url": "http://127.0.0.1:9/mm7"}  # nothing listens there
        assert submit(ingress, message_id="mms-d", receipt="TRUE", **attachments(("image/png", PNG))) == "result_code=0"
        wait_until(lambda: any(kind == "retry" for kind, _ in (message(gateway, "mms-d") or (0, 0, 0, []))[3]),
                   timeout=30)
        with session_scope(gateway.database_url) as session:
            carrier = session.get(Carrier, MMSC)
            carrier.settings = {**carrier.settings, "url": mmsc.url}
        wait_until(lambda: ("2", "0") in drs(client, "mms-d"), timeout=60)
        assert len(mmsc.messages) == 1
    assert drs(client, "mms-d") == [("6", "0"), ("2", "0")]
