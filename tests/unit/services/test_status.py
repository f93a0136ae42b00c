"""The gateway status summary (app.services.status.summarize): pure, records and depths
in, parts, stages, binds and alerts out; and gateway_status over fakeredis."""

from __future__ import annotations

import fakeredis

from app.adapters.heartbeats import Heartbeat, Throughput
from app.adapters.stage_queue import StageDepth, StageQueue
from app.services.status import gateway_status, summarize

NOW = 10_000.0


def record(part, pid, queues=(), binds=None, rates=None, started=NOW - 60, at=NOW - 2):
    return {"part": part, "host": "gw1", "pid": pid, "started_at": started, "at": at, "queues": list(queues),
            "binds": binds or {}, "handled": {}, "rates": rates or {}}


EVERYTHING = [
    record("ingress", 1), record("ingress", 2), record("beat", 3),
    record("worker", 10, ("mt.interactive", "mt.interactive_low"), {"7": [1, 1]}, {"mt.interactive": 4.0}),
    record("worker", 11, ("mt.bulk", "mt.bulk_low"), {"7": [2, 2], "8": [0, 1]}, {"mt.bulk": 120.5}),
    record("worker", 12, ("mt.bulk", "mt.bulk_low"), {"7": [1, 2], "8": [0, 1]}, {"mt.bulk": 80.0}),
    record("worker", 13, ("inbound", "callbacks"), {}, {"inbound": 3.0, "callbacks": 6.0}),
]


def test_a_healthy_gateway_sums_rates_and_binds_and_raises_no_alert_but_a_dead_carrier():
    depths = [StageDepth("mt.bulk", 500, 200, 1, 0.4)]
    status = summarize(EVERYTHING, depths, {"callbacks": 3}, NOW)
    assert status.part_counts == {"ingress": 2, "beat": 1, "worker": 4}
    bulk = next(q for q in status.queues if q.queue == "mt.bulk")
    assert (bulk.waiting, bulk.claimed, bulk.batches, bulk.backlog) == (500, 200, 1, 700)
    assert bulk.per_second == 200.5 and bulk.consumers == 2
    callbacks = next(q for q in status.queues if q.queue == "callbacks")
    assert callbacks.waiting is None and callbacks.task_messages == 3 and callbacks.backlog == 3
    assert status.mt_per_second == 204.5
    assert [(c.carrier_id, c.up, c.total, c.processes) for c in status.carriers] == [(7, 4, 5, 3), (8, 0, 2, 2)]
    assert status.alerts == ["carrier 8: no SMPP bind is up (2 worker process(es) keep trying)"]
    worker = next(p for p in status.parts if p.pid == 11)
    assert worker.binds == {7: (2, 2), 8: (0, 1)} and worker.up_seconds == 60 and worker.last_beat_seconds == 2
    assert not worker.late


def test_a_part_that_missed_beats_is_late():
    [part] = summarize([record("beat", 3, at=NOW - 11)], [], {}, NOW).parts
    assert part.late and part.last_beat_seconds == 11


def test_work_waiting_where_no_worker_listens_is_an_alert():
    depths = [StageDepth("mt.interactive", 0, 0, 0, None), StageDepth("inbound", 12, 0, 0, None)]
    records = [record("ingress", 1), record("beat", 2), record("worker", 3, ("mt.interactive",))]
    status = summarize(records, depths, {"callbacks": 2}, NOW)
    assert status.alerts == ["inbound: 12 waiting and no worker consumes this queue",
                             "callbacks: 2 waiting and no worker consumes this queue"]


def test_missing_ingress_and_beat_are_alerts():
    status = summarize([record("worker", 3, ("mt.bulk",))], [], {}, NOW)
    assert status.alerts == ["no ingress process is running",
                             "beat is not running: scheduled batches are not released, sweeps do not run"]


def test_no_heartbeat_at_all_says_so():
    status = summarize([], [], {}, NOW)
    assert status.parts == [] and len(status.alerts) == 1 and "no part" in status.alerts[0]


def test_as_dict_is_plain_json_data():
    data = summarize(EVERYTHING, [], {}, NOW).as_dict()
    assert data["part_counts"]["worker"] == 4
    assert data["carriers"][0] == {"carrier_id": 7, "up": 4, "total": 5, "processes": 3}
    assert next(p for p in data["parts"] if p["pid"] == 11)["binds"] == {"7": [2, 2], "8": [0, 1]}
    assert next(q for q in data["queues"] if q["queue"] == "mt.bulk")["backlog"] == 0


def test_gateway_status_reads_heartbeats_depths_and_celery_queues():
    client = fakeredis.FakeRedis()
    counts = Throughput()
    Heartbeat(client, "s:", "worker", queues=("mt.bulk",), throughput=counts, binds=lambda: {5: (1, 1)}).beat()
    StageQueue(client, "s:").push("mt.bulk", [{"n": 1}, {"n": 2}])
    status = gateway_status(client, "s:", now=NOW)
    bulk = next(q for q in status.queues if q.queue == "mt.bulk")
    assert bulk.waiting == 2 and bulk.task_messages == 1 and bulk.consumers == 1  # the drain task message
    assert [(c.carrier_id, c.up) for c in status.carriers] == [(5, 1)]
