"""MT parameter rules, seed 000 "Sending a Mobile Terminated (MT) Message" table and
its "HTTP API Response" result codes; no I/O."""

import base64

import pytest

from app.domain.mt_request import (
    SenderKind,
    check_length,
    check_mms_size,
    classify_sender,
    parse_attachments,
    parse_form,
    parse_mt_request,
)
from app.domain.priorities import Priority
from app.domain.result_codes import Rejected, ResultCode

VALID = {
    "login": "acme",
    "password": "pw",
    "phone_number": "447700900000",
    "sender": "99222",
    "message": "Hey",
    "message_id": "m-1",
}


def with_(**changes):
    params = dict(VALID)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = value
    return params


def rejected_code(params) -> int:
    with pytest.raises(Rejected) as caught:
        parse_mt_request(params)
    return int(caught.value.code)


def test_valid_request_is_parsed_with_defaults():
    request = parse_mt_request(VALID)
    assert request.phone_number == "447700900000"
    assert request.sender == "99222"
    assert request.receipt is False
    assert request.priority is None
    assert request.carrier is None
    assert request.attachments == ()


@pytest.mark.parametrize("missing", ["login", "password", "phone_number", "sender", "message"])
def test_each_mandatory_parameter_missing_is_1(missing):
    assert rejected_code(with_(**{missing: None})) == 1


@pytest.mark.parametrize("blank", ["login", "password", "phone_number", "sender"])
def test_blank_mandatory_parameter_is_1(blank):
    assert rejected_code(with_(**{blank: ""})) == 1


def test_message_id_may_be_absent_at_parse_time():
    # Whether it is required depends on the account (seed: "Can be made optional").
    assert parse_mt_request(with_(message_id=None)).message_id is None


def test_seed_sample_client_sends_sender_as_shortcode():
    request = parse_mt_request(with_(sender=None, shortcode="99222"))
    assert request.sender == "99222"


def test_sender_and_shortcode_that_disagree_are_1():
    assert rejected_code(with_(shortcode="11111")) == 1


def test_sender_and_shortcode_that_agree_are_fine():
    assert parse_mt_request(with_(shortcode="99222")).sender == "99222"


@pytest.mark.parametrize(
    "number",
    ["+447700900000", "0447700900000", "4477009000a0", "44 7700900000", "12", "1234567890123456", "٤٤٧٧٠٠٩٠٠٠٠٠"],
)
def test_phone_number_not_numeric_international_is_1(number):
    assert rejected_code(with_(phone_number=number)) == 1


@pytest.mark.parametrize("number", ["12025550100", "447700900000", "12345", "123456789012345"])
def test_phone_number_numeric_international_is_accepted(number):
    assert parse_mt_request(with_(phone_number=number)).phone_number == number


@pytest.mark.parametrize("value,expected", [("TRUE", True), ("FALSE", False), ("true", True), ("", False)])
def test_receipt_values(value, expected):
    assert parse_mt_request(with_(receipt=value)).receipt is expected


@pytest.mark.parametrize("value", ["yes", "1", "TRUE "])
def test_invalid_receipt_is_1(value):
    assert rejected_code(with_(receipt=value)) == 1


@pytest.mark.parametrize("priority", list(Priority))
def test_every_priority_of_the_seed_is_accepted(priority):
    assert parse_mt_request(with_(priority=priority.value)).priority is priority


def test_invalid_priority_is_1():
    assert rejected_code(with_(priority="URGENT")) == 1


@pytest.mark.parametrize("carrier", ["abc", "12.5", "-3", "1e3", "９９"])
def test_carrier_not_an_integer_is_3(carrier):
    assert rejected_code(with_(carrier=carrier)) == 3


def test_carrier_integer_is_parsed():
    assert parse_mt_request(with_(carrier="99901")).carrier == 99901


def test_request_invalid_wins_over_carrier_invalid():
    assert rejected_code(with_(carrier="abc", phone_number="+1")) == 1


def test_overlong_message_id_is_1():
    assert rejected_code(with_(message_id="x" * 129)) == 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def test_attachments_numbered_from_zero_are_parsed():
    params = {
        "mms_attachment[0].content_type": "image/png",
        "mms_attachment[0].content": b64(b"\x89PNG"),
        "mms_attachment[1].content_type": "audio/amr",
        "mms_attachment[1].content": b64(b"#!AMR"),
    }
    attachments = parse_attachments(params)
    assert [a.content_type for a in attachments] == ["image/png", "audio/amr"]
    assert attachments[0].content == b"\x89PNG"


@pytest.mark.parametrize(
    "params",
    [
        {"mms_attachment[1].content_type": "image/png", "mms_attachment[1].content": "eA=="},
        {"mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "eA==",
         "mms_attachment[2].content_type": "image/png", "mms_attachment[2].content": "eA=="},
        {"mms_attachment[00].content_type": "image/png", "mms_attachment[00].content": "eA=="},
        {"mms_attachment[0].content": "eA=="},
        {"mms_attachment[0].content_type": "image/png"},
        {"mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "not base64!"},
        {"mms_attachment[0].content_type": "not a type", "mms_attachment[0].content": "eA=="},
        {"mms_attachment[0].size": "3"},
    ],
    ids=["starts-at-1", "gap", "leading-zero", "content-without-type", "type-without-content",
         "bad-base64", "bad-mime", "unknown-field"],
)
def test_bad_attachments_are_1(params):
    assert rejected_code({**VALID, **params}) == 1


def test_mms_may_have_an_empty_message():
    params = with_(message="", **{"mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "eA=="})
    assert parse_mt_request(params).attachments[0].content == b"x"


def test_empty_message_without_attachments_is_1():
    assert rejected_code(with_(message="")) == 1


def test_parse_form_decodes_utf8_and_keeps_the_first_value():
    params = parse_form(b"message=caf%C3%A9+%E2%82%AC&message=second&empty=")
    assert params == {"message": "café €", "empty": ""}


@pytest.mark.parametrize("raw", [b"message=%C3%28", b"message=%FF", "message=\u00e9".encode("utf-8")])
def test_parse_form_refuses_invalid_utf8_with_1(raw):
    with pytest.raises(Rejected) as caught:
        parse_form(raw)
    assert caught.value.code is ResultCode.REQUEST_INVALID


@pytest.mark.parametrize(
    "address,kind",
    [("99222", SenderKind.SHORTCODE), ("12345678", SenderKind.SHORTCODE), ("447700900000", SenderKind.LONG_NUMBER),
     ("ACME", SenderKind.ALPHANUMERIC), ("Acme Co", SenderKind.ALPHANUMERIC), ("12", None), ("TooLongSender", None),
     ("1234567890123456", SenderKind.LONG_NUMBER), ("123456789012345678", SenderKind.LONG_NUMBER),
     ("1234567890123456789", None), ("<script>", None), ("12345", SenderKind.SHORTCODE)],
)
def test_classify_sender(address, kind):
    assert classify_sender(address) is kind


def test_length_is_counted_in_characters():
    check_length("€" * 10, 10)
    with pytest.raises(Rejected) as caught:
        check_length("€" * 11, 10)
    assert caught.value.code is ResultCode.BODY_TOO_LONG


def attachments(*pairs):
    return {key: value for index, (content_type, data) in enumerate(pairs)
            for key, value in ((f"mms_attachment[{index}].content_type", content_type),
                               (f"mms_attachment[{index}].content", b64(data)))}


MULTIPART = b'--b1\r\nContent-Type: image/gif\r\n\r\nGIF89a\r\n--b1--\r\n'


@pytest.mark.parametrize("pairs", [
    [("image/png\r\nX-Injected: 1", b"x")],  # a line break would become a MIME header
    [("image/png; name=\"caf\u00e9\"", b"x")],  # parameters must be printable ASCII
    [('multipart/mixed; boundary="b1"', MULTIPART), ("image/png", b"x")],  # a multipart is the whole MMS
    [("image/png", b"x"), ('multipart/mixed; boundary="b1"', MULTIPART)],
    [('multipart/mixed; boundary="other"', MULTIPART)],  # not a multipart with its boundary
    [("multipart/mixed", MULTIPART)],  # no boundary at all
    [('multipart/mixed; boundary="b1"', b"--b1\r\nContent-Type: image/gif\r\n\r\nGIF89a")],  # never closed
], ids=["line-break", "non-ascii", "multipart-first-plus-more", "multipart-later", "wrong-boundary",
        "no-boundary", "unclosed"])
def test_invalid_mms_compositions_are_1(pairs):
    assert rejected_code(with_(**attachments(*pairs))) == 1


def test_a_client_built_multipart_alone_is_accepted():
    request = parse_mt_request(with_(**attachments(('multipart/mixed; boundary="b1"', MULTIPART))))
    assert request.attachments[0].content == MULTIPART


def test_an_mms_over_the_gateway_limit_is_8_and_the_text_counts():
    parts = parse_attachments(attachments(("image/png", b"x" * 900), ("audio/amr", b"y" * 90)))
    check_mms_size(parts, "0123456789", 1000)
    with pytest.raises(Rejected) as caught:
        check_mms_size(parts, "0123456789é", 1000)
    assert caught.value.code == ResultCode.BODY_TOO_LONG
    check_mms_size((), "a long text is no MMS" * 100, 10)
