"""The bulk area with real processes: a worker fans a batch out (and ``smsagg batch
status`` follows it), and a scheduled batch survives a restart of the worker and of
beat, then goes out once, within a second of its due time."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import datetime, timezone

from sqlalchemy import func, select

from app.bulk.models import Batch
from app.db.models import Message
from app.db.session import session_scope
from tests.integration.bulk.conftest import call, codes, entries, params
from tests.integration.workers import environment, running, wait_until, worker_ready


def recorded(database_url: str, batch_id: str) -> int:
    with session_scope(database_url) as session:
        return session.scalar(select(func.count()).select_from(Message).where(
            Message.id >= batch_id + "0" * 8, Message.id <= batch_id + "f" * 8))


def cli(settings, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=environment(settings),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_worker_fans_a_batch_out_and_batch_status_follows(bulk_client, gateway, tmp_path, redis_client):
    numbers = [str(12025551000 + i) for i in range(300)]
    body = call(bulk_client, "POST", "/bulksms/bulksms", params(destination=",".join(numbers)))
    result = entries(body)
    assert {c for c, _, _ in result} == {1701}
    batch_id = result[0][2][:24]
    log = tmp_path / "worker.log"
    with running(["worker", "--queues", "mt.bulk"], gateway, log, ready=worker_ready(log)):
        wait_until(lambda: recorded(gateway.database_url, batch_id) == 300, timeout=60)
    with session_scope(gateway.database_url) as session:
        row = session.get(Batch, batch_id)
        assert (row.status, row.total, len(row.destinations)) == ("released", 300, 300)
        ids = set(session.scalars(select(Message.id).where(Message.id >= batch_id + "0" * 8,
                                                           Message.id <= batch_id + "f" * 8)))
    assert ids == {m for _, _, m in result}
    status = json.loads(cli(gateway, "batch", "status", batch_id, "--json"))
    assert status["total"] == 300 and status["fanned_out"] == 300
    assert status["queued"] + status["submitted"] + status["delivered"] + status["failed"] == 300
    assert "queued" in cli(gateway, "batch", "status", batch_id, "--once")


def test_scheduled_batch_survives_restarts_and_goes_out_once_on_time(bulk_client, gateway, tmp_path, redis_client):
    """One real short-horizon run: submit (due at the next minute), restart the worker
    and beat, bring the due time to a few seconds from now (the API has minute
    resolution), and watch beat release it and the worker record every message once."""
    batch_id = schedule(bulk_client, "12025550100,12025550101,12025550102")
    keys_schedule = f"{gateway.key_prefix}schedule"
    worker_log, beat_log = tmp_path / "worker-1.log", tmp_path / "beat-1.log"
    beat_ready = lambda path: (lambda: b"bulk release loop started" in path.read_bytes())  # noqa: E731
    with running(["worker", "--queues", "mt.bulk"], gateway, worker_log, ready=worker_ready(worker_log)), \
            running(["beat"], gateway, beat_log, ready=beat_ready(beat_log)):
        wait_until(lambda: recorded_batch(gateway, batch_id) == "scheduled", timeout=20)  # persisted by the worker
    assert redis_client.zscore(keys_schedule, batch_id) is not None  # still waiting, both processes gone
    worker_log, beat_log = tmp_path / "worker-2.log", tmp_path / "beat-2.log"
    with running(["worker", "--queues", "mt.bulk"], gateway, worker_log, ready=worker_ready(worker_log)), \
            running(["beat"], gateway, beat_log, ready=beat_ready(beat_log)):
        # Brought forward only once the new processes are up, however long they took.
        due = bring_forward(gateway, redis_client, batch_id, time.time() + 3)
        wait_until(lambda: recorded(gateway.database_url, batch_id) == 3, timeout=30)
        # Anything sent twice would show up before a batch released after it has gone out.
        after = schedule(bulk_client, "12025550103")
        wait_until(lambda: recorded_batch(gateway, after) == "scheduled", timeout=20)
        bring_forward(gateway, redis_client, after, time.time())
        wait_until(lambda: recorded(gateway.database_url, after) == 1, timeout=30)
    released_at = float(redis_client.hget(f"{gateway.key_prefix}batch:{batch_id}", "released_at"))
    assert 0 <= released_at - due < 1.0
    assert recorded(gateway.database_url, batch_id) == 3
    assert recorded_batch(gateway, batch_id) == "released"
    assert redis_client.zscore(keys_schedule, batch_id) is None


def schedule(bulk_client, destinations: str) -> str:
    """A batch scheduled for two minutes from now; its id."""
    later = time.gmtime(time.time() + 120)
    body = call(bulk_client, "GET", "/bulksms/schedulemsg", params(
        destination=destinations, date=time.strftime("%m/%d/%Y", later), time=time.strftime("%I:%M %p", later),
        gmt="+00:00"))
    assert codes(body) == [1701] * len(destinations.split(","))
    return entries(body)[0][2][:24]


def bring_forward(gateway, redis_client, batch_id: str, due: float) -> float:
    """Make a scheduled batch due at ``due`` (the API has minute resolution)."""
    with session_scope(gateway.database_url) as session:  # the durable record agrees (beat resyncs from it)
        session.get(Batch, batch_id).due_at = datetime.fromtimestamp(due, tz=timezone.utc)
    redis_client.zadd(f"{gateway.key_prefix}schedule", {batch_id: due})
    return due


def recorded_batch(gateway, batch_id: str) -> str | None:
    with session_scope(gateway.database_url) as session:
        row = session.get(Batch, batch_id)
        return None if row is None else row.status
