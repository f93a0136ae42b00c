"""The endpoints' circuit breakers end to end: real Redis, a real ``smsagg worker
--queues callbacks``, real HTTP receivers that answer 503 for a while and then 200."""

from __future__ import annotations

import time
from collections import Counter

import pytest

from app.adapters.callback_queue import enqueue_callbacks
from tests.integration.receiver import Receiver
from tests.integration.workers import running, wait_until, worker_ready
from tests.unit.callbacks.support import load, make_account, make_callback

pytestmark = pytest.mark.integration
WORKER = ["worker", "--queues", "callbacks", "--pool", "threads", "--concurrency", "8"]
PROBE_SECONDS = 1.0


@pytest.fixture
def worker(settings, queues, tmp_path, monkeypatch):
    monkeypatch.setenv("SMSAGG_CALLBACK_BREAKER_FAILURES", "3")
    monkeypatch.setenv("SMSAGG_CALLBACK_PROBE_SECONDS", str(PROBE_SECONDS))
    log = tmp_path / "worker.log"
    with running(WORKER, settings, log, ready=worker_ready(log)):
        yield log


@pytest.fixture
def down():
    with Receiver() as server:
        yield server


@pytest.fixture
def up():
    with Receiver() as server:
        yield server


def statuses(settings, ids):
    return Counter(load(settings.database_url, i)[0].status for i in ids)


def client_id(request) -> str:
    return dict(request.fields)["message_id"]


def test_an_endpoint_that_is_down_sees_only_probes_then_gets_everything_at_once(settings, down, worker,
                                                                                redis_client):
    down.script("/dr", [503] * 100_000)
    account_id, _ = make_account(settings.database_url, "acme", dr_url=down.url("/dr"), interval=1)
    first = [make_callback(settings.database_url, account_id, down.url("/dr"), retry_interval=1) for _ in range(5)]
    enqueue_callbacks(redis_client, first)
    wait_until(lambda: len(down.received("/dr")) >= 5, timeout=20)  # they fail; the breaker opens

    outage_started = time.monotonic()
    later = []
    for _ in range(6):  # callbacks keep arriving during the outage
        batch = [make_callback(settings.database_url, account_id, down.url("/dr"), retry_interval=1)
                 for _ in range(20)]
        enqueue_callbacks(redis_client, batch)
        later += batch
        time.sleep(1.0)
    outage = time.monotonic() - outage_started
    during = [r for r in down.received("/dr") if r.at >= outage_started]
    # Without the breaker each of 125 callbacks would have been tried every second.
    # Only probes, one per interval (a last stray retry or two of the first five at most);
    # without the breaker each of the 125 callbacks is tried every second (about 450 here).
    assert len(during) <= 2 + outage / PROBE_SECONDS, len(during)

    down.script("/dr", [])  # the client is back
    back = time.monotonic()
    everything = first + later
    wait_until(lambda: statuses(settings, everything)["delivered"] == len(everything), timeout=60)
    delivered_in = time.monotonic() - back
    assert delivered_in < 15, delivered_in

    received = down.received("/dr")
    ok = Counter(client_id(r) for r in received if r.at >= back)
    assert set(ok) >= set(everything)  # none lost (the client's message_id is the callback id here)
    per_callback = Counter(client_id(r) for r in received)
    for callback_id in everything:
        callback, attempts = load(settings.database_url, callback_id)
        real = [a for a in attempts if a.status_code is not None or not (a.error or "").startswith("parked")]
        assert len(real) == per_callback[callback_id]  # every POST recorded, nothing more
        # Attempts counted while parked: one per retry interval, never more than the schedule allows.
        lived = (callback.delivered_at - callback.created_at).total_seconds()
        assert callback.attempts <= 1 + lived / callback.retry_interval + 1, (callback.attempts, lived)
        assert callback.attempts >= len(real)


def test_a_dead_endpoint_does_not_delay_a_healthy_one(settings, down, up, worker, redis_client):
    down.script("/dr", [503] * 100_000)
    dead_id, _ = make_account(settings.database_url, "dead", dr_url=down.url("/dr"), interval=1)
    live_id, _ = make_account(settings.database_url, "live", dr_url=up.url("/dr"), interval=1)
    opening = [make_callback(settings.database_url, dead_id, down.url("/dr"), retry_interval=1) for _ in range(5)]
    enqueue_callbacks(redis_client, opening)
    wait_until(lambda: len(down.received("/dr")) >= 5, timeout=20)

    parked = [make_callback(settings.database_url, dead_id, down.url("/dr"), retry_interval=1) for _ in range(30)]
    healthy = [make_callback(settings.database_url, live_id, up.url("/dr"), retry_interval=1) for _ in range(30)]
    started = time.monotonic()
    enqueue_callbacks(redis_client, parked + healthy)  # the same task carries both
    wait_until(lambda: statuses(settings, healthy)["delivered"] == len(healthy), timeout=20)
    assert time.monotonic() - started < 5
    assert len(up.received("/dr")) == len(healthy)
    assert statuses(settings, parked) == Counter(pending=len(parked))
    probes = [r for r in down.received("/dr") if r.at >= started]
    assert len(probes) <= 2 + (time.monotonic() - started) / PROBE_SECONDS  # parked, not tried one by one
