"""The MM7 connector against the MMSC simulator over real HTTP, in its normal and
misbehaving modes, and the simulator's own promises (delivery reports kept until the
VASP takes them, MO injection). Every answer is an SMPP-style status that the one
error table classifies (seed 000 DR result codes)."""

from __future__ import annotations

import base64
import threading
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.connectors.base import CONNECTION_LOST
from app.connectors.mm7 import Mm7Connector
from app.domain import mm7
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment
from app.domain.outbound import build_mms_submission
from app.domain.smpp_status import DrResultCode, StatusClass, classify
from app.mm7.simulator import ControlError, inject_mo_via_control
from tests.conftest import free_port
from tests.integration.mmsc import running_mmsc
from tests.integration.workers import wait_until

PNG, GIF = b"\x89PNG\r\n\x1a\nimage-one", b"GIF89a-image-two"


def mms_submission(message_id="our-1", destination="447700900123", receipt=True, attachments=None):
    content = build_mms(attachments or (Attachment("image/png", PNG), Attachment("image/gif", GIF)), "Two pictures")
    return build_mms_submission(message_id=message_id, sender="12345", destination=destination,
                                text="Two pictures", receipt=receipt, mms=content)


def connector(url, **settings):
    return Mm7Connector({"url": url, "vasp_id": "acme", "vas_id": "pics", "timeout": 2, **settings})


def classified(result):
    status = classify(result.command_status)
    return status.status_class, status.result_code


def test_an_mms_goes_out_as_one_multipart_and_the_mmsc_id_comes_back():
    with running_mmsc(credentials={"vasp": "pw"}) as mmsc:
        [result] = connector(mmsc.url, username="vasp", password="pw", service_code="svc").submit(mms_submission())
        [received] = mmsc.messages
    assert result.accepted and result.seq == 1 and result.smsc_message_id == received.message_id
    assert received.transaction_id == "our-1" and (received.vasp_id, received.vas_id) == ("acme", "pics")
    assert received.recipients == ("447700900123",) and received.sender == "12345" and received.delivery_report
    assert received.content_type == "multipart/related"
    assert [p.content_type.split(";")[0] for p in received.parts] == ["application/smil", "text/plain", "image/png",
                                                                      "image/gif"]
    assert [p.data for p in received.parts[2:]] == [PNG, GIF]


def test_a_batch_is_answered_in_order():
    with running_mmsc() as mmsc:
        submissions = [mms_submission(f"our-{i}") for i in range(5)]
        results = connector(mmsc.url).submit_many(submissions)
        by_transaction = {m.transaction_id: m.message_id for m in mmsc.messages}
    assert [r[0].smsc_message_id for r in results] == [by_transaction[f"our-{i}"] for i in range(5)]


@pytest.mark.parametrize(("options", "settings", "expected"), [
    ({"reject_destination_prefix": "4477"}, {}, (StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM)),
    ({"status_code": 2004}, {}, (StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM)),
    ({"status_code": 4006}, {}, (StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR)),
    ({"soap_fault": True}, {}, (StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR)),
    ({"malformed": True}, {}, (StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR)),
    ({"credentials": {"vasp": "pw"}}, {"username": "vasp", "password": "wrong"},
     (StatusClass.TRANSIENT, DrResultCode.AUTHENTICATION_FAILURE)),
], ids=["address-error", "content-refused", "service-unavailable", "soap-fault", "malformed", "bad-credentials"])
def test_mmsc_refusals_and_failures_are_classified_and_store_nothing(options, settings, expected):
    with running_mmsc(**options) as mmsc:
        [result] = connector(mmsc.url, **settings).submit(mms_submission())
        assert mmsc.messages == []
    assert not result.accepted and result.smsc_message_id is None and result.detail
    assert classified(result) == expected


def test_an_mmsc_slower_than_the_timeout_or_not_there_is_connection_lost():
    with running_mmsc(response_delay_ms=3000) as mmsc:
        [slow] = connector(mmsc.url, timeout=0.5).submit(mms_submission())
    [down] = connector(f"http://127.0.0.1:{free_port()}/mm7").submit(mms_submission())
    assert slow.command_status == CONNECTION_LOST and down.command_status == CONNECTION_LOST


def test_a_content_that_cannot_be_built_is_refused_as_ours_not_sent():
    bad = mms_submission(attachments=(Attachment("image/png\r\nX-Evil: 1", PNG),))
    with running_mmsc() as mmsc:
        [result] = connector(mmsc.url).submit(bad)
        assert mmsc.messages == []
    assert classified(result) == (StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR)


class Answering:
    """An HTTP endpoint answering every POST with one scripted (status, content type, body)."""

    def __init__(self, answers):
        self.answers, self.requests = list(answers), []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                endpoint.requests.append((dict(self.headers), body))
                status, content_type, payload = endpoint.answers.pop(0) if len(endpoint.answers) > 1 \
                    else endpoint.answers[0]
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/vasp"

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.server.shutdown()
        self.server.server_close()


def test_a_429_without_an_mm7_body_is_throttling():
    with Answering([(429, "text/plain", b"slow down")]) as upstream:
        [result] = connector(upstream.url).submit(mms_submission())
    assert classify(result.command_status).status_class is StatusClass.THROTTLED


def rsp(kind, status=1000):
    answer = mm7.build_answer(kind, "tx", status, "ok")
    return 200, answer.content_type, answer.body


def test_delivery_reports_reach_the_vasp_with_its_credentials_and_are_kept_until_taken():
    with Answering([(500, "text/plain", b"down"), rsp("DeliveryReportRsp", 3000), rsp("DeliveryReportRsp")]) as vasp, \
            running_mmsc(vasp_url=vasp.url, vasp_user="7", vasp_password="tok", dr_delay=0.05) as mmsc:
        [result] = connector(mmsc.url).submit(mms_submission())
        wait_until(lambda: any(r.accepted for r in mmsc.simulator.reports), timeout=15)
        attempts = list(mmsc.simulator.reports)
    assert [a.accepted for a in attempts] == [False, False, True]
    headers, body = vasp.requests[-1]
    assert headers["Authorization"] == "Basic " + base64.b64encode(b"7:tok").decode()
    report = mm7.parse_vasp_request(headers["Content-Type"], body)
    assert report.message_id == result.smsc_message_id and report.mm_status is mm7.MmStatus.RETRIEVED
    assert report.recipient == "447700900123" and report.sender == "12345"


def test_no_report_is_sent_when_none_was_asked_for():
    with Answering([rsp("DeliveryReportRsp")]) as vasp, running_mmsc(vasp_url=vasp.url, dr_delay=0.05) as mmsc:
        connector(mmsc.url).submit(mms_submission(receipt=False))
        # The absence is proved by a later message's report: the first's would have been due before it.
        [asked] = connector(mmsc.url).submit(mms_submission(message_id="our-2"))
        wait_until(lambda: asked.smsc_message_id in reported(vasp), timeout=15)
    assert reported(vasp) == [asked.smsc_message_id]


def reported(vasp) -> list[str]:
    """The message ids of the delivery reports the VASP received, in order."""
    return [mm7.parse_vasp_request(headers["Content-Type"], body).message_id for headers, body in vasp.requests]


def test_an_mo_is_injected_over_the_control_endpoint_with_its_attachments():
    with Answering([rsp("DeliverRsp")]) as vasp, running_mmsc(vasp_url=vasp.url) as mmsc:
        status, accepted = inject_mo_via_control(mmsc.base_url, "447700900555", "12345", "look",
                                                 (Attachment("image/gif", GIF),))
    assert (status, accepted) == (1000, True)
    headers, body = vasp.requests[0]
    mo = mm7.parse_vasp_request(headers["Content-Type"], body)
    assert (mo.sender, mo.recipient, mo.text, mo.attachments) == ("447700900555", "12345", "look",
                                                                  (Attachment("image/gif", GIF),))


def test_an_mo_the_vasp_refuses_is_sent_again():
    with Answering([rsp("DeliverRsp", 4004), rsp("DeliverRsp")]) as vasp, \
            running_mmsc(vasp_url=vasp.url, dr_delay=0.05) as mmsc:
        assert mmsc.inject_mo("447700900555", "12345", "again") == (4004, False)
        wait_until(lambda: len(vasp.requests) == 2, timeout=15)
        wait_until(lambda: mmsc.simulator.reports[-1].accepted, timeout=5)


def test_inject_mo_without_a_vasp_url_is_a_control_error():
    with running_mmsc() as mmsc, pytest.raises(ControlError, match="no VASP URL"):
        inject_mo_via_control(mmsc.base_url, "447700900555", "12345", "nobody listens")


def test_the_simulator_answers_what_is_no_submit_with_a_client_fault():
    with running_mmsc() as mmsc:
        for content_type, body, code in (("text/xml", b"<not-soap/>", 4004),
                                         (*_as_pair(mm7.build_answer("DeliverRsp", "t", 1000, "ok")), 4003)):
            request = urllib.request.Request(mmsc.url, data=body, headers={"Content-Type": content_type})
            with pytest.raises(urllib.error.HTTPError) as raised:
                urllib.request.urlopen(request, timeout=5)
            answer = mm7.parse_answer(raised.value.headers["Content-Type"], raised.value.read(), "SubmitRsp")
            assert raised.value.code == 500 and (answer.fault, answer.status_code) == ("Client", code)
        assert mmsc.messages == []


def _as_pair(http: mm7.HttpBody) -> tuple[str, bytes]:
    return http.content_type, http.body
