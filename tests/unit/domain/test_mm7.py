"""The MM7 codec (3GPP TS 23.140 over SOAP 1.1): what smsagg writes, what it reads,
the status code table and what it refuses (hostile XML, broken MIME, wrong namespaces).
Delivery reports end in the seed 000 "Message State" table's states."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest

from app.domain import mm7
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment
from app.domain.smpp_status import DrResultCode, StatusClass, classify
from app.domain.states import MessageState

REL5 = mm7.NAMESPACE_ROOT + "REL-5-MM7-1-2"
PNG, AMR = b"\x89PNG\r\n\x1a\n-png-", b"#!AMR\n-amr-"


def submit_request(**changes) -> mm7.SubmitRequest:
    values = dict(transaction_id="msg-1", vasp_id="acme-vasp", vas_id="acme-vas", sender="12345",
                  recipient="447700900123", delivery_report=True, service_code="svc-1",
                  content=build_mms((Attachment("image/png", PNG), Attachment("audio/amr", AMR)), "Hello é"))
    values.update(changes)
    return mm7.SubmitRequest(**values)


def envelope(body: str, *, ns: str = mm7.NAMESPACE, env: str = mm7.SOAP_ENV, header: str = "tx-9") -> bytes:
    head = f'<env:Header><mm7:TransactionID xmlns:mm7="{ns}">{header}</mm7:TransactionID></env:Header>' if header else ""
    return (f'<?xml version="1.0"?><env:Envelope xmlns:env="{env}">{head}'
            f'<env:Body>{body}</env:Body></env:Envelope>').encode()


def submit_rsp(code="1000", message_id="<mm7:MessageID>mmsc-42</mm7:MessageID>", ns=mm7.NAMESPACE) -> bytes:
    return envelope(f'<mm7:SubmitRsp xmlns:mm7="{ns}"><mm7:MM7Version>6.8.0</mm7:MM7Version>'
                    f'<mm7:Status><mm7:StatusCode>{code}</mm7:StatusCode><mm7:StatusText>t</mm7:StatusText>'
                    f'</mm7:Status>{message_id}</mm7:SubmitRsp>', ns=ns)


# --- SubmitReq ---------------------------------------------------------------------------------

def test_a_submit_is_one_multipart_related_with_the_soap_envelope_first_and_the_smil_content():
    http = mm7.build_submit_req(submit_request())
    assert http.content_type.startswith('multipart/related; type="text/xml"; start="<mm7-soap>"; boundary=')
    received = mm7.parse_submit_req(http.content_type, http.body)
    assert received.transaction_id == "msg-1" and received.namespace == mm7.NAMESPACE
    assert (received.vasp_id, received.vas_id, received.sender) == ("acme-vasp", "acme-vas", "12345")
    assert received.recipients == ("447700900123",) and received.service_code == "svc-1" and received.delivery_report
    assert received.content_type == "multipart/related"
    smil, text, png, amr = received.parts
    assert smil.content_type == "application/smil" and b'src="cid:part0.png"' in smil.data
    assert text.data == "Hello é".encode() and text.content_type.startswith("text/plain")
    assert (png.content_type, png.content_id, png.data) == ("image/png", "part0.png", PNG)
    assert (amr.content_type, amr.data) == ("audio/amr", AMR)


def test_submit_envelope_names_the_sender_kind_and_the_content_part():
    xml = mm7.build_submit_req(submit_request(sender="447700900999")).body
    assert b"<mm7:SenderAddress><mm7:Number>447700900999</mm7:Number></mm7:SenderAddress>" in xml
    assert b'<mm7:Content href="cid:mm7-content" allowAdaptations="true" />' in xml
    assert b'env:mustUnderstand="1">msg-1</mm7:TransactionID>' in xml
    assert b"<mm7:DeliveryReport>true</mm7:DeliveryReport>" in xml
    no_report = mm7.build_submit_req(submit_request(delivery_report=False, service_code=None)).body
    assert b"<mm7:DeliveryReport>false</mm7:DeliveryReport>" in no_report and b"ServiceCode" not in no_report


def test_a_client_built_multipart_goes_out_as_it_came():
    body = b'--b1\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n--b1--\r\n'
    content = build_mms((Attachment('multipart/mixed; boundary="b1"', body),), "ignored")
    received = mm7.parse_submit_req(*_http(mm7.build_submit_req(submit_request(content=content))))
    assert received.content_type == "multipart/mixed"
    assert [(p.content_type, p.data) for p in received.parts] == [("image/gif", b"GIF89a")]


def test_a_content_type_with_a_line_break_cannot_be_built():
    content = build_mms((Attachment("image/png\r\nX-Evil: 1", PNG),), "")
    with pytest.raises(ValueError):
        mm7.build_submit_req(submit_request(content=content))


def _http(http: mm7.HttpBody) -> tuple[str, bytes]:
    return http.content_type, http.body


# --- SubmitRsp and the status table ------------------------------------------------------------

def test_a_successful_submit_rsp_gives_the_mmsc_message_id():
    answer = mm7.parse_submit_rsp("text/xml", submit_rsp())
    assert (answer.status_code, answer.message_id, answer.transaction_id) == (1000, "mmsc-42", "tx-9")
    assert answer.command_status == 0


def test_answers_are_read_in_the_namespace_they_come_in():
    answer = mm7.parse_submit_rsp("text/xml", submit_rsp(ns=REL5))
    assert answer.message_id == "mmsc-42"


# TS 23.140, MM7 StatusCode: 1xxx success, 2xxx client errors, 3xxx server errors,
# 4xxx service errors; each becomes the class and seed 000 DR result code shown.
STATUS_TABLE = [
    (1000, StatusClass.OK, DrResultCode.SUCCESS),
    (1100, StatusClass.OK, DrResultCode.SUCCESS),
    (2000, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (2001, StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    (2002, StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    (2003, StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    (2004, StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    (2005, StatusClass.PERMANENT, DrResultCode.UNMAPPED),
    (2006, StatusClass.PERMANENT, DrResultCode.UNMAPPED),
    (2007, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (2008, StatusClass.PERMANENT, DrResultCode.UNMAPPED),
    (2009, StatusClass.PERMANENT, DrResultCode.UNMAPPED),
    (3000, StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR),
    (3001, StatusClass.TRANSIENT, DrResultCode.REJECTED_UPSTREAM),
    (3002, StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    (3003, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (3004, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (4000, StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR),
    (4001, StatusClass.TRANSIENT, DrResultCode.AUTHENTICATION_FAILURE),
    (4002, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (4003, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (4004, StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR),
    (4005, StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR),
    (4006, StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR),
    (4007, StatusClass.TRANSIENT, DrResultCode.AUTHENTICATION_FAILURE),
    (4008, StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM),
    # codes the table does not know, by their class
    (1234, StatusClass.OK, DrResultCode.SUCCESS),
    (2999, StatusClass.PERMANENT, DrResultCode.UNMAPPED),
    (3999, StatusClass.TRANSIENT, DrResultCode.UNMAPPED),
    (4999, StatusClass.TRANSIENT, DrResultCode.UNMAPPED),
    (5000, StatusClass.TRANSIENT, DrResultCode.UNMAPPED),
]


@pytest.mark.parametrize(("code", "status_class", "result_code"), STATUS_TABLE)
def test_every_mm7_status_has_a_class_and_a_dr_result_code(code, status_class, result_code):
    answer = mm7.parse_submit_rsp("text/xml", submit_rsp(str(code), message_id="<mm7:MessageID>x</mm7:MessageID>"))
    status = classify(answer.command_status)
    assert (status.status_class, status.result_code) == (status_class, result_code)


def test_the_table_covers_every_ts_23140_status_code():
    assert sorted(mm7.STATUS_CODES) == [1000, 1100, *range(2000, 2010), *range(3000, 3005), *range(4000, 4009)]
    assert {code for code, *_ in STATUS_TABLE} >= set(mm7.STATUS_CODES)


@pytest.mark.parametrize(("fault", "detail", "status_class", "result_code", "status_code"), [
    ("env:Server", "", StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR, None),
    ("env:Client", "", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR, None),
    ("env:VersionMismatch", "", StatusClass.PERMANENT, DrResultCode.INTERNAL_ERROR, None),
    ("env:Server", "2002", StatusClass.PERMANENT, DrResultCode.REJECTED_UPSTREAM, 2002),
    ("Client", "4006", StatusClass.TRANSIENT, DrResultCode.INTERNAL_ERROR, 4006),
])
def test_soap_faults_carry_their_mm7_status_or_else_their_faultcode_decides(fault, detail, status_class,
                                                                              result_code, status_code):
    error = (f'<detail><mm7:RSErrorRsp xmlns:mm7="{mm7.NAMESPACE}"><mm7:Status><mm7:StatusCode>{detail}'
             '</mm7:StatusCode><mm7:StatusText>no</mm7:StatusText></mm7:Status></mm7:RSErrorRsp></detail>'
             if detail else "")
    body = envelope(f"<env:Fault><faultcode>{fault}</faultcode><faultstring>oops</faultstring>{error}</env:Fault>")
    answer = mm7.parse_submit_rsp("text/xml", body)
    assert answer.kind == "Fault" and answer.status_code == status_code
    status = classify(answer.command_status)
    assert (status.status_class, status.result_code) == (status_class, result_code)


def test_faults_smsagg_builds_are_read_back():
    fault = mm7.build_fault("tx", "Server", 3000, "try again later", error="VASPErrorRsp", namespace=REL5)
    answer = mm7.parse_answer(fault.content_type, fault.body, "DeliverRsp")
    assert (answer.kind, answer.fault, answer.status_code, answer.transaction_id) == ("Fault", "Server", 3000, "tx")


# --- what is refused ---------------------------------------------------------------------------

BILLION_LAUGHS = (b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
                  b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">'
                  b'<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>'
                  b'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>&lol3;'
                  b'</env:Body></env:Envelope>')
EXTERNAL_ENTITY = (b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
                   b'<env:Envelope xmlns:env="http://schemas.xmlsoap.org/soap/envelope/"><env:Body>&xxe;'
                   b'</env:Body></env:Envelope>')


@pytest.mark.parametrize(("content_type", "body"), [
    ("text/xml", BILLION_LAUGHS),
    ("text/xml", EXTERNAL_ENTITY),
    ("text/xml", b'<?xml version="1.0"?><!DOCTYPE x><x/>'),  # any DTD at all
    ("text/xml", b"<html><body>502 Bad Gateway</body></html>"),
    ("text/xml", b"not xml at all"),
    ("text/xml", b""),
    ("text/xml", submit_rsp()[:-40]),  # truncated
    ("text/xml", envelope("<x/>", env="http://example.com/not-soap")),  # wrong envelope namespace
    ("text/xml", submit_rsp(ns="http://example.com/mm7")),  # operation outside the 3GPP namespaces
    ("text/xml", envelope("")),  # an empty Body
    ("text/xml", submit_rsp(code="")),  # no status code
    ("text/xml", submit_rsp(code="10x0")),
    ("text/xml", submit_rsp(code="99999999")),
    ("text/xml", submit_rsp(message_id="")),  # success without a MessageID
    ("text/xml", submit_rsp(message_id=f"<mm7:MessageID>{'9' * 65}</mm7:MessageID>")),
    ("text/xml", envelope(f'<mm7:DeliverRsp xmlns:mm7="{mm7.NAMESPACE}"><mm7:Status><mm7:StatusCode>1000'
                          '</mm7:StatusCode></mm7:Status></mm7:DeliverRsp>')),  # not the answer asked for
    ('multipart/related; boundary="b"', b"--b\r\nContent-Type: text/xml\r\n\r\n" + submit_rsp()),  # no close
    ('multipart/related; boundary="zz"', b"--b\r\nContent-Type: text/xml\r\n\r\n<x/>\r\n--b--\r\n"),  # no start
    ('multipart/related; boundary="b"; start="<nope>"',
     b"--b\r\nContent-Type: text/xml\r\nContent-ID: <soap>\r\n\r\n" + submit_rsp() + b"\r\n--b--\r\n"),
    ('multipart/related; boundary="b"',
     b"--b\r\nContent-Type: text/xml\r\nContent-Transfer-Encoding: base64\r\n\r\n!!!not*base64\r\n--b--\r\n"),
])
def test_unreadable_answers_are_malformed(content_type, body):
    with pytest.raises(mm7.MalformedMm7):
        mm7.parse_submit_rsp(content_type, body)


def test_a_submit_answer_inside_a_multipart_is_read():
    body = (b"--b\r\nContent-Type: text/xml\r\nContent-ID: <soap>\r\n\r\n" + submit_rsp() + b"\r\n--b--\r\n")
    answer = mm7.parse_submit_rsp('multipart/related; type="text/xml"; start="<soap>"; boundary="b"', body)
    assert answer.message_id == "mmsc-42"


def test_unqualified_children_are_tolerated():
    body = envelope(f'<SubmitRsp xmlns="{mm7.NAMESPACE}"><Status xmlns=""><StatusCode>1000</StatusCode></Status>'
                    '<MessageID xmlns="">abc</MessageID></SubmitRsp>')
    assert mm7.parse_submit_rsp("text/xml", body).message_id == "abc"


def test_a_content_reference_that_names_no_part_is_malformed():
    http = mm7.build_submit_req(submit_request())
    with pytest.raises(mm7.MalformedMm7, match="names no part"):
        mm7.parse_submit_req(http.content_type, http.body.replace(b"<mm7-content>", b"<elsewhere>"))


def test_content_nested_too_deep_is_malformed():
    inner = b"--l0\r\nContent-Type: image/png\r\n\r\nx\r\n--l0--\r\n"
    content_type = 'multipart/mixed; boundary="l0"'
    for level in range(1, mm7.MAX_CONTENT_DEPTH + 2):
        inner = (f"--l{level}\r\nContent-Type: {content_type}\r\n\r\n".encode() + inner + f"\r\n--l{level}--\r\n".encode())
        content_type = f'multipart/mixed; boundary="l{level}"'
    body = (b"--top\r\nContent-Type: text/xml\r\n\r\n" + _deliver_envelope() +
            f"\r\n--top\r\nContent-Type: {content_type}\r\nContent-ID: <c>\r\n\r\n".encode() + inner + b"\r\n--top--\r\n")
    with pytest.raises(mm7.MalformedMm7, match="nested"):
        mm7.parse_vasp_request('multipart/related; boundary="top"', body)


def _deliver_envelope(content: str = '<mm7:Content href="cid:c"/>') -> bytes:
    return envelope(f'<mm7:DeliverReq xmlns:mm7="{mm7.NAMESPACE}"><mm7:MM7Version>6.8.0</mm7:MM7Version>'
                    '<mm7:Sender><mm7:Number>+447700900555</mm7:Number></mm7:Sender>'
                    '<mm7:Recipients><mm7:To><mm7:ShortCode>99222</mm7:ShortCode></mm7:To></mm7:Recipients>'
                    f'{content}</mm7:DeliverReq>')


# --- DeliveryReportReq and DeliverReq ----------------------------------------------------------

@pytest.mark.parametrize(("mm_status", "state"), [
    ("Retrieved", MessageState.DELIVERED),
    ("Expired", MessageState.EXPIRED),
    ("Rejected", MessageState.REJECTED),
    ("Unrecognised", MessageState.UNDELIVERABLE),
    ("DeliveryConditionNotMet", MessageState.UNDELIVERABLE),
    ("Indeterminate", MessageState.UNKNOWN),
    ("Deferred", MessageState.ENROUTE),
    ("Forwarded", MessageState.ENROUTE),
])
def test_delivery_reports_end_in_the_seed_message_states(mm_status, state):
    http = mm7.build_delivery_report_req("dr-1", "mmsc-42", "447700900123", "12345", mm7.MmStatus.read(mm_status),
                                         "text", datetime(2026, 12, 1, tzinfo=UTC), namespace=REL5)
    report = mm7.parse_vasp_request(http.content_type, http.body)
    assert isinstance(report, mm7.DeliveryReport)
    assert (report.message_id, report.recipient, report.transaction_id, report.namespace) == (
        "mmsc-42", "447700900123", "dr-1", REL5)
    assert report.mm_status.message_state is state


def test_a_delivery_report_without_message_id_or_with_an_unknown_status_is_malformed():
    for body in ('<mm7:MMStatus>Retrieved</mm7:MMStatus><mm7:Recipient><mm7:Number>1</mm7:Number></mm7:Recipient>',
                 '<mm7:MessageID>x</mm7:MessageID><mm7:MMStatus>Teleported</mm7:MMStatus>'
                 '<mm7:Recipient><mm7:Number>1</mm7:Number></mm7:Recipient>'):
        with pytest.raises(mm7.MalformedMm7):
            mm7.parse_vasp_request("text/xml", envelope(
                f'<mm7:DeliveryReportReq xmlns:mm7="{mm7.NAMESPACE}">{body}</mm7:DeliveryReportReq>'))


def test_an_mo_mms_gives_its_text_and_its_attachments_without_the_smil():
    content = build_mms((Attachment("image/jpeg", b"\xff\xd8jpeg"), Attachment("audio/amr", AMR)), "hi back")
    http = mm7.build_deliver_req("mo-1", "447700900555", "99222", content, linked_id="mmsc-42")
    mo = mm7.parse_vasp_request(http.content_type, http.body)
    assert isinstance(mo, mm7.DeliveredMms)
    assert (mo.sender, mo.recipient, mo.linked_id, mo.text) == ("447700900555", "99222", "mmsc-42", "hi back")
    assert mo.attachments == (Attachment("image/jpeg", b"\xff\xd8jpeg"), Attachment("audio/amr", AMR))


def test_mo_addresses_are_normalised_and_the_subject_stands_in_for_a_missing_text():
    body = (b"--b\r\nContent-Type: text/xml\r\n\r\n" + envelope(
        f'<mm7:DeliverReq xmlns:mm7="{mm7.NAMESPACE}"><mm7:Sender><mm7:RFC2822Address>+447700900555/TYPE=PLMN'
        '</mm7:RFC2822Address></mm7:Sender><mm7:Recipients><mm7:To><mm7:Number>99222</mm7:Number></mm7:To>'
        '</mm7:Recipients><mm7:Subject>From the beach</mm7:Subject></mm7:DeliverReq>')
        + b"\r\n--b\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.b64encode(b"GIF89a") + b"\r\n--b--\r\n")
    mo = mm7.parse_vasp_request('multipart/related; boundary="b"', body)
    assert (mo.sender, mo.recipient, mo.text) == ("447700900555", "99222", "From the beach")
    assert mo.attachments == (Attachment("image/gif", b"GIF89a"),)


def test_text_parts_are_decoded_by_their_charset():
    body = (b"--b\r\nContent-Type: text/xml\r\n\r\n" + _deliver_envelope()
            + b"\r\n--b\r\nContent-ID: <c>\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\ncaf\xe9\r\n--b--\r\n")
    assert mm7.parse_vasp_request('multipart/related; boundary="b"', body).text == "café"


def test_an_mo_without_a_recipient_is_malformed():
    with pytest.raises(mm7.MalformedMm7):
        mm7.parse_vasp_request("text/xml", envelope(
            f'<mm7:DeliverReq xmlns:mm7="{mm7.NAMESPACE}"><mm7:Sender><mm7:Number>1</mm7:Number></mm7:Sender>'
            '</mm7:DeliverReq>'))


def test_other_mm7_requests_are_unsupported_with_their_namespace_and_transaction():
    with pytest.raises(mm7.UnsupportedMm7) as raised:
        mm7.parse_vasp_request("text/xml", envelope(f'<mm7:ReadReplyReq xmlns:mm7="{REL5}"/>', ns=REL5))
    assert (raised.value.kind, raised.value.namespace, raised.value.transaction_id) == ("ReadReplyReq", REL5, "tx-9")


def test_answers_echo_the_transaction_and_namespace():
    http = mm7.build_answer("DeliveryReportRsp", "dr-7", 1000, "Success", namespace=REL5)
    assert http.content_type.startswith("text/xml")
    answer = mm7.parse_answer(http.content_type, http.body, "DeliveryReportRsp")
    assert (answer.status_code, answer.transaction_id) == (1000, "dr-7")
    assert REL5.encode() in http.body
