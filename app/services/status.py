"""What runs and what waits: the gateway's status for operators (``smsagg status`` and
the console's status page), from the parts' heartbeats (:mod:`app.adapters.heartbeats`)
and the stages' depths (:meth:`app.adapters.stage_queue.StageQueue.depths`, as
``smsagg queues`` shows them).

:func:`summarize` is pure (records and depths in, a summary out, ``now`` given);
:func:`gateway_status` reads Redis (a handful of round trips) and calls it.

Throughput "now" is what the workers report: the items each stage's tasks handled per
second over their last heartbeat interval, summed over every live process (accepted
messages taken by the MT drains, receipts and MO by the inbound drains, callbacks
sent). When a stage keeps up, its rate is the rate at which work arrives; when it does
not, its backlog grows, which the same summary shows.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

import redis

from app.adapters.heartbeats import INTERVAL_SECONDS, read_parts
from app.adapters.stage_queue import StageDepth, StageQueue
from app.domain.priorities import ALL_QUEUES, MT_QUEUES

LATE_AFTER_SECONDS = 2 * INTERVAL_SECONDS
"""A part whose last beat is older than this missed beats: it is shown as late until
its key expires (a part killed with kill -9, a host that lost Redis)."""


@dataclass(frozen=True)
class PartStatus:
    part: str
    host: str
    pid: int
    up_seconds: float
    last_beat_seconds: float
    queues: tuple[str, ...]
    binds: dict[int, tuple[int, int]]
    per_second: float

    @property
    def late(self) -> bool:
        return self.last_beat_seconds > LATE_AFTER_SECONDS


@dataclass(frozen=True)
class QueueStatus:
    queue: str
    waiting: int | None  # items on the stage's list (None: a stage that is not drained in batches)
    claimed: int | None
    batches: int | None
    oldest_claim_seconds: float | None
    task_messages: int
    per_second: float
    consumers: int

    @property
    def backlog(self) -> int:
        return (self.waiting or 0) + (self.claimed or 0) + self.task_messages


@dataclass(frozen=True)
class CarrierBinds:
    carrier_id: int
    up: int
    total: int
    processes: int


@dataclass(frozen=True)
class GatewayStatus:
    at: float
    parts: list[PartStatus]
    queues: list[QueueStatus]
    carriers: list[CarrierBinds]
    alerts: list[str]

    @property
    def part_counts(self) -> dict[str, int]:
        counts: dict[str, int] = defaultdict(int)
        for part in self.parts:
            counts[part.part] += 1
        return dict(counts)

    @property
    def mt_per_second(self) -> float:
        return round(sum(q.per_second for q in self.queues if q.queue in MT_QUEUES), 2)

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "part_counts": self.part_counts, "mt_per_second": self.mt_per_second,
                "parts": [_part_dict(p) for p in self.parts],
                "queues": [{**asdict(q), "backlog": q.backlog} for q in self.queues],
                "carriers": [asdict(c) for c in self.carriers], "alerts": list(self.alerts)}


def _part_dict(part: PartStatus) -> dict[str, Any]:
    return {**asdict(part), "late": part.late, "queues": list(part.queues),
            "binds": {str(carrier): list(binds) for carrier, binds in part.binds.items()}}


def _part(record: Mapping[str, Any], now: float) -> PartStatus:
    binds = {int(carrier): (int(up), int(total)) for carrier, (up, total) in (record.get("binds") or {}).items()}
    return PartStatus(
        part=str(record.get("part", "?")), host=str(record.get("host", "?")), pid=int(record.get("pid", 0)),
        up_seconds=round(max(0.0, now - float(record.get("started_at", now))), 1),
        last_beat_seconds=round(max(0.0, now - float(record.get("at", now))), 1),
        queues=tuple(record.get("queues") or ()), binds=binds,
        per_second=round(sum(float(r) for r in (record.get("rates") or {}).values()), 2))


def summarize(records: Iterable[Mapping[str, Any]], depths: Iterable[StageDepth],
              task_messages: Mapping[str, int], now: float) -> GatewayStatus:
    """The status from heartbeat records, stage depths and the Celery queues' lengths."""
    records = list(records)
    parts = sorted((_part(r, now) for r in records), key=lambda p: (p.part, p.host, p.pid))
    by_queue = {d.queue: d for d in depths}
    rates: dict[str, float] = defaultdict(float)
    for record in records:
        for queue, rate in (record.get("rates") or {}).items():
            rates[queue] += float(rate)
    queues = []
    for queue in ALL_QUEUES:
        depth = by_queue.get(queue)
        queues.append(QueueStatus(
            queue=queue, waiting=depth.waiting if depth else None, claimed=depth.claimed if depth else None,
            batches=depth.batches if depth else None, oldest_claim_seconds=depth.oldest_claim_seconds if depth else None,
            task_messages=int(task_messages.get(queue, 0)), per_second=round(rates.get(queue, 0.0), 2),
            consumers=sum(1 for p in parts if queue in p.queues)))
    carriers = _carriers(parts)
    return GatewayStatus(now, parts, queues, carriers, _alerts(parts, queues, carriers))


def _carriers(parts: list[PartStatus]) -> list[CarrierBinds]:
    totals: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for part in parts:
        for carrier, (up, total) in part.binds.items():
            entry = totals[carrier]
            entry[0] += up
            entry[1] += total
            entry[2] += 1
    return [CarrierBinds(carrier, up, total, processes) for carrier, (up, total, processes) in sorted(totals.items())]


def _alerts(parts: list[PartStatus], queues: list[QueueStatus], carriers: list[CarrierBinds]) -> list[str]:
    if not parts:
        return ["no part of the gateway reports a heartbeat (is anything running on this Redis and prefix?)"]
    alerts = []
    names = {p.part for p in parts}
    if "ingress" not in names:
        alerts.append("no ingress process is running")
    if "beat" not in names:
        alerts.append("beat is not running: scheduled batches are not released, sweeps do not run")
    for queue in queues:
        if queue.consumers == 0 and queue.backlog:
            alerts.append(f"{queue.queue}: {queue.backlog} waiting and no worker consumes this queue")
    for carrier in carriers:
        if carrier.total and not carrier.up:
            alerts.append(f"carrier {carrier.carrier_id}: no SMPP bind is up "
                          f"({carrier.processes} worker process(es) keep trying)")
    return alerts


@dataclass(frozen=True)
class Readings:
    """What the status is made of: the heartbeats, the stages' depths (as ``smsagg
    queues`` shows them) and the Celery queues' lengths (also read by ``/metrics``)."""

    records: list[dict[str, Any]]
    depths: list[StageDepth]
    task_messages: dict[str, int]
    at: float


def read_status(client: redis.Redis, key_prefix: str, now: float | None = None) -> Readings:
    """Read the heartbeats, the stages' depths and the Celery queues (a few round trips)."""
    now = time.time() if now is None else now
    records = read_parts(client, key_prefix)
    depths = StageQueue(client, key_prefix).depths(now)
    pipe = client.pipeline(transaction=False)
    for queue in ALL_QUEUES:
        pipe.llen(queue)
    task_messages = dict(zip(ALL_QUEUES, (int(n) for n in pipe.execute())))
    return Readings(records, depths, task_messages, now)


def gateway_status(client: redis.Redis, key_prefix: str, now: float | None = None) -> GatewayStatus:
    """Read the heartbeats, the stages' depths and the Celery queues, and summarize."""
    readings = read_status(client, key_prefix, now)
    return summarize(readings.records, readings.depths, readings.task_messages, readings.at)
