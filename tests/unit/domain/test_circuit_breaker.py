"""The per-endpoint circuit breaker's state machine and the counting of parked attempts."""

from __future__ import annotations

import pytest

from app.domain.circuit_breaker import (
    CLOSED,
    HALF_OPEN,
    OPEN,
    Admission,
    Breaker,
    BreakerPolicy,
    admit,
    endpoint_of,
    is_last_attempt,
    park_deadline,
    parked_attempts,
    record,
)

POLICY = BreakerPolicy(failures_to_open=3, probe_interval=5.0, probe_timeout=45.0)


def failed(breaker: Breaker, count: int = 1, *, probe: bool = False, now: float = 100.0) -> Breaker:
    return record(breaker, successes=0, failures=count, probe=probe, now=now, policy=POLICY)


def test_closed_sends_and_opens_after_the_threshold_of_failures_in_a_row():
    breaker = Breaker()
    assert admit(breaker, 0.0, POLICY) == (Admission.SEND, breaker)
    breaker = failed(failed(breaker))
    assert breaker == Breaker(CLOSED, 2)
    assert failed(breaker, now=100.0) == Breaker(OPEN, 3, 105.0)


def test_a_success_in_between_resets_the_count():
    breaker = record(failed(failed(Breaker())), successes=1, failures=1, probe=False, now=1.0, policy=POLICY)
    assert breaker == Breaker()
    assert failed(failed(breaker)).is_closed


def test_a_batch_of_failures_at_once_opens_it():
    assert failed(Breaker(), 10).state == OPEN


def test_open_parks_until_the_probe_is_due_then_admits_exactly_one_probe():
    breaker = Breaker(OPEN, 3, 105.0)
    assert admit(breaker, 104.9, POLICY) == (Admission.PARK, breaker)
    admission, probing = admit(breaker, 105.0, POLICY)
    assert admission is Admission.PROBE and probing == Breaker(HALF_OPEN, 3, 150.0)
    assert admit(probing, 120.0, POLICY)[0] is Admission.PARK  # the probe is in flight


def test_a_failed_probe_opens_it_for_another_interval():
    assert failed(Breaker(HALF_OPEN, 3, 150.0), probe=True, now=110.0) == Breaker(OPEN, 4, 115.0)


def test_a_successful_probe_closes_it():
    assert record(Breaker(HALF_OPEN, 3, 150.0), successes=1, failures=0, probe=True, now=1.0,
                  policy=POLICY) == Breaker()


def test_failures_that_are_not_the_probes_do_not_move_an_open_breaker():
    for breaker in (Breaker(OPEN, 3, 105.0), Breaker(HALF_OPEN, 3, 150.0)):
        assert failed(breaker, 50, now=104.0) == breaker


def test_a_lost_probe_lets_the_next_caller_probe_after_the_timeout():
    admission, breaker = admit(Breaker(HALF_OPEN, 3, 150.0), 150.0, POLICY)
    assert admission is Admission.PROBE and breaker.until == 195.0


def test_nothing_to_report_changes_nothing():
    breaker = Breaker(CLOSED, 2)
    assert record(breaker, successes=0, failures=0, probe=False, now=1.0, policy=POLICY) is breaker


@pytest.mark.parametrize(("parked_for", "attempts", "expected"), [
    (0, 0, 0), (4.9, 0, 0), (5.0, 0, 1), (27.0, 0, 5),
    (27.0, 23, 2),  # capped: 25 retries, the last one is real
    (1000.0, 0, 25), (1000.0, 25, 0),
])
def test_parked_time_counts_one_attempt_per_retry_interval(parked_for, attempts, expected):
    assert parked_attempts(attempts=attempts, max_retries=25, parked_at=100.0, retry_interval=5,
                           now=100.0 + parked_for) == expected


def test_a_callback_never_parked_is_counted_nothing():
    assert parked_attempts(attempts=0, max_retries=25, parked_at=None, retry_interval=5, now=1e9) == 0


def test_the_last_attempt_and_the_deadline_follow_the_documented_schedule():
    assert not is_last_attempt(attempts=24, max_retries=25)
    assert is_last_attempt(attempts=25, max_retries=25)
    assert is_last_attempt(attempts=0, max_retries=0)
    # 26 attempts at 0, 600, ..., 15000 s: parked at 1000 with 3 made, the last is due at 1000 + 22 * 600.
    assert park_deadline(attempts=3, max_retries=25, parked_at=1000.0, retry_interval=600) == 1000.0 + 22 * 600


@pytest.mark.parametrize(("url", "endpoint"), [
    ("http://Client.example/dr", "http://client.example:80"),
    ("http://client.example:80/mo?x=1", "http://client.example:80"),
    ("https://client.example/dr", "https://client.example:443"),
    ("http://127.0.0.1:8080/dr", "http://127.0.0.1:8080"),
    ("http://[::1]:9/dr", "http://::1:9"),
])
def test_an_endpoint_is_scheme_host_and_port(url, endpoint):
    assert endpoint_of(url) == endpoint
