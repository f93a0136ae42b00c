"""The REST API's bodies follow the MT API's own rules where the two overlap, and are
strict JSON: no coercion between types."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from app.api.schemas import ListQuery, SendRequest
from app.domain.mt_request import parse_mt_request
from app.domain.result_codes import Rejected

BASE = {"sender": "12345", "message": "hi"}


def rest_accepts(phone_number: str) -> bool:
    try:
        SendRequest.model_validate({**BASE, "phone_numbers": [phone_number]})
        return True
    except ValidationError:
        return False


def mt_accepts(phone_number: str) -> bool:
    try:
        parse_mt_request({"login": "l", "password": "p", "sender": "12345", "message": "hi",
                          "phone_number": phone_number})
        return True
    except Rejected:
        return False


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(alphabet="0123456789+ \n", max_size=17), st.text(max_size=17),
                 st.from_regex(r"[1-9][0-9]{2,14}", fullmatch=True)))
def test_phone_numbers_are_the_mt_apis(phone_number):
    assert rest_accepts(phone_number) == mt_accepts(phone_number)


@pytest.mark.parametrize("field,value", [
    ("receipt", "true"), ("receipt", 1), ("carrier", "7"), ("carrier", 7.0), ("carrier", True),
    ("message", 5), ("message_id", 12), ("phone_numbers", "12025550100"), ("priority", "bulk"),
])
def test_no_coercion(field, value):
    import json

    raw = json.dumps({**BASE, "phone_numbers": ["12025550100"], field: value})
    with pytest.raises(ValidationError):
        SendRequest.model_validate_json(raw)


def test_priority_and_send_at():
    parsed = SendRequest.model_validate_json(
        '{"phone_numbers": ["12025550100"], "sender": "1", "message": "m", "priority": "INTERACTIVE",'
        ' "send_at": "2026-12-01T10:00:00+02:00"}')
    assert parsed.priority.value == "INTERACTIVE" and parsed.send_at.isoformat() == "2026-12-01T08:00:00+00:00"
    assert parsed.is_batch


@pytest.mark.parametrize("value", ["2026-12-01T10:00:00Z", "2026-12-01t10:00:00.5z", "2026-12-01T10:00:00-05:30"])
def test_query_times_are_rfc_3339(value):
    assert ListQuery.model_validate_strings({"since": value}).since.tzinfo is not None
