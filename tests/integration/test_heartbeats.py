"""Heartbeats of real parts: a worker reports its queues and what its drains handled; a
worker killed with ``kill -9`` disappears from the status within the TTL; one stopped
cleanly disappears at once."""

from __future__ import annotations

import os
import signal

from app.adapters.heartbeats import TTL_SECONDS, read_parts
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready


def _workers(redis_client, key_prefix, pid):
    return [r for r in read_parts(redis_client, key_prefix) if r["part"] == "worker" and r["pid"] == pid]


def test_a_worker_beats_counts_its_drains_and_vanishes_when_killed(gateway, client, redis_client, tmp_path):
    log = tmp_path / "worker.log"
    with running(["worker", "--queues", "mt.bulk,mt.bulk_low"], gateway, log, ready=worker_ready(log)) as worker:
        [record] = wait_until(lambda: _workers(redis_client, gateway.key_prefix, worker.pid), timeout=20)
        assert record["queues"] == ["mt.bulk", "mt.bulk_low"]
        for n in range(3):
            assert submit(client, "POST", params(message_id=f"hb-{n}")) == 0
        # The carrier refuses connections, so each message is retried (an outage) and
        # handled again: the count is of items the drains handled, retries included.
        wait_until(lambda: _workers(redis_client, gateway.key_prefix, worker.pid)[0]["handled"].get("mt.bulk", 0) >= 3,
                   timeout=30)
        os.kill(worker.pid, signal.SIGKILL)
        wait_until(lambda: not _workers(redis_client, gateway.key_prefix, worker.pid), timeout=TTL_SECONDS + 10)


def test_a_worker_stopped_cleanly_removes_its_part_at_once(gateway, redis_client, tmp_path):
    log = tmp_path / "worker.log"
    with running(["worker", "--queues", "inbound"], gateway, log, ready=worker_ready(log)) as worker:
        wait_until(lambda: _workers(redis_client, gateway.key_prefix, worker.pid), timeout=20)
        pid = worker.pid
        worker.terminate()
        worker.wait(20)
    assert not _workers(redis_client, gateway.key_prefix, pid)


def test_beat_beats_and_removes_its_part_when_it_stops(gateway, redis_client, tmp_path):
    def beats():
        return [r for r in read_parts(redis_client, gateway.key_prefix) if r["part"] == "beat"]

    with running(["beat"], gateway, tmp_path / "beat.log") as beat:
        [record] = wait_until(beats, timeout=30)
        assert record["pid"] == beat.pid and record["queues"] == []
        beat.terminate()
        beat.wait(20)
    assert beats() == []
