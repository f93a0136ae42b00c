"""``smsagg bench rest``'s pieces: its requests are valid REST sends, each with its own
key, and the server CPU it reads from /proc is a process group's."""

from __future__ import annotations

import subprocess
import sys

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


BURN = ("import sys, time\nend = time.process_time() + 0.2\nwhile time.process_time() < end: pass\n"
        "print('burnt', flush=True)\nsys.stdin.read()")  # 0.2 s of CPU, then wait to be let go


def test_group_cpu_counts_the_cpu_of_a_process_group():
    """A group of its own: the test session's group has other tests' processes in it,
    and one that exits between two readings takes its CPU out of the sum."""
    burner = subprocess.Popen([sys.executable, "-c", BURN], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, start_new_session=True)
    try:
        assert burner.stdout.readline() == "burnt\n"
        assert group_cpu_seconds(burner.pid) >= 0.15  # its own session: the group id is its pid (ticks round)
    finally:
        burner.stdin.close()
        burner.wait(10)
        burner.stdout.close()
