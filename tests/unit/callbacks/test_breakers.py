"""CallbackService with the endpoints' circuit breakers (fakeredis, a real database, an
in-memory sender): parking, one probe per interval, release, attempts counted while
parked, the last attempt always real, endpoints isolated."""

from __future__ import annotations

from datetime import UTC, datetime

import fakeredis
import pytest

from app.adapters.callback_http import AttemptResult
from app.adapters.endpoint_breakers import EndpointBreakers
from app.domain.circuit_breaker import OPEN, BreakerPolicy
from app.db.session import session_scope
from app.services import callbacks as svc
from app.services.callbacks import AccountSlots, CallbackService, utc
from tests.unit.callbacks.support import load, make_account, make_callback

DOWN = "http://down.example/dr"
UP = "http://up.example/dr"
ENDPOINT = "http://down.example:80"
FAIL = AttemptResult(503, 1.0, "HTTP 503")


@pytest.fixture
def breakers(clock):
    return EndpointBreakers(fakeredis.FakeRedis(), BreakerPolicy(failures_to_open=3, probe_interval=5.0),
                            prefix="t:", clock=clock)


@pytest.fixture
def service(database_url, sender, clock, breakers):
    return CallbackService(database_url, sender, slots=AccountSlots(4), clock=clock, breakers=breakers)


@pytest.fixture
def account(database_url):
    return make_account(database_url, "acme", dr_url=DOWN, interval=5)[0]


def now(clock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def callbacks(database_url, account_id, count, url=DOWN, **options):
    return [make_callback(database_url, account_id, url, retry_interval=5, **options) for _ in range(count)]


def fail_all(sender, url=DOWN, times=1000):
    sender.answers[url] = [FAIL] * times


def open_breaker(service, sender, database_url, account_id):
    fail_all(sender)
    outcome = service.send_batch(callbacks(database_url, account_id, 3))
    assert len(outcome.retries) == 3 and service.breakers.state(ENDPOINT).state == OPEN
    sender.sent.clear()


def test_an_open_breaker_parks_callbacks_without_a_request(database_url, service, sender, account, clock):
    open_breaker(service, sender, database_url, account)
    ids = callbacks(database_url, account, 5)
    outcome = service.send_batch(ids)
    assert sender.sent == [] and sorted(outcome.parked) == sorted(ids)
    assert not outcome.retries and not outcome.delivered
    callback, attempts = load(database_url, ids[0])
    assert callback.status == "pending" and callback.attempts == 0 and attempts == []
    # Due in the database only at the end of its schedule (25 retries 5 s apart): the backstop.
    assert utc(callback.next_attempt_at).timestamp() == pytest.approx(clock.now + 25 * 5, abs=2)
    assert service.send_batch(ids).skipped == ids  # a duplicate task sends nothing


def test_one_probe_per_interval_the_others_wait(database_url, service, sender, account, clock):
    open_breaker(service, sender, database_url, account)
    service.send_batch(callbacks(database_url, account, 4))
    clock.advance(5)
    outcome = service.send_batch(callbacks(database_url, account, 4))
    assert len(sender.sent) == 1 and len(outcome.retries) == 1 and len(outcome.parked) == 3
    outcome = service.send_batch(callbacks(database_url, account, 4))
    assert len(sender.sent) == 1 and len(outcome.parked) == 4  # the probe failed: open another interval
    clock.advance(5)
    service.send_batch(callbacks(database_url, account, 2))
    assert len(sender.sent) == 2


def test_a_successful_probe_releases_every_parked_callback_counted_for_its_time_parked(
        database_url, service, sender, account, clock):
    open_breaker(service, sender, database_url, account)
    parked = callbacks(database_url, account, 6)
    service.send_batch(parked)
    clock.advance(12)  # two retry intervals parked
    sender.answers[DOWN] = []  # the client answers 200 again
    probe = callbacks(database_url, account, 1)
    outcome = service.send_batch(probe)
    assert outcome.delivered == probe and sorted(outcome.released) == sorted(parked)
    assert service.breakers.state(ENDPOINT).is_closed
    callback, attempts = load(database_url, parked[0])
    assert callback.next_attempt_at is None and callback.attempts == 2
    assert [a.status_code for a in attempts] == [None] and "counted as 2 attempt(s)" in attempts[0].error

    outcome = service.send_batch(outcome.released)
    assert sorted(outcome.delivered) == sorted(parked)
    callback, attempts = load(database_url, parked[0])
    assert callback.status == "delivered" and callback.attempts == 3 and attempts[-1].status_code == 200


def test_the_probe_kicker_sends_a_parked_callback_when_nothing_else_arrives(
        database_url, service, sender, account, clock):
    open_breaker(service, sender, database_url, account)
    parked = callbacks(database_url, account, 3)
    service.send_batch(parked)
    assert service.kick_probes() == []  # not due yet
    clock.advance(5)
    [kicked] = service.kick_probes()
    assert kicked in parked
    sender.answers[DOWN] = []
    outcome = service.send_batch([kicked])
    assert outcome.delivered == [kicked] and sorted(outcome.released) == sorted(set(parked) - {kicked})


def test_a_callback_on_its_last_attempt_is_sent_and_dead_lettered_on_schedule(
        database_url, service, sender, account, clock):
    open_breaker(service, sender, database_url, account)
    [callback_id] = callbacks(database_url, account, 1, max_retries=2)
    assert service.send_batch([callback_id]).parked == [callback_id]
    clock.advance(10)  # its whole schedule (2 retries, 5 s apart) spent parked
    outcome = service.send_batch([callback_id])  # the sweeper's, at its deadline
    assert outcome.dead == [callback_id] and len(sender.sent) == 1
    callback, attempts = load(database_url, callback_id)
    assert callback.status == "dead" and callback.attempts == 3  # 1 + max_retries, as documented
    assert [a.status_code for a in attempts] == [None, 503]


def test_a_dead_endpoint_does_not_hold_a_healthy_one(database_url, service, sender, account, clock):
    open_breaker(service, sender, database_url, account)
    down = callbacks(database_url, account, 3)
    up = callbacks(database_url, account, 3, url=UP)
    outcome = service.send_batch(down + up)
    assert sorted(outcome.delivered) == sorted(up) and sorted(outcome.parked) == sorted(down)
    assert {r.url for r in sender.sent} == {UP}


def test_callbacks_parked_as_the_breaker_closes_are_sent_not_stranded(
        database_url, service, sender, account, clock, breakers, monkeypatch):
    open_breaker(service, sender, database_url, account)
    closed_meanwhile = breakers.park

    def close_first(endpoint, ids):
        breakers.record(endpoint, successes=1, failures=0, probe=True)
        return closed_meanwhile(endpoint, ids)

    monkeypatch.setattr(breakers, "park", close_first)
    sender.answers[DOWN] = []
    ids = callbacks(database_url, account, 3)
    assert sorted(service.send_batch(ids).delivered) == sorted(ids)


def test_without_failures_a_closed_breaker_costs_one_read_per_batch(database_url, service, sender, account,
                                                                     breakers):
    service.send_batch(callbacks(database_url, account, 3))
    assert breakers.client.keys("t:*") == []


def test_a_parked_set_lost_with_redis_delays_callbacks_but_never_loses_them(
        database_url, service, sender, account, clock, breakers):
    open_breaker(service, sender, database_url, account)
    ids = callbacks(database_url, account, 3)
    service.send_batch(ids)
    breakers.client.delete(breakers.parked_key(ENDPOINT))
    with session_scope(database_url) as session:
        assert svc.sweep_due(session, now(clock)) == []  # parked: nothing to sweep
    clock.advance(25 * 5 + 10)  # past the end of their schedule: the backstop makes them due
    with session_scope(database_url) as session:
        assert set(ids) <= set(svc.sweep_due(session, now(clock)))
    sender.answers[DOWN] = []
    breakers.record(ENDPOINT, successes=1, failures=0, probe=True)  # the endpoint answers again
    assert sorted(service.send_batch(ids).delivered) == sorted(ids)
