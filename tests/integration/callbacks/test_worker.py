"""Callbacks end to end: rows in the database, ``enqueue_callbacks`` on real Redis, a
real ``smsagg worker --queues callbacks`` (threads), a real HTTP receiver."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.adapters.callback_queue import SWEEP_TASK, enqueue_callbacks
from app.adapters.celery_wire import task_message
from app.domain.callbacks import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from app.domain.priorities import CALLBACK_QUEUE
from tests.integration.workers import environment, running, wait_until, worker_ready
from tests.unit.callbacks.support import load, make_account, make_callback

pytestmark = pytest.mark.integration
WORKER = ["worker", "--queues", "callbacks", "--pool", "threads", "--concurrency", "8"]


@pytest.fixture
def worker(settings, queues, tmp_path):
    log = tmp_path / "worker.log"
    with running(WORKER, settings, log, ready=worker_ready(log)):
        yield log


def status(settings, callback_id):
    return load(settings.database_url, callback_id)[0].status


def cli(settings, *args):
    return subprocess.run([sys.executable, "-m", "app.cli", "callbacks", *args], env=environment(settings),
                          capture_output=True, text=True, timeout=60, check=True).stdout


def test_500_500_200_is_three_signed_attempts_of_the_same_fields(settings, receiver, worker, redis_client):
    receiver.script("/dr", [500, 500])
    account_id, secret = make_account(settings.database_url, "acme", dr_url=receiver.url("/dr"), interval=1)
    callback_id = make_callback(settings.database_url, account_id, receiver.url("/dr"), message_id="m1",
                                client_message_id="client-42", retry_interval=1)
    enqueue_callbacks(redis_client, [callback_id])
    wait_until(lambda: status(settings, callback_id) == "delivered", timeout=20)
    # Nothing more arrives: a later callback's retry, due after any stray retry of this
    # one would be, is delivered first.
    receiver.script("/dr", [500])
    later = make_callback(settings.database_url, account_id, receiver.url("/dr"), client_message_id="later",
                          retry_interval=1)
    enqueue_callbacks(redis_client, [later])
    wait_until(lambda: status(settings, later) == "delivered", timeout=20)
    got = [r for r in receiver.received("/dr") if ("message_id", "later") not in r.fields]
    assert len(got) == 3
    assert {r.body for r in got} == {got[0].body}
    assert ("message_id", "client-42") in got[0].fields
    for request in got:
        assert verify_signature(secret, request.headers[TIMESTAMP_HEADER], request.body,
                                request.headers[SIGNATURE_HEADER], now=time.time())
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert got[2].at - got[1].at > 0.8 and got[1].at - got[0].at > 0.8  # the interval, as countdowns
    callback, attempts = load(settings.database_url, callback_id)
    assert callback.attempts == 3 and callback.delivered_at is not None
    assert [a.status_code for a in attempts] == [500, 500, 200]
    assert all(a.latency_ms is not None for a in attempts) and attempts[0].error == "HTTP 500"


def test_exhausted_callbacks_are_dead_listed_and_replayed(settings, receiver, worker, redis_client):
    receiver.script("/dr", [500, 503])
    account_id, _ = make_account(settings.database_url, "acme", dr_url=receiver.url("/dr"), interval=1, retries=1)
    callback_id = make_callback(settings.database_url, account_id, receiver.url("/dr"), message_id="m1",
                                max_retries=1, retry_interval=1)
    enqueue_callbacks(redis_client, [callback_id])
    wait_until(lambda: status(settings, callback_id) == "dead", timeout=20)
    assert len(receiver.received("/dr")) == 2  # 1 + max_retries

    [row] = json.loads(cli(settings, "list", "--failed", "--json"))
    assert (row["id"], row["account"], row["status"], row["attempts"]) == (callback_id, "acme", "dead", 2)
    assert "HTTP 503" in row["last_error"] and row["message_id"] == "m1"
    assert "1 callback(s) queued again" in cli(settings, "replay", callback_id)
    wait_until(lambda: status(settings, callback_id) == "delivered", timeout=20)
    assert len(receiver.received("/dr")) == 3
    assert json.loads(cli(settings, "list", "--failed", "--json")) == []
    shown = json.loads(cli(settings, "show", callback_id, "--json"))
    assert [a["status_code"] for a in shown["attempt_log"]] == [500, 503, 200]


def test_a_slow_client_does_not_delay_another_accounts_callbacks(settings, receiver, worker, redis_client):
    receiver.script("/slow", delay=3.0)
    slow_id, _ = make_account(settings.database_url, "slow", dr_url=receiver.url("/slow"))
    fast_id, _ = make_account(settings.database_url, "fast", dr_url=receiver.url("/fast"))
    slow = [make_callback(settings.database_url, slow_id, receiver.url("/slow")) for _ in range(6)]
    fast = [make_callback(settings.database_url, fast_id, receiver.url("/fast")) for _ in range(3)]

    enqueue_callbacks(redis_client, slow)  # first, so a worker is busy with it
    wait_until(lambda: receiver.received("/slow"), timeout=10)
    started = time.monotonic()
    enqueue_callbacks(redis_client, fast[:2])  # a batch of its own
    enqueue_callbacks(redis_client, [make_callback(settings.database_url, slow_id, receiver.url("/slow")), fast[2]])
    wait_until(lambda: all(status(settings, i) == "delivered" for i in fast[:2]), timeout=10)
    fast_recorded = time.monotonic() - started
    wait_until(lambda: len(receiver.received("/fast")) == 3, timeout=10)
    fast_received = max(r.at for r in receiver.received("/fast")) - started
    # The slow client answers 3 s after its first POST; the fast account must not wait for it.
    assert fast_recorded < 2.0 and fast_received < 2.0, (fast_recorded, fast_received)
    assert all(status(settings, i) == "pending" for i in slow)  # still waiting for the slow client

    wait_until(lambda: all(status(settings, i) == "delivered" for i in slow), timeout=30)
    arrivals = sorted(r.at for r in receiver.received("/slow"))
    assert len(arrivals) == 7
    # Its two batches (two of the account's four slots) each sent all their callbacks at once.
    assert arrivals[-1] - arrivals[0] < 2.5


def test_the_sweeper_enqueues_callbacks_whose_task_was_lost(settings, receiver, worker, redis_client):
    account_id, _ = make_account(settings.database_url, "acme", dr_url=receiver.url("/dr"))
    long_ago = datetime.now(UTC) - timedelta(minutes=30)
    lost = make_callback(settings.database_url, account_id, receiver.url("/dr"), created_at=long_ago)
    redis_client.lpush(CALLBACK_QUEUE, task_message(SWEEP_TASK, CALLBACK_QUEUE, []))  # what beat sends
    wait_until(lambda: status(settings, lost) == "delivered", timeout=15)
    assert len(receiver.received("/dr")) == 1
