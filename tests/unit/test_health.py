"""The probes' verdicts (app.health): alive unless Redis answers without a heartbeat of
the part from this host; ready only with Redis, the database and a heartbeat."""

from __future__ import annotations

import redis

from app.health import judge, own_beats, takes_writes

RECORDS = [
    {"part": "worker", "host": "gw1", "pid": 10, "queues": ["mt.bulk", "mt.bulk_low"]},
    {"part": "worker", "host": "gw1", "pid": 11, "queues": ["callbacks"]},
    {"part": "worker", "host": "gw2", "pid": 12, "queues": ["mt.bulk"]},
    {"part": "beat", "host": "gw2", "pid": 13, "queues": []},
]


def test_own_beats_are_the_part_on_this_host_and_queue():
    assert [r["pid"] for r in own_beats(RECORDS, "worker", "gw1")] == [10, 11]
    assert [r["pid"] for r in own_beats(RECORDS, "worker", "gw1", "callbacks")] == [11]
    assert own_beats(RECORDS, "beat", "gw1") == []
    assert own_beats(RECORDS, "worker", "gw3") == []


def test_a_heartbeat_from_this_host_is_alive_and_ready():
    beats = own_beats(RECORDS, "worker", "gw1")
    assert judge(beats, part="worker", host="gw1", ready=False).ok
    verdict = judge(beats, part="worker", host="gw1", ready=True)
    assert verdict.ok and "10, 11" in verdict.reason


def test_no_heartbeat_while_redis_answers_is_neither_alive_nor_ready():
    for ready in (False, True):
        verdict = judge([], part="beat", host="gw1", ready=ready)
        assert not verdict.ok and "no heartbeat" in verdict.reason


def test_redis_away_keeps_a_part_alive_but_not_ready():
    assert judge(None, part="worker", host="gw1", ready=False).ok
    verdict = judge(None, part="worker", host="gw1", ready=True)
    assert not verdict.ok and "Redis" in verdict.reason


def test_the_database_away_makes_a_beating_part_unready_but_alive():
    beats = own_beats(RECORDS, "worker", "gw2")
    verdict = judge(beats, part="worker", host="gw2", ready=True, database_error="connection refused")
    assert not verdict.ok and "connection refused" in verdict.reason
    assert judge(beats, part="worker", host="gw2", ready=False, database_error="connection refused").ok


class _Refusing:
    def __init__(self, error: Exception | None) -> None:
        self.error, self.written = error, []

    def set(self, key, value, px):
        if self.error:
            raise self.error
        self.written.append((key, px))


def test_a_redis_that_refuses_writes_proves_nothing_by_a_missing_heartbeat():
    assert not takes_writes(_Refusing(redis.ResponseError("OOM command not allowed")), "smsagg:", "gw1")
    assert not takes_writes(_Refusing(redis.ResponseError("READONLY You can't write against a replica")), "p:", "h")
    accepting = _Refusing(None)
    assert takes_writes(accepting, "smsagg:", "gw1")
    assert accepting.written == [("smsagg:probe:gw1", 1000)]
