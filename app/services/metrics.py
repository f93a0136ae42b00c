"""What ``GET /metrics`` answers: the whole gateway's metrics (:mod:`app.domain.metrics`),
in Prometheus's text format, from any ingress.

:class:`GatewayCollector` is a prometheus_client custom collector; each scrape reads
Redis (a handful of round trips, none per message):

* the counters and histograms every process flushed to ``<prefix>metrics``
  (:mod:`app.adapters.metrics`);
* the gauges, computed now: each stage's backlog, oldest item, delayed items and dead
  letters by the code ``smsagg queues`` and ``smsagg status`` use
  (:func:`app.services.status.read_status`), SMPP binds and live processes from the
  heartbeats, and the schedule index (``<prefix>schedule``: batches by due time).

Every defined metric is rendered, with its help and type, even before anything was
counted, so dashboards and alerts find every name from the start.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable, Iterable

import redis
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from app.adapters.metrics import bucket_label, read_totals
from app.adapters.redis_scripts import RedisKeys
from app.domain.metrics import COUNTER, DEFINITIONS, GAUGE, HISTOGRAM, MetricDef
from app.domain.priorities import ALL_QUEUES
from app.services.status import Readings, read_status, summarize

_FAMILIES = {COUNTER: CounterMetricFamily, GAUGE: GaugeMetricFamily, HISTOGRAM: HistogramMetricFamily}


def _family(metric: MetricDef) -> Metric:
    return _FAMILIES[metric.kind](metric.name, metric.help, labels=metric.labels)


class GatewayCollector:
    """Every metric of the gateway, read from Redis at each :meth:`collect`."""

    def __init__(self, client: redis.Redis, key_prefix: str, clock: Callable[[], float] = time.time) -> None:
        self.client = client
        self.key_prefix = key_prefix
        self.keys = RedisKeys(key_prefix)
        self.clock = clock

    def collect(self) -> Iterable[Metric]:
        families = {metric.name: (metric, _family(metric)) for metric in DEFINITIONS}
        self._totals(families)
        self._gauges(families, read_status(self.client, self.key_prefix, self.clock()))
        return [family for _, family in families.values()]

    def _totals(self, families: dict[str, tuple[MetricDef, Metric]]) -> None:
        histograms: dict[tuple[str, tuple[str, ...]], dict[str, float]] = defaultdict(dict)
        for (name, labels, part), value in sorted(read_totals(self.client, self.keys.metrics())):
            metric, family = families.get(name, (None, None))
            if metric is None or len(labels) != len(metric.labels):
                continue  # counted by another version of the gateway
            if metric.kind == COUNTER and part == "":
                family.add_metric(labels, value)
            elif metric.kind == HISTOGRAM:
                histograms[(name, labels)][part] = value
        for (name, labels), parts in histograms.items():
            metric, family = families[name]
            cumulative, buckets = 0.0, []
            for bound in (*(bucket_label(b) for b in metric.buckets), "+Inf"):
                cumulative += parts.get(bound, 0.0)
                buckets.append((bound, cumulative))
            family.add_metric(labels, buckets, parts.get("sum", 0.0))

    def _gauges(self, families: dict[str, tuple[MetricDef, Metric]], readings: Readings) -> None:
        def gauge(name: str, labels: tuple[str, ...], value: float) -> None:
            families[name][1].add_metric(labels, value)

        status = summarize(readings.records, readings.depths, readings.task_messages, readings.at)
        for queue in status.queues:
            gauge("smsagg_stage_backlog", (queue.queue,), queue.backlog)
        for depth in readings.depths:
            gauge("smsagg_stage_oldest_age_seconds", (depth.queue,), depth.oldest_seconds)
            gauge("smsagg_stage_delayed", (depth.queue,), depth.delayed)
        dead = {depth.queue: depth.dead for depth in readings.depths}
        for queue in ALL_QUEUES:
            gauge("smsagg_stage_dead_letters", (queue,), dead.get(queue, 0))
        for carrier in status.carriers:
            gauge("smsagg_smpp_binds_up", (str(carrier.carrier_id),), carrier.up)
            gauge("smsagg_smpp_binds_configured", (str(carrier.carrier_id),), carrier.total)
        for part in ("ingress", "worker", "beat"):
            gauge("smsagg_parts", (part,), status.part_counts.get(part, 0))
        backlog, overdue = self._schedule(readings.at)
        gauge("smsagg_schedule_backlog", (), backlog)
        gauge("smsagg_schedule_overdue_seconds", (), overdue)

    def _schedule(self, now: float) -> tuple[int, float]:
        """(batches scheduled, seconds the earliest has been due; 0 if not yet)."""
        pipe = self.client.pipeline(transaction=False)
        pipe.zcard(self.keys.schedule())
        pipe.zrange(self.keys.schedule(), 0, 0, withscores=True)
        count, earliest = pipe.execute()
        overdue = max(0.0, now - float(earliest[0][1])) if earliest else 0.0
        return int(count), round(overdue, 1)


def metrics_registry(client: redis.Redis, key_prefix: str) -> CollectorRegistry:
    """A registry holding only the gateway's collector (no process metrics of the one
    ingress process that happens to answer the scrape)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(GatewayCollector(client, key_prefix))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The text exposition format (``prometheus_client.CONTENT_TYPE_LATEST``)."""
    return generate_latest(registry)
