"""``smsagg bench rest``'s pieces: its requests are valid REST sends, each with its own
key, and the server CPU it reads from /proc is a process group's."""

from __future__ import annotations

import os
import time

from app.api.schemas import SendRequest
from app.bench.loadgen import encode_request
from app.bench.rest import RestRequests, group_cpu_seconds


def test_requests_are_valid_sends_with_their_own_key():
    make = RestRequests("t", "smsagg_abcdefghij_" + "x" * 43)
    first, second = make(0), make(1)
    assert SendRequest.model_validate_json(first.body).message_id == "t-0"
    assert SendRequest.model_validate_json(second.body).message_id == "t-1"
    wire = encode_request(first, "Host: h\r\n")
    assert b"\r\nAuthorization: Bearer smsagg_abcdefghij_" in wire and b"Content-Type: application/json\r\n" in wire
    assert wire.endswith(b"\r\n\r\n" + first.body)


def test_group_cpu_counts_this_process_group():
    before = group_cpu_seconds(os.getpgrp())
    deadline = time.process_time() + 0.2
    while time.process_time() < deadline:
        pass
    assert group_cpu_seconds(os.getpgrp()) - before >= 0.15
