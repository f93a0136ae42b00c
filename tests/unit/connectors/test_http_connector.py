"""The HTTP carrier connector against a real local HTTP server: the genesys and
bulksms presets (seed 000 result codes, seed 001 error table), HTTP failures and
timeouts, all as SMPP-style statuses one table classifies."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest

from app.connectors.base import CONNECTION_LOST
from app.connectors.http import BULKSMS_CODE_STATUS, HttpConnector, bulk_type, carries_mms
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment
from app.domain.encoding import Encoding
from app.domain.outbound import OutboundSegment, Submission, build_mms_submission, build_submission, plan_for
from app.domain.smpp_status import DrResultCode, StatusClass, classify


class Carrier:
    """Answers every request with (status, body), after ``delay`` seconds."""

    def __init__(self, status=200, body="result_code=0", delay=0.0):
        self.status, self.body, self.delay, self.requests = status, body, delay, []
        carrier = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self, fields):
                carrier.requests.append((self.command, fields))
                time.sleep(carrier.delay)
                payload = carrier.body.encode()
                self.send_response(carrier.status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                self._answer(dict(parse_qsl(self.rfile.read(length).decode())))

            def do_GET(self):
                self._answer(dict(parse_qsl(urlsplit(self.path).query)))

            def log_message(self, *_):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def carrier():
    made = []

    def make(**kwargs):
        made.append(Carrier(**kwargs))
        return made[-1]

    yield make
    for c in made:
        c.close()


SUBMISSION = Submission(
    message_id="our-id-1", source="99222", source_ton=3, source_npi=0, destination="447700900123", text="Hello",
    encoding=Encoding.GSM7, registered_delivery=1,
    segments=(OutboundSegment(1, 2, b"a", 0, 0x40), OutboundSegment(2, 2, b"b", 0, 0x40)),
)


def test_genesys_preset_posts_the_seed_fields_and_uses_our_id(carrier):
    upstream = carrier()
    results = HttpConnector({"url": upstream.url, "params": {"login": "me", "password": "pw"}}).submit(SUBMISSION)
    [(method, fields)] = upstream.requests
    assert method == "POST"
    assert fields == {"login": "me", "password": "pw", "phone_number": "447700900123", "sender": "99222",
                      "message": "Hello", "message_id": "our-id-1", "receipt": "TRUE"}
    assert [(r.seq, r.command_status, r.smsc_message_id) for r in results] == [(1, 0, "our-id-1"), (2, 0, "our-id-1")]


@pytest.mark.parametrize("body,status_class", [
    ("result_code=6", StatusClass.THROTTLED), ("result_code=98", StatusClass.TRANSIENT),
    ("result_code=3", StatusClass.PERMANENT), ("result_code=1", StatusClass.PERMANENT),
    ("result_code=2", StatusClass.TRANSIENT), ("garbage", StatusClass.TRANSIENT),
])
def test_genesys_result_codes_are_classified(carrier, body, status_class):
    [first, _] = HttpConnector({"url": carrier(body=body).url}).submit(SUBMISSION)
    assert classify(first.command_status).status_class is status_class and first.smsc_message_id is None


def test_genesys_duplicate_means_it_already_has_the_message(carrier):
    assert HttpConnector({"url": carrier(body="result_code=7").url}).submit(SUBMISSION)[0].accepted


def test_bulksms_preset_gets_the_carrier_id(carrier):
    upstream = carrier(body="1701|447700900123|abc123")
    [first, _] = HttpConnector({"url": upstream.url, "preset": "bulksms"}).submit(SUBMISSION)
    assert first.accepted and first.smsc_message_id == "abc123"
    method, fields = upstream.requests[0]
    assert method == "GET" and fields["destination"] == "447700900123" and fields["dlr"] == "1"


# Seed 001 "Response" table, rows 2-21, and what each code ends the message with (the DR
# result_code of seed 000). The note under the table: "Apart from error code 1709, please
# do NOT retry re-sending the message for any other error code (including SMPP v3.4 Error
# codes)", and 1715: "do NOT re-submit" (the carrier may have it: taken, not failed).
BULKSMS_TABLE = [
    ("1702", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    ("1703", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    ("1704", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    ("1705", StatusClass.PERMANENT, DrResultCode.BODY_TOO_LONG),
    ("1706", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("1707", StatusClass.PERMANENT, DrResultCode.SHORTCODE_NOT_ALLOWED),
    ("1708", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    ("1709", StatusClass.TRANSIENT, DrResultCode.AUTHENTICATION_FAILURE),
    ("1710", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("1725", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("1715", StatusClass.OK, DrResultCode.SUCCESS),
    ("1732", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("1028", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("1041", StatusClass.OK, DrResultCode.SUCCESS),
    ("1042", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("1033", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("69", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("8", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    ("16", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    ("18", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    ("11", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),  # an SMPP status passed on (0x0B)
    ("1799", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),  # a code the table does not have
]


@pytest.mark.parametrize("code,status_class,result_code", BULKSMS_TABLE)
def test_bulksms_error_codes_only_1709_is_retried(carrier, code, status_class, result_code):
    [first, _] = HttpConnector({"url": carrier(body=f"{code}|447700900123|").url, "preset": "bulksms"}).submit(SUBMISSION)
    entry = classify(first.command_status)
    assert (entry.status_class, entry.result_code) == (status_class, result_code)
    assert first.smsc_message_id is None or status_class is StatusClass.OK


def test_bulksms_preset_retries_nothing_but_1709():
    """The whole preset table, not only the rows above: one transient code."""
    transient = {code for code, status in BULKSMS_CODE_STATUS.items()
                 if classify(status).status_class is not StatusClass.PERMANENT and status != 0}
    assert transient == {"1709"}


def _submission(text: str, encoding: Encoding, *, flash: bool = False, wap_push: bool = False) -> Submission:
    return Submission(message_id="m", source="99222", source_ton=3, source_npi=0, destination="447700900123",
                      text=text, encoding=encoding, registered_delivery=0,
                      segments=(OutboundSegment(1, 1, b"a", 0, 0),), flash=flash, wap_push=wap_push)


@pytest.mark.parametrize("encoding,flash,wap_push,expected", [
    # seed 001 parameter 3 "type": 0 plain GSM, 1 flash GSM, 2 Unicode, 4 WAP Push,
    # 5 plain ISO-8859-1, 6 Unicode flash, 7 flash ISO-8859-1 (3 is reserved)
    (Encoding.GSM7, False, False, "0"), (Encoding.GSM7, True, False, "1"), (Encoding.UCS2, False, False, "2"),
    (Encoding.GSM7, False, True, "4"), (Encoding.LATIN1, False, False, "5"), (Encoding.UCS2, True, False, "6"),
    (Encoding.LATIN1, True, False, "7"),
])
def test_bulksms_preset_sends_the_message_type(carrier, encoding, flash, wap_push, expected):
    upstream = carrier(body="1701|447700900123|id")
    HttpConnector({"url": upstream.url, "preset": "bulksms"}).submit(
        _submission("Hello", encoding, flash=flash, wap_push=wap_push))
    [(_, fields)] = upstream.requests
    assert fields["type"] == expected and fields["dlr"] == "0"


def test_the_message_type_follows_the_encoding_plan():
    """What delivery builds carries flash and WAP Push into the submission."""
    flash = build_submission(message_id="m", sender="99222", destination="447700900123", receipt=False,
                             plan=plan_for("Привет", encoding="ucs2", flash=True), concat_ref=1)
    push = build_submission(message_id="m", sender="99222", destination="447700900123", receipt=False,
                            plan=plan_for("http://example.com/x Sale", encoding=None, flash=False), concat_ref=1,
                            wap_push=True)
    assert (bulk_type(flash), bulk_type(push)) == ("6", "4")


def test_bulksms_1715_is_not_resubmitted(carrier):
    assert HttpConnector({"url": carrier(body="1715|x|").url, "preset": "bulksms"}).submit(SUBMISSION)[0].accepted


@pytest.mark.parametrize("status,status_class", [(429, StatusClass.THROTTLED), (500, StatusClass.TRANSIENT),
                                                  (404, StatusClass.TRANSIENT)])
def test_http_errors(carrier, status, status_class):
    [first, _] = HttpConnector({"url": carrier(status=status, body="no").url}).submit(SUBMISSION)
    assert classify(first.command_status).status_class is status_class


def test_timeout_and_refused_connection_are_connection_lost(carrier):
    slow = carrier(delay=2.0)
    assert HttpConnector({"url": slow.url, "timeout": 0.5}).submit(SUBMISSION)[0].command_status == CONNECTION_LOST
    assert HttpConnector({"url": "http://127.0.0.1:1/x"}).submit(SUBMISSION)[0].command_status == CONNECTION_LOST


def test_genesys_preset_passes_the_client_attachments_on_for_an_mms(carrier):
    """Seed 000 MT table: mms_attachment[n].content_type / .content (base64), from 0."""
    sent = (Attachment("image/png", b"\x89PNG"), Attachment("audio/amr", b"#!AMR"))
    mms = build_mms_submission(message_id="our-mms", sender="99222", destination="447700900123", text="caption",
                               receipt=False, mms=build_mms(sent, "caption"))
    upstream = carrier()
    [result] = HttpConnector({"url": upstream.url}).submit(mms)
    [(_, fields)] = upstream.requests
    assert result.accepted and fields["message"] == "caption" and fields["receipt"] == "FALSE"
    assert {k: v for k, v in fields.items() if k.startswith("mms_attachment")} == {
        "mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "iVBORw==",
        "mms_attachment[1].content_type": "audio/amr", "mms_attachment[1].content": "IyFBTVI="}


@pytest.mark.parametrize("settings,expected", [
    ({}, True), ({"preset": "bulksms"}, False), ({"preset": "bulksms", "mms": True}, True),
    ({"mms": False}, False), ({"preset": "unknown"}, False),
])
def test_which_http_carriers_take_mms(settings, expected):
    assert carries_mms({"url": "http://x", **settings}) is expected
