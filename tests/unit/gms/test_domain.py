"""The pure core: parameters, configured overrides, access codes, matching, chat values."""

from __future__ import annotations

import pytest

from app.gms import domain as d


def test_split_parameters_separates_control_from_application_data():
    upload = d.UploadedFile("a.png", "image/png", b"x")
    request = d.split_parameters({"_phone_number": "1", "lat": "48.8", "_provide_code": "true"}, {"photo": upload})
    assert request.control == {"_phone_number": "1", "_provide_code": "true"}
    assert request.data == {"lat": "48.8"} and request.files == {"photo": upload}
    with pytest.raises(d.InvalidParameter) as error:
        d.split_parameters({}, {"_file": upload})
    assert error.value.parameter == "_file"


@pytest.mark.parametrize("raw, expected", [("true", True), ("FALSE", False), ("1", True), ("", None), (None, None)])
def test_parse_bool(raw, expected):
    assert d.parse_bool("_provide_code", raw) is expected


def test_parse_bool_names_the_parameter():
    with pytest.raises(d.InvalidParameter) as error:
        d.parse_bool("_provide_code", "maybe")
    assert error.value.parameter == "_provide_code" and error.value.status == 400


@pytest.mark.parametrize("raw", ["0", "-1", "x", "2.5", "100000000"])
def test_parse_ttl_refuses_negative_zero_and_absurd(raw):
    with pytest.raises(d.InvalidParameter) as error:
        d.parse_ttl(raw, maximum=3600)
    assert error.value.parameter == "ttl"


def test_parse_ttl_missing():
    with pytest.raises(d.MissingParameter):
        d.parse_ttl(None, maximum=10)
    assert d.parse_ttl(" 60 ", maximum=3600) == 60


def test_configured_values_supersede_request_values():
    definition = d.ServiceDefinition("iPhoneService", d.Builtin.REQUEST_INTERACTION, ttl=7200,
                                     options={"provide_code": "false", "resource_group": "iPhoneService"})
    merged = d.effective_parameters(definition, {"_provide_code": "true", "_resource_group": "other",
                                                 "_phone_number": "6504669999"})
    assert merged == {"_provide_code": "false", "_resource_group": "iPhoneService", "_phone_number": "6504669999"}
    assert definition.effective_ttl == 7200
    assert d.BUILTINS["request-interaction"].effective_ttl == 30  # the seed's default


def test_access_codes_come_in_distinct_digit_strings():
    codes = d.new_access_codes(6)
    assert len(codes) == 8 and len(set(codes)) == 8
    assert all(len(c) == 6 and c.isdigit() for c in codes)
    assert sorted(d.new_access_codes(1, count=20)) == [str(i) for i in range(10)]
    with pytest.raises(d.InvalidParameter):
        d.new_access_codes(0)


def test_phone_normalisation_and_matching():
    assert d.normalise_phone("_phone_number", "+1 (650) 466-9999") == "16504669999"
    assert d.phones_match("16504669999", "6504669999")
    assert not d.phones_match("4669999", "16504669998")
    assert not d.phones_match("123", "0123")  # short suffixes do not match
    with pytest.raises(d.InvalidParameter):
        d.normalise_phone("_phone_number", "call me")


def _reservation(code="123456", phone="6504669999", app="a") -> d.Reservation:
    return d.Reservation("18005550100", "svc", app, "g", phone, code, expires_ms=1)


def test_reservation_matching():
    assert d.reservation_matches(_reservation(), phone="16504669999", code="123456")
    assert d.reservation_matches(_reservation(), phone=None, code="123456")
    assert not d.reservation_matches(_reservation(), phone=None, code=None)  # a code was handed out
    assert not d.reservation_matches(_reservation(), phone=None, code="654321")
    assert not d.reservation_matches(_reservation(), phone="4155550000", code="123456")
    # seed 003: match-interaction looks through ALL services, whichever app reserved it
    assert d.reservation_matches(_reservation(code=None), phone="6504669999", code=None)
    assert not d.reservation_matches(_reservation(code=None), phone=None, code="1")


def test_round_robin_keeps_order_and_random_shuffles():
    rr = d.ResourceGroup("g", tuple(str(n) for n in range(50)), d.Strategy.ROUND_ROBIN)
    assert d.allocation_order(rr) == list(rr.numbers)
    rnd = d.ResourceGroup("g", rr.numbers, d.Strategy.RANDOM)
    orders = {tuple(d.allocation_order(rnd)) for _ in range(5)}
    assert len(orders) > 1 and all(sorted(o) == sorted(rr.numbers) for o in orders)
    assert d.Strategy.parse("ROUND_ROBIN") is d.Strategy.ROUND_ROBIN
    with pytest.raises(d.InvalidParameter):
        d.Strategy.parse("fastest")


def test_chat_start_parameters():
    start = d.parse_chat_start({"firstName": "Kristi", "lastName": "Sippola", "emailAddress": "k@x.org",
                                "notify_by": "comet"})
    assert start.nickname == "Kristi Sippola" and start.email == "k@x.org" and start.pushes
    with pytest.raises(d.MissingParameter) as error:
        d.parse_chat_start({"lastName": "Only"})
    assert error.value.parameter == "nickname"
    with pytest.raises(d.InvalidParameter) as error:
        d.parse_chat_start({"nickname": "n", "email": "not an email"})
    assert error.value.parameter == "email"
    with pytest.raises(d.InvalidParameter):
        d.parse_chat_message({"message": "x" * (d.MAX_CHAT_MESSAGE + 1)})
    assert d.parse_transcript_position(None) == 1 and d.parse_transcript_position("0") == 1


def test_chat_response_shape():
    entry = d.notice(d.ChatEvent.JOINED, "Kristi", "1", d.PartyType.CLIENT)
    assert d.TranscriptEntry.from_wire(entry.to_wire()) == entry
    body = d.chat_response(state=d.ChatIxnState.CONNECTED, session_id="S1", entries=[entry], total=3)
    assert body["transcriptToShow"] == [["Notice.Joined", "Kristi", "has joined the session", "1", "CLIENT"]]
    assert body["transcriptPosition"] == "4" and body["chatIxnState"] == "CONNECTED"


def test_errors_render_as_json():
    error = d.ResourceExhausted("full", parameter="_resource_group", retry_after=3)
    assert error.status == 503 and error.to_json() == {
        "error": "resource_group_exhausted", "message": "full", "parameter": "_resource_group"}
    assert d.UnknownService("x").status == 404


# Seed 003, request-access, _booking_expiration_timeout: "This parameter will override
# the value in Resource options and in CME options". (request, group, service config) -> s
@pytest.mark.parametrize("requested, group_timeout, configured, expected", [
    ("5", 20, "60", 5),  # the request wins over both
    (None, 20, "60", 20),  # then the resource group's option
    (None, None, "60", 60),  # then the configured service's (CME) option
    (None, None, None, 30),  # then [gms] booking_expiration_timeout
    ("", None, None, 30),
])
def test_booking_precedence_request_then_resource_then_configuration(requested, group_timeout, configured, expected):
    control = {} if requested is None else {"_booking_expiration_timeout": requested}
    options = {} if configured is None else {"booking_expiration_timeout": configured}
    definition = d.ServiceDefinition("svc", d.Builtin.REQUEST_ACCESS, options=options)
    group = d.ResourceGroup("g", ("1800",), booking_timeout=group_timeout)
    assert d.booking_seconds(d.effective_parameters(definition, control), group, definition, 30) == expected


def test_other_configured_values_still_supersede_the_request():
    """Seed 003, request-interaction: "the configuration option value will supercede the
    passed value"; only _booking_expiration_timeout is the request's to override."""
    definition = d.ServiceDefinition("svc", d.Builtin.REQUEST_INTERACTION,
                                     options={"provide_code": "false", "booking_expiration_timeout": "60"})
    merged = d.effective_parameters(definition, {"_provide_code": "true", "_booking_expiration_timeout": "5"})
    assert merged == {"_provide_code": "false", "_booking_expiration_timeout": "5"}


@pytest.mark.parametrize("raw, name", [("sales", "sales"), ("Environment:default", "default"), (" ", None),
                                       (None, None)])
def test_chat_endpoint_names(raw, name):
    assert d.chat_endpoint_name(raw) == name


@pytest.mark.parametrize("raw", ["a b", "x" * 65, "Environment:", "sales;drop"])
def test_bad_chat_endpoint_names(raw):
    with pytest.raises(d.InvalidParameter) as error:
        d.chat_endpoint_name(raw)
    assert error.value.parameter == "_chat_endpoint"
