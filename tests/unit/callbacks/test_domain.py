"""The pure callback rules: body, signature, retry decision, address policy."""

from __future__ import annotations

import pytest

from app.domain.callbacks import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    DeadLetter,
    Deliver,
    Retry,
    encode_fields,
    is_forbidden_address,
    next_step,
    signature,
    signed_headers,
    verify_signature,
)

SECRET = "k3y-0f-acme"
BODY = b"type=receipt&message_id=m-1&message_state=2&result_code=0"
# printf '%s' "1700000000$BODY" | openssl dgst -sha256 -hmac 'k3y-0f-acme'
VECTOR = "1e55d527665b91bf8fcca04a48324d3db8b9e72e50702db1e4724f9a89b0c9c4"


def test_fields_are_form_encoded_in_order_utf8_and_none_is_left_out():
    body = encode_fields([["type", "MO"], ["message", "héllo wörld & more=1"], ["app_id", None], ["carrier", 7],
                          ["mms_attachment[0].content", "iVBOR+/="]])
    assert body == (b"type=MO&message=h%C3%A9llo+w%C3%B6rld+%26+more%3D1&carrier=7"
                    b"&mms_attachment%5B0%5D.content=iVBOR%2B%2F%3D")
    assert encode_fields([["b", "1"], ["a", "2"]]) == b"b=1&a=2"
    assert encode_fields([]) == b""


def test_signature_is_hmac_sha256_of_timestamp_then_body():
    assert signature(SECRET, "1700000000", BODY) == VECTOR


def test_signed_headers_carry_the_integer_timestamp_and_its_signature():
    headers = signed_headers(SECRET, 1700000000.9, BODY)
    assert headers[TIMESTAMP_HEADER] == "1700000000"
    assert headers[SIGNATURE_HEADER] == VECTOR
    assert headers["Content-Type"] == "application/x-www-form-urlencoded"


@pytest.mark.parametrize(
    ("secret", "timestamp", "body", "sig", "now", "ok"),
    [
        (SECRET, "1700000000", BODY, VECTOR, 1700000000, True),
        (SECRET, "1700000000", BODY, VECTOR.upper(), 1700000100, True),
        (SECRET, "1700000000", BODY, VECTOR, 1700000300, True),  # at the tolerance
        (SECRET, "1700000000", BODY, VECTOR, 1700000301, False),  # too old: a replay
        (SECRET, "1700000000", BODY, VECTOR, 1699999699, False),  # from the future
        ("other-secret", "1700000000", BODY, VECTOR, 1700000000, False),
        (SECRET, "1700000001", BODY, VECTOR, 1700000000, False),  # timestamp changed
        (SECRET, "1700000000", BODY + b"&x=1", VECTOR, 1700000000, False),  # body changed
        (SECRET, "17e8", BODY, VECTOR, 1700000000, False),
        (SECRET, "", BODY, VECTOR, 1700000000, False),
        (SECRET, "1700000000", BODY, "", 1700000000, False),
    ],
)
def test_verify_signature(secret, timestamp, body, sig, now, ok):
    assert verify_signature(secret, timestamp, body, sig, now) is ok


def test_verify_signature_tolerance_is_configurable():
    assert not verify_signature(SECRET, "1700000000", BODY, VECTOR, 1700000061, tolerance=60)


@pytest.mark.parametrize(
    ("attempts", "max_retries", "status", "error", "expected"),
    [
        (1, 25, 200, None, Deliver()),
        (1, 25, 204, None, Deliver()),
        (1, 25, 299, None, Deliver()),
        (26, 25, 200, None, Deliver()),  # the last allowed attempt succeeded
        (1, 25, 500, None, Retry(600)),
        (1, 25, 302, None, Retry(600)),  # redirects are not followed
        (1, 25, 404, None, Retry(600)),
        (1, 25, 199, None, Retry(600)),
        (1, 25, 300, None, Retry(600)),
        (1, 25, None, "timeout", Retry(600)),
        (25, 25, None, "connection refused", Retry(600)),  # 24 retries made so far
        (26, 25, 500, None, DeadLetter("HTTP 500 (after 26 attempts)")),  # 1 + 25 attempts in all
        (1, 0, 500, None, DeadLetter("HTTP 500 (after 1 attempts)")),
        (3, 2, None, "timeout", DeadLetter("timeout (after 3 attempts)")),
    ],
)
def test_next_step_table(attempts, max_retries, status, error, expected):
    assert next_step(attempts, max_retries, status, error) == expected


def test_next_step_uses_the_accounts_interval_and_dead_letters_permanent_failures():
    assert next_step(1, 25, 503, None, retry_interval=1) == Retry(1)
    assert next_step(1, 25, None, "forbidden address 10.0.0.1", permanent=True) == \
        DeadLetter("forbidden address 10.0.0.1")
    assert next_step(1, 25, None, None) == Retry(600)


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.255.255.254", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255",
        "192.168.0.1", "192.168.255.255", "169.254.169.254", "169.254.0.1", "0.0.0.0", "100.64.0.1",
        "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255", "192.0.2.10", "198.18.0.1",
        "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456:789a::1", "ff02::1", "fec0::1",
        "::ffff:127.0.0.1", "::ffff:10.1.2.3", "::ffff:169.254.169.254", "2002:c0a8:0101::1", "64:ff9b::a00:1",
        "not-an-ip", "",
    ],
)
def test_forbidden_addresses(address):
    assert is_forbidden_address(address)


@pytest.mark.parametrize("address", ["8.8.8.8", "93.184.216.34", "172.32.0.1", "172.15.255.255", "192.169.0.1",
                                     "11.0.0.1", "2606:4700:4700::1111", "2a00:1450:4001:80b::200e",
                                     "::ffff:8.8.8.8", "2002:0808:0808::1"])
def test_public_addresses_are_allowed(address):
    assert not is_forbidden_address(address)
