"""Heartbeats (app.adapters.heartbeats) against fakeredis: one key per process with a
TTL, an index readers use instead of SCAN, a clean stop that removes the part at once,
per-stage rates, and a Redis outage that does not end the heartbeat."""

from __future__ import annotations

import json
import os

import fakeredis
import pytest

from app.adapters.heartbeats import TTL_SECONDS, Heartbeat, Throughput, read_parts
from app.adapters.redis_scripts import RedisKeys
from tests.integration.workers import wait_until

PREFIX = "hb:"


@pytest.fixture
def server():
    return fakeredis.FakeServer()


@pytest.fixture
def client(server):
    return fakeredis.FakeRedis(server=server)


def test_a_beat_writes_the_record_with_a_ttl_and_indexes_it(client):
    heartbeat = Heartbeat(client, PREFIX, "worker", queues=("mt.bulk", "mt.bulk_low"),
                          binds=lambda: {7: (1, 2)}, clock=lambda: 1000.0)
    heartbeat.beat()
    key = RedisKeys(PREFIX).part("worker", heartbeat.host, os.getpid())
    assert 0 < client.ttl(key) <= TTL_SECONDS
    assert client.zrange(RedisKeys(PREFIX).parts_index(), 0, -1) == [key.encode()]
    record = json.loads(client.get(key))
    assert record == {"part": "worker", "host": heartbeat.host, "pid": os.getpid(), "started_at": 1000.0,
                      "at": 1000.0, "queues": ["mt.bulk", "mt.bulk_low"], "binds": {"7": [1, 2]}, "handled": {},
                      "rates": {}}
    assert read_parts(client, PREFIX) == [record]


def test_read_parts_drops_index_members_whose_key_expired(client):
    alive, gone = (Heartbeat(client, PREFIX, name) for name in ("ingress", "beat"))
    alive.beat()
    gone.beat()
    client.delete(gone.key)  # what the TTL does to a part killed with kill -9
    assert [r["part"] for r in read_parts(client, PREFIX)] == ["ingress"]
    assert client.zrange(RedisKeys(PREFIX).parts_index(), 0, -1) == [alive.key.encode()]


def test_a_record_that_is_not_json_is_ignored(client):
    keys = RedisKeys(PREFIX)
    client.set(keys.part("worker", "h", 1), b"{not json")
    client.zadd(keys.parts_index(), {keys.part("worker", "h", 1): 1})
    assert read_parts(client, PREFIX) == []


def test_no_parts_no_index(client):
    assert read_parts(client, PREFIX) == []


def test_the_thread_beats_until_stopped_and_stop_removes_the_part(client):
    heartbeat = Heartbeat(client, PREFIX, "beat", interval=0.05)
    heartbeat.start()
    heartbeat.start()  # a second start is a no-op
    wait_until(lambda: client.get(heartbeat.key), timeout=5)
    assert read_parts(client, PREFIX)[0]["part"] == "beat"
    heartbeat.stop()
    assert client.get(heartbeat.key) is None and client.zcard(RedisKeys(PREFIX).parts_index()) == 0


def test_stopping_a_heartbeat_that_never_started_touches_nothing(server, client):
    server.connected = False  # it would raise if it talked to Redis
    Heartbeat(client, PREFIX, "ingress").stop()


def test_a_redis_outage_does_not_end_the_heartbeat(server, client, caplog):
    beats = []
    heartbeat = Heartbeat(client, PREFIX, "worker", binds=lambda: beats.append(1) or {}, interval=0.05)
    server.connected = False
    heartbeat.start()
    wait_until(lambda: len(beats) >= 5, timeout=5)  # five beats into the outage
    assert caplog.text.count("Redis unavailable") == 1  # logged once per outage, not per beat
    server.connected = True
    wait_until(lambda: client.get(heartbeat.key), timeout=5)
    heartbeat.stop()


def test_a_probe_that_raises_does_not_end_the_heartbeat(client):
    calls = []

    def flaky_binds():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("registry busy")
        return {}

    heartbeat = Heartbeat(client, PREFIX, "worker", binds=flaky_binds, interval=0.05)
    heartbeat.start()
    wait_until(lambda: client.get(heartbeat.key), timeout=5)
    heartbeat.stop()
    assert len(calls) >= 2


def test_throughput_reports_the_rate_since_the_previous_sample():
    counts = Throughput()
    assert counts.sample(100.0) == ({}, {})
    counts.add("mt.bulk", 200)
    counts.add("mt.bulk", 50)
    counts.add("callbacks", 10)
    assert counts.sample(105.0) == ({"mt.bulk": 250, "callbacks": 10}, {"mt.bulk": 50.0, "callbacks": 2.0})
    assert counts.sample(110.0) == ({"mt.bulk": 250, "callbacks": 10}, {"mt.bulk": 0.0, "callbacks": 0.0})


def test_the_record_carries_the_rates_of_the_last_interval(client):
    now = [0.0]
    counts = Throughput()
    heartbeat = Heartbeat(client, PREFIX, "worker", throughput=counts, clock=lambda: now[0])
    heartbeat.beat()
    counts.add("inbound", 40)
    now[0] = 4.0
    heartbeat.beat()
    record = read_parts(client, PREFIX)[0]
    assert record["handled"] == {"inbound": 40} and record["rates"] == {"inbound": 10.0}
