"""``POST /carriers/<id>/mm7``: an MMSC's DeliveryReportReq and DeliverReq are queued on
the inbound stage like the webhooks' and answered with their ...Rsp; everything else
is a SOAP fault with a VASPErrorRsp (TS 23.140 status codes)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
import redis

from app.db.models import Carrier
from app.db.session import session_scope
from app.domain import mm7
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment
from app.web import create_app
from tests.integration.test_carrier_webhooks_and_status import queued_items
from tests.unit.domain.test_mm7 import BILLION_LAUGHS

REL5 = mm7.NAMESPACE_ROOT + "REL-5-MM7-1-2"
AUTH = {"Authorization": "Basic " + base64.b64encode(b"99901:tok-mm7").decode()}


@pytest.fixture
def mm7_client(gateway):
    with session_scope(gateway.database_url) as session:
        carrier = session.get(Carrier, 99901)
        carrier.connector = "mm7"
        carrier.settings = {"url": "http://127.0.0.1:9/mm7", "vasp_id": "v", "vas_id": "s", "webhook_token": "tok-mm7"}
    return create_app(gateway).test_client()


def post(client, http: mm7.HttpBody, headers=AUTH, path="/carriers/99901/mm7"):
    return client.post(path, data=http.body, headers={"Content-Type": http.content_type, **headers})


def answer_of(response, kind):
    return mm7.parse_answer(response.headers["Content-Type"], response.get_data(), kind)


def report(namespace=mm7.NAMESPACE):
    return mm7.build_delivery_report_req("dr-1", "66199693f13b6", "447700900123", "99222", mm7.MmStatus.RETRIEVED,
                                         "delivered", datetime(2026, 12, 1, tzinfo=UTC), namespace=namespace)


def test_a_delivery_report_is_queued_and_answered_in_its_namespace(mm7_client, redis_client, queued):
    response = post(mm7_client, report(REL5))
    assert response.status_code == 200
    answer = answer_of(response, "DeliveryReportRsp")
    assert (answer.status_code, answer.transaction_id) == (1000, "dr-1") and REL5.encode() in response.get_data()
    [item] = queued_items(redis_client, queued)
    assert item["source"] == "mm7_dr" and item["carrier"] == 99901
    assert item["fields"] == {"message_id": "66199693f13b6", "status": "2", "err": "Retrieved",
                              "status_text": "delivered", "recipient": "447700900123"}


def test_an_mms_mo_is_queued_with_its_text_and_attachments(mm7_client, redis_client, queued):
    content = build_mms((Attachment("image/jpeg", b"\xff\xd8jpeg"),), "from the beach")
    response = post(mm7_client, mm7.build_deliver_req("mo-1", "447700900555", "99222", content))
    assert response.status_code == 200 and answer_of(response, "DeliverRsp").status_code == 1000
    [item] = queued_items(redis_client, queued)
    assert item["source"] == "mm7_mo"
    assert item["fields"] == {"from": "447700900555", "to": "99222", "text": "from the beach",
                              "attachments": [["image/jpeg", base64.b64encode(b"\xff\xd8jpeg").decode()]],
                              "linked_id": None}


@pytest.mark.parametrize(("path", "headers", "status", "code"), [
    ("/carriers/99901/mm7", {}, 401, 4001),
    ("/carriers/99901/mm7", {"Authorization": "Basic " + base64.b64encode(b"99901:wrong").decode()}, 401, 4001),
    ("/carriers/424242/mm7", AUTH, 404, 4001),
])
def test_unknown_carriers_and_wrong_tokens_are_faults_and_queue_nothing(mm7_client, redis_client, queued, path,
                                                                        headers, status, code):
    response = post(mm7_client, report(), headers=headers, path=path)
    answer = answer_of(response, "DeliveryReportRsp")
    assert response.status_code == status and (answer.kind, answer.fault, answer.status_code) == ("Fault", "Client",
                                                                                                  code)
    assert queued("inbound") == []


@pytest.mark.parametrize(("body", "code"), [
    (mm7.HttpBody("text/xml", BILLION_LAUGHS), 4004),
    (mm7.HttpBody("text/xml", b"<html>hello</html>"), 4004),
    (mm7.HttpBody('multipart/related; boundary="b"', b"--b\r\nContent-Type: text/xml\r\n\r\n<x/>"), 4004),
    (mm7.build_answer("SubmitRsp", "tx", 1000, "ok", message_id="x"), 4003),  # not a request we serve
])
def test_bodies_that_are_no_request_we_serve_are_client_faults(mm7_client, queued, body, code):
    response = post(mm7_client, body)
    answer = answer_of(response, "DeliveryReportRsp")
    assert response.status_code == 500 and (answer.fault, answer.status_code) == ("Client", code)
    assert queued("inbound") == []


def test_an_oversize_body_is_refused(mm7_client, queued):
    response = post(mm7_client, mm7.HttpBody("text/xml", b"x" * (2 * 1024 * 1024 + 1)))
    assert response.status_code == 413 and answer_of(response, "DeliverRsp").status_code == 2004


def test_when_redis_cannot_take_it_the_mmsc_is_told_to_send_it_again(mm7_client, monkeypatch):
    def refuse(*_args, **_kwargs):
        raise redis.ConnectionError("down")

    monkeypatch.setattr("app.adapters.stage_queue.StageQueue.push", refuse)
    response = post(mm7_client, report())
    answer = answer_of(response, "DeliveryReportRsp")
    assert response.status_code == 500 and (answer.fault, answer.status_code, answer.transaction_id) == (
        "Server", 3000, "dr-1")
