"""The breakers' shared state in Redis (fakeredis): one probe per interval across
callers, a closing breaker takes its parked set, parking behind a closed one is refused."""

from __future__ import annotations

import fakeredis
import pytest

from app.adapters.endpoint_breakers import EndpointBreakers
from app.domain.circuit_breaker import HALF_OPEN, OPEN, Admission, BreakerPolicy

E = "http://client.example:80"


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def client():
    return fakeredis.FakeRedis()


def breakers(client, clock) -> EndpointBreakers:
    return EndpointBreakers(client, BreakerPolicy(failures_to_open=2, probe_interval=5.0), prefix="t:", clock=clock)


def opened(client, clock) -> EndpointBreakers:
    shared = breakers(client, clock)
    shared.record(E, successes=0, failures=2, probe=False)
    assert shared.state(E).state == OPEN
    return shared


def test_a_healthy_endpoint_leaves_nothing_in_redis(client, clock):
    shared = breakers(client, clock)
    assert shared.admit(E) == (Admission.SEND, True)
    assert shared.record(E, successes=3, failures=0, probe=False) == []
    assert client.keys("*") == []


def test_two_workers_sharing_redis_admit_a_single_probe(client, clock):
    one, other = opened(client, clock), breakers(client, clock)
    assert one.admit(E)[0] is Admission.PARK
    clock.now += 5
    assert [one.admit(E)[0], other.admit(E)[0]] == [Admission.PROBE, Admission.PARK]
    assert other.state(E).state == HALF_OPEN
    assert one.open_endpoints() == [E]


def test_closing_takes_the_parked_set_in_the_same_transaction(client, clock):
    shared = opened(client, clock)
    assert shared.park(E, ["a", "b"])
    clock.now += 3
    assert shared.park(E, ["b", "c"])  # b keeps the time it was first parked
    assert shared.parked_since(E, ["a", "b", "c", "z"]) == [1000.0, 1000.0, 1003.0, None]
    taken = shared.record(E, successes=1, failures=0, probe=True)
    assert sorted(taken) == [("a", 1000.0), ("b", 1000.0), ("c", 1003.0)]
    assert shared.state(E).is_closed and client.keys("*") == []
    assert not shared.park(E, ["d"])  # closed: the caller sends it instead


def test_the_probe_kicker_takes_the_oldest_parked_callback_once_the_probe_is_due(client, clock):
    shared = opened(client, clock)
    shared.park(E, ["old"])
    clock.now += 1
    shared.park(E, ["new"])
    assert shared.take_for_probe(E) is None
    clock.now += 5
    assert shared.take_for_probe(E) == ("old", 1000.0)
    shared.unpark(E, ["new"])
    assert shared.take_for_probe(E) is None
    shared.record(E, successes=1, failures=0, probe=True)
    assert shared.open_endpoints() == []
