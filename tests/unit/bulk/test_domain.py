"""Pure domain of the bulk API: the request parser (seed 001 parameter table), the
schedule parameters (section 2.1 rows 8-10), the WAP Push SI encoding (WAP-167) and the
rules (prices, spam, templates, stop keywords)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from app.bulk import rules
from app.domain import wap_push
from app.bulk.request import (
    GARBLED,
    MESSAGE_TYPES,
    BulkCode,
    BulkRejected,
    parse_bulk_request,
    parse_form_strict,
    plan_message,
)
from app.bulk.schedule import InvalidSchedule, due_epoch, parse_schedule

BASE = {"username": "u", "password": "p", "type": "0", "dlr": "0", "destination": "12025550100",
        "source": "ACME", "message": "Hi"}


def parse(**changes):
    params = {**BASE, **changes}
    return parse_bulk_request({k: v for k, v in params.items() if v is not None}, max_destinations=5)


def code_of(**changes) -> int:
    with pytest.raises(BulkRejected) as caught:
        parse(**changes)
    return caught.value.code


# --- seed 001, "type": each value's SMPP data_coding and message class ----------------------

@pytest.mark.parametrize("message_type,text,data_coding", [
    ("0", "Hello", 0x00),          # plain GSM 03.38
    ("1", "Hello", 0x10),          # flash GSM: class 0
    ("2", "Hello", 0x08),          # UCS-2
    ("4", "http://a.example/x", 0x04),  # WAP Push: 8-bit
    ("5", "Grüße", 0x03),          # ISO-8859-1
    ("6", "Привет", 0x18),         # UCS-2 class 0
    ("7", "Grüße", 0x03),          # Latin-1 flash: data_coding 3 + dest_addr_subunit (encoding.py)
])
def test_each_type_has_its_data_coding(message_type, text, data_coding):
    assert plan_message(text, MESSAGE_TYPES[message_type]).data_coding == data_coding


def test_long_messages_count_153_gsm7_and_67_ucs2_characters_per_part():
    """Seed 001, ``message``: every 153 characters one message for plain text; Unicode
    by 67 characters (the seed's 268 is 134 bytes)."""
    assert plan_message("a" * 160, MESSAGE_TYPES["0"]).segments == 1
    assert plan_message("a" * 161, MESSAGE_TYPES["0"]).segments == 2
    assert plan_message("a" * 306, MESSAGE_TYPES["0"]).segments == 2
    assert plan_message("a" * 307, MESSAGE_TYPES["0"]).segments == 3
    assert plan_message("я" * 70, MESSAGE_TYPES["2"]).segments == 1
    assert plan_message("я" * 134, MESSAGE_TYPES["2"]).segments == 2
    assert plan_message("я" * 135, MESSAGE_TYPES["2"]).segments == 3


def test_codes_are_decided_in_table_order():
    assert code_of(username=None, type="9") == BulkCode.INVALID_URL          # missing beats invalid
    assert code_of(username="x" * 65, type="9") == BulkCode.INVALID_CREDENTIALS
    assert code_of(type="3", dlr="7") == BulkCode.INVALID_TYPE
    assert code_of(dlr="7", source="!") == BulkCode.INVALID_DLR
    assert code_of(source="!", message=GARBLED) == BulkCode.INVALID_SOURCE
    assert code_of(message="€€", type="5") == BulkCode.INVALID_MESSAGE


@pytest.mark.parametrize("source,expected", [
    ("+447700900000", "447700900000"), ("123456789012345678", "123456789012345678"), ("ACME Ltd", "ACME Ltd"),
    (" 447700900000", "447700900000"),  # an unencoded '+' arrives as a space
])
def test_valid_sources(source, expected):
    assert parse(source=source).source == expected


@pytest.mark.parametrize("source", ["1234567890123456789", "ABCDEFGHIJKL", "AC|ME", "+ACME"])
def test_invalid_sources(source):
    assert code_of(source=source) == BulkCode.INVALID_SOURCE


def test_destinations_per_entry_in_order():
    request = parse(destination="+12025550100, 12025550101,,bad,12025550100,0123")
    assert [(d.given, d.number, d.code) for d in request.destinations] == [
        ("+12025550100", "12025550100", None), ("12025550101", "12025550101", None),
        ("bad", None, BulkCode.INVALID_DESTINATION), ("12025550100", "12025550100", BulkCode.DUPLICATE),
        ("0123", None, BulkCode.INVALID_DESTINATION),
    ]
    assert [d.index for d in request.candidates] == [0, 1]


def test_too_many_destinations_refuse_the_request():
    assert code_of(destination=",".join(["12025550100"] * 6)) == BulkCode.INVALID_DESTINATION


def test_strict_form_parsing_marks_garbled_values():
    params = parse_form_strict(b"message=%ZZ&source=%C3%28&type=0&a=%E2%82%AC&plus=a+b")
    assert params["message"] is GARBLED and params["source"] is GARBLED
    assert params["a"] == "€" and params["plus"] == "a b" and params["type"] == "0"
    with pytest.raises(BulkRejected) as caught:
        parse_form_strict(b"mes%ZZsage=1")
    assert caught.value.code == BulkCode.INVALID_URL
    with pytest.raises(BulkRejected):
        parse_form_strict(b"message=\xff")


# --- seed 001 section 2.1: date, time, gmt -----------------------------------------------------

@pytest.mark.parametrize("date,time,gmt,expected", [
    ("03/03/2018", "03:45 am", "GMT +1:30", datetime(2018, 3, 3, 2, 15, tzinfo=timezone.utc)),
    ("03/03/2018", "11:51 pm", "-10:00", datetime(2018, 3, 4, 9, 51, tzinfo=timezone.utc)),
    ("12/31/2026", "12:00 am", "+00:00", datetime(2026, 12, 31, 0, 0, tzinfo=timezone.utc)),
    ("12/31/2026", "12:30 PM", "gmt -0:30", datetime(2026, 12, 31, 13, 0, tzinfo=timezone.utc)),
    ("1/2/2027", "00:05am", "GMT 5:30", datetime(2027, 1, 1, 18, 35, tzinfo=timezone.utc)),  # '+' sent unencoded
])
def test_schedule_parsing(date, time, gmt, expected):
    assert parse_schedule(date, time, gmt) == expected


@pytest.mark.parametrize("date,time,gmt", [
    ("02/30/2027", "10:00 am", "+00:00"),   # no such day
    ("13/01/2027", "10:00 am", "+00:00"),
    ("2027-01-01", "10:00 am", "+00:00"),
    ("01/01/2027", "13:75 pm", "+00:00"),
    ("01/01/2027", "13:00 pm", "+00:00"),
    ("01/01/2027", "10:60 am", "+00:00"),
    ("01/01/2027", "10:00", "+00:00"),
    ("01/01/2027", "10:00 am", "GMT +14:00"),
    ("01/01/2027", "10:00 am", "+05:45"),
    ("01/01/2027", "10:00 am", "GMT"),
])
def test_absurd_schedules_are_refused(date, time, gmt):
    with pytest.raises(InvalidSchedule):
        parse_schedule(date, time, gmt)


def test_scheduled_request_needs_and_checks_date_time_gmt():
    params = {**BASE, "date": "02/30/2027", "time": "10:00 am", "gmt": "+00:00"}
    with pytest.raises(BulkRejected) as caught:
        parse_bulk_request(params, max_destinations=5, scheduled=True)
    assert caught.value.code == BulkCode.INVALID_URL
    with pytest.raises(BulkRejected):
        parse_bulk_request({**BASE, "date": "01/01/2027"}, max_destinations=5, scheduled=True)


def test_past_is_now_and_far_future_is_refused():
    now = datetime(2027, 1, 1, tzinfo=timezone.utc).timestamp()
    assert due_epoch(datetime(2020, 1, 1, tzinfo=timezone.utc), now=now, max_days=30) == now
    assert due_epoch(datetime(2027, 1, 2, tzinfo=timezone.utc), now=now, max_days=30) == now + 86400
    with pytest.raises(InvalidSchedule):
        due_epoch(datetime(2027, 3, 1, tzinfo=timezone.utc), now=now, max_days=30)


# --- WAP Push: WAP-167 SI, WAP-230 WSP push, TS 23.040 port addressing ----------------------

def test_si_document_matches_the_wap167_example():
    """WAP-167-ServiceInd-20010731-a, the tokenised example of its WBXML section."""
    document = wap_push.si_document(
        "http://www.xyz.com/email/123/abc.wml", "You have 4 new emails", action=None,
        created=datetime(1999, 6, 25, 15, 23, 15), expires=datetime(1999, 6, 30),
    )
    expected = bytes.fromhex(
        "02 05 6A 00 45 C6 0D 03 78 79 7A 00 85 03 65 6D 61 69 6C 2F 31 32 33 2F 61 62 63 2E 77 6D 6C 00"
        " 0A C3 07 19 99 06 25 15 23 15 10 C3 04 19 99 06 30 01"
    ) + b"\x03You have 4 new emails\x00\x01\x01"
    assert document == expected


def test_wap_push_payload_and_user_data_header():
    push, payload, parts = wap_push.plan("https://example.org/x  Spring sale")
    assert (push.url, push.text, parts) == ("https://example.org/x", "Spring sale", 1)
    assert payload[:4] == bytes([0x01, 0x06, 0x01, 0xAE])  # TID, Push, headers length, SIC
    assert payload[4:12] == bytes([0x02, 0x05, 0x6A, 0x00, 0x45, 0xC6, 0x0E, 0x03])  # https:// token
    [user_data] = wap_push.segment_payload(payload)
    assert user_data[:7] == bytes.fromhex("06 05 04 0B 84 23 F0")  # ports 2948 <- 9200
    assert user_data[7:] == payload


def test_long_wap_push_is_concatenated():
    payload = wap_push.wap_push_payload("http://example.com/" + "a" * 200)
    parts = wap_push.segment_payload(payload, ref=7)
    assert len(parts) == wap_push.count_parts(len(payload)) == 2
    assert [p[:12] for p in parts] == [bytes.fromhex(f"0B 05 04 0B 84 23 F0 00 03 07 02 0{i}") for i in (1, 2)]
    assert b"".join(p[12:] for p in parts) == payload


@pytest.mark.parametrize("text", ["", "example.com", "ftp://x.example", "http://" + "a" * 600])
def test_invalid_wap_push_texts(text):
    with pytest.raises(wap_push.InvalidWapPush):
        wap_push.plan(text)


# --- rules -----------------------------------------------------------------------------------

def test_price_resolution_order():
    table = rules.price_table([("1", 7, 5), ("1202", None, 3), (None, 7, 4), ("44", None, 9)], default=10)
    routes = rules.route_index([("1", 7, 0, 1), ("44", 8, 0, 2)])
    assert table.price("12025550100", routes.route("12025550100")) == 5       # the route's own price
    assert table.price("447700900000", routes.route("447700900000")) == 9     # destination prefix
    assert table.price("33100000000", routes.route("33100000000")) == 10      # default
    no_route_price = rules.price_table([(None, 7, 4)], default=10)
    assert no_route_price.price("12025550100", routes.route("12025550100")) == 4  # the carrier's price


def test_templates_spam_and_keywords():
    template = rules.compile_template("Hi {#var#}, your code is {#var#}.")
    assert rules.matches_template("Hi Ann,  your code is 1234.", [template])
    assert not rules.matches_template("Hi Ann, your code is 1234. Buy now", [template])
    assert not rules.matches_template("Hi " + "x" * 31 + ", your code is 1.", [template])
    assert rules.matches_spam("FREE money", [rules.compile_spam_rule("free money", False)])
    assert not rules.matches_spam("free-money", [rules.compile_spam_rule("free money", False)])
    with pytest.raises(rules.InvalidRule):
        rules.compile_spam_rule("(", True)
    assert [rules.stop_keyword_action(t) for t in ("STOP", " stopall ", "Unsubscribe.", "cancel", "END", "quit!",
                                                   "start", "please stop", "")] == \
        ["stop", "stop", "stop", "stop", "stop", "stop", "start", None, None]
