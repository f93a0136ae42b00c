"""CallbackService against a real database (SQLite and PostgreSQL) and an in-memory
sender: claim, record, retry, dead-letter, order per message, fair share, replay, sweep."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl

import pytest

from app.adapters.callback_http import AttemptResult, RecordingCallbackSender
from app.db.session import session_scope
from app.domain.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from app.services import callbacks as svc
from app.services.callbacks import AccountSlots, CallbackService, utc
from app.services.errors import InvalidValue, NotFound
from tests.unit.callbacks.support import load, make_account, make_callback

URL = "http://client.example/dr"


@pytest.fixture
def service(database_url, sender, clock):
    return CallbackService(database_url, sender, slots=AccountSlots(4), clock=clock)


@pytest.fixture
def acme(database_url):
    return make_account(database_url, "acme", dr_url=URL)


def test_a_2xx_delivers_with_a_signed_form_body_and_one_recorded_attempt(database_url, service, sender, acme, clock):
    account_id, secret = acme
    callback_id = make_callback(database_url, account_id, URL, message_id="m1", client_message_id="client-1")
    outcome = service.send_batch([callback_id])
    assert outcome.delivered == [callback_id] and not outcome.retries and not outcome.dead
    [request] = sender.sent
    assert parse_qsl(request.body.decode()) == [("type", "receipt"), ("message_id", "client-1"),
                                                ("message_state", "2"), ("result_code", "0")]
    assert verify_signature(secret, request.headers[TIMESTAMP_HEADER], request.body,
                            request.headers[SIGNATURE_HEADER], now=clock.now)
    callback, attempts = load(database_url, callback_id)
    assert (callback.status, callback.attempts, callback.next_attempt_at) == ("delivered", 1, None)
    assert [(a.status_code, a.error) for a in attempts] == [(200, None)]
    # A redelivered task sends nothing twice.
    assert service.send_batch([callback_id]).skipped == [callback_id]
    assert len(sender.sent) == 1


def test_failures_retry_after_the_interval_then_dead_letter(database_url, service, sender, acme, clock):
    account_id, _ = acme
    callback_id = make_callback(database_url, account_id, URL, message_id="m1", max_retries=2, retry_interval=30)
    sender.answers[URL] = [AttemptResult(500, 3.0, "HTTP 500"), AttemptResult(None, 5000.0, "timeout: read"),
                           AttemptResult(503, 2.0, "HTTP 503")]
    assert service.send_batch([callback_id]).retries == [(callback_id, 30)]
    callback, _ = load(database_url, callback_id)
    assert callback.status == "pending" and callback.attempts == 1 and callback.last_error == "HTTP 500"
    assert abs((utc(callback.next_attempt_at) - datetime.fromtimestamp(clock.now, UTC)).total_seconds() - 30) < 1

    assert service.send_batch([callback_id]).skipped == [callback_id]  # not due yet: nothing sent
    clock.advance(30)
    assert service.send_batch([callback_id]).retries == [(callback_id, 30)]
    clock.advance(30)
    assert service.send_batch([callback_id]).dead == [callback_id]  # 1 + max_retries attempts
    callback, attempts = load(database_url, callback_id)
    assert callback.status == "dead" and callback.attempts == 3 and "after 3 attempts" in callback.last_error
    assert [(a.status_code, a.error) for a in attempts] == [(500, "HTTP 500"), (None, "timeout: read"),
                                                            (503, "HTTP 503")]
    assert len({r.body for r in sender.sent}) == 1  # the same fields every time


def test_a_permanent_failure_is_dead_lettered_at_once(database_url, service, sender, acme):
    account_id, _ = acme
    callback_id = make_callback(database_url, account_id, URL)
    sender.answers[URL] = [AttemptResult(None, 0.0, "forbidden address 10.0.0.1", permanent=True)]
    assert service.send_batch([callback_id]).dead == [callback_id]
    assert load(database_url, callback_id)[0].last_error == "forbidden address 10.0.0.1"


def test_replay_resets_attempts_uses_the_current_url_and_keeps_the_log(database_url, service, sender, acme, clock):
    account_id, _ = acme
    dead = make_callback(database_url, account_id, "http://old.example/dr", max_retries=0)
    other = make_callback(database_url, account_id, URL)
    sender.answers["http://old.example/dr"] = [AttemptResult(404, 1.0, "HTTP 404")]
    service.send_batch([dead, other])
    with session_scope(database_url) as session:
        assert [row["id"] for row in svc.list_callbacks(session, status="dead")] == [dead]
        assert [row["id"] for row in svc.list_callbacks(session, status="dead", account="acme")] == [dead]
        with pytest.raises(NotFound):
            svc.replay(session, ids=["nope"], now=datetime.now(UTC))
        with pytest.raises(InvalidValue):
            svc.replay(session, now=datetime.now(UTC))
    enqueued = []
    assert svc.replay_and_enqueue(database_url, enqueued.append, ids=[dead, other]) == [dead]  # delivered: left alone
    assert enqueued == [[dead]]
    callback, _ = load(database_url, dead)
    assert (callback.status, callback.attempts, callback.url, callback.last_error) == ("pending", 0, URL, None)
    assert service.send_batch([dead]).delivered == [dead]
    with session_scope(database_url) as session:
        view = svc.describe_callback(session, dead)
    assert [a["status_code"] for a in view["attempt_log"]] == [404, 200]
    assert view["status"] == "delivered" and view["attempts"] == 1


def test_a_later_callback_of_a_message_waits_for_the_earlier_one(database_url, service, sender, acme, clock):
    account_id, _ = acme
    start = datetime.now(UTC)
    first = make_callback(database_url, account_id, URL, message_id="m1", state=1, created_at=start)
    second = make_callback(database_url, account_id, URL, message_id="m1", state=2,
                           created_at=start + timedelta(milliseconds=5))
    unrelated = make_callback(database_url, account_id, URL, message_id="m2", created_at=start)
    outcome = service.send_batch([second, first, unrelated])
    assert sorted(outcome.delivered) == sorted([first, unrelated]) and outcome.deferred == [second]
    assert service.send_batch(outcome.deferred).delivered == [second]
    assert [dict(parse_qsl(r.body.decode()))["message_state"] for r in sender.sent if b"m1" in r.body] == ["1", "2"]


def test_an_earlier_callback_in_a_long_back_off_does_not_hold_later_ones(database_url, service, sender, acme, clock):
    account_id, _ = acme
    start = datetime.now(UTC)
    first = make_callback(database_url, account_id, URL, message_id="m1", state=1, created_at=start, retry_interval=600)
    second = make_callback(database_url, account_id, URL, message_id="m1", created_at=start + timedelta(seconds=1))
    sender.answers[URL] = [AttemptResult(500, 1.0, "HTTP 500")]
    assert service.send_batch([first]).retries == [(first, 600)]
    assert service.send_batch([second]).delivered == [second]


def test_one_account_gets_its_share_of_slots_and_others_proceed(database_url, sender, clock):
    slow_id, _ = make_account(database_url, "slow", dr_url=URL)
    fast_id, _ = make_account(database_url, "fast", dr_url=URL)
    service = CallbackService(database_url, sender, slots=AccountSlots(2), clock=clock)
    slow = [make_callback(database_url, slow_id, URL) for _ in range(5)]
    fast = make_callback(database_url, fast_id, URL)
    assert service.slots.take(slow_id, 2) == 2  # two batches of its already in flight in other threads
    outcome = service.send_batch([*slow, fast])
    assert outcome.delivered == [fast] and outcome.deferred == slow
    service.slots.give_back(slow_id, 1)
    outcome = service.send_batch(slow)  # a free slot: the whole batch goes at once
    assert sorted(outcome.delivered) == sorted(slow) and not outcome.deferred
    service.slots.give_back(slow_id, 1)
    assert service.slots.take(slow_id, 5) == 2  # every slot given back after the batches


def test_one_batch_claims_at_most_per_batch_callbacks_of_an_account(database_url, sender, acme, clock):
    account_id, _ = acme
    service = CallbackService(database_url, sender, slots=AccountSlots(2), per_batch=3, clock=clock)
    ids = [make_callback(database_url, account_id, URL) for _ in range(5)]
    outcome = service.send_batch(ids)
    assert outcome.delivered == ids[:3] and outcome.deferred == ids[3:]


def test_a_batch_records_each_outcome_with_its_own_attempt(database_url, service, sender, acme):
    account_id, _ = acme
    urls = [f"http://client.example/{n}" for n in range(3)]
    ids = [make_callback(database_url, account_id, url, message_id=f"m{n}", max_retries=n)
           for n, url in enumerate(urls)]
    sender.answers[urls[0]] = [AttemptResult(500, 1.0, "HTTP 500")]
    sender.answers[urls[1]] = [AttemptResult(503, 1.0, "HTTP 503")]
    outcome = service.send_batch(ids)
    assert outcome.dead == [ids[0]] and outcome.retries == [(ids[1], 1)] and outcome.delivered == [ids[2]]
    rows = [load(database_url, i) for i in ids]
    assert [(c.status, c.attempts, c.last_error) for c, _ in rows] == [
        ("dead", 1, "HTTP 500 (after 1 attempts)"), ("pending", 1, "HTTP 503"), ("delivered", 1, None)]
    assert [[a.status_code for a in attempts] for _, attempts in rows] == [[500], [503], [200]]
    assert rows[2][0].delivered_at is not None and rows[0][0].delivered_at is None


def test_a_claimed_callback_is_not_sent_by_a_second_task(database_url, service, sender, acme, clock):
    account_id, _ = acme
    callback_id = make_callback(database_url, account_id, URL)
    other = CallbackService(database_url, sender, clock=clock)

    class Reentrant(RecordingCallbackSender):
        def send_many(self, requests):
            # While this task's POST is in flight, a duplicate task for the same id runs.
            assert other.send_batch([callback_id]).skipped == [callback_id]
            return super().send_many(requests)

    service.sender = Reentrant()
    assert service.send_batch([callback_id]).delivered == [callback_id]
    assert len(service.sender.sent) == 1 and not sender.sent


def test_sweep_finds_pending_callbacks_whose_task_was_lost(database_url, acme):
    account_id, _ = acme
    now = datetime.now(UTC)
    lost = make_callback(database_url, account_id, URL, next_attempt_at=now - timedelta(minutes=10))
    recent = make_callback(database_url, account_id, URL, next_attempt_at=now - timedelta(seconds=1))
    with session_scope(database_url) as session:
        assert svc.sweep_due(session, now) == [lost]  # a second past due is not lost yet: its task may be running
        assert set(svc.sweep_due(session, now + timedelta(seconds=svc.SWEEP_GRACE_SECONDS))) == {lost, recent}
        assert svc.sweep_due(session, now, grace_seconds=0, limit=1) == [lost]


def test_attempts_are_counted_by_outcome_with_their_latency_retries_and_dead_letters(database_url, service, sender,
                                                                                     acme, clock):
    from tests.counting import counted

    account_id, _ = acme
    delivered = make_callback(database_url, account_id, URL, message_id="m1")
    failing = make_callback(database_url, account_id, "http://down.example/dr", message_id="m2", max_retries=1,
                            retry_interval=30)
    sender.answers["http://down.example/dr"] = [AttemptResult(500, 40.0, "HTTP 500"), AttemptResult(503, 60.0, "HTTP 503")]
    with counted() as recorder:
        service.send_batch([delivered, failing])
        clock.advance(31)
        service.send_batch([failing])
    deltas = recorder.take()
    name = "smsagg_callbacks_total"
    assert {labels: n for (metric, labels, part), n in deltas.items() if metric == name} == \
        {("delivered",): 1, ("retry",): 1, ("dead",): 1}
    assert deltas[("smsagg_retries_total", ("callbacks",), "")] == 1
    assert deltas[("smsagg_dead_letters_total", ("callbacks",), "")] == 1
    histogram = "smsagg_callback_duration_seconds"
    assert deltas[(histogram, ("retry",), "0.05")] == 1 and deltas[(histogram, ("dead",), "0.1")] == 1
    assert deltas[(histogram, ("dead",), "sum")] == pytest.approx(0.06)
