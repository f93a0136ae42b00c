"""Every Prometheus metric of the gateway: name, type, labels and help, in one place.

``GET /metrics`` (:mod:`app.web.metrics`), the recorders in the hot paths
(:mod:`app.adapters.metrics`), ``docs/metrics.md`` and the unit tests all read this
table, so a metric cannot be renamed or relabelled in one of them alone (a test
compares the documentation's table with it).

Two sources:

* ``process``: counters and histograms each process of the gateway counts in memory
  and adds to Redis every few seconds (:mod:`app.adapters.metrics`), so a scrape of one
  ingress sees every ingress, worker and host;
* ``scrape``: gauges read from Redis when ``/metrics`` is scraped (backlogs as
  ``smsagg queues`` shows them, binds from the heartbeats ``smsagg status`` reads, the
  schedule index).
"""

from __future__ import annotations

from dataclasses import dataclass

COUNTER, GAUGE, HISTOGRAM = "counter", "gauge", "histogram"
PROCESS, SCRAPE = "process", "scrape"

CALLBACK_SECONDS_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 15.0, 30.0)
"""Callback attempts: a client answering in tens of milliseconds up to the 15 s read
timeout (plus the 5 s connect timeout)."""


@dataclass(frozen=True)
class MetricDef:
    name: str
    kind: str
    labels: tuple[str, ...]
    help: str
    source: str = PROCESS
    buckets: tuple[float, ...] = ()


DEFINITIONS: tuple[MetricDef, ...] = (
    MetricDef("smsagg_submits_total", COUNTER, ("api", "result_code"),
              "Submit requests answered, by API (genesys, bulk: one per destination entry, rest) and the code "
              "the client got (genesys and bulk: the seed's result code; rest: the HTTP status)."),
    MetricDef("smsagg_accepted_total", COUNTER, ("priority",),
              "Messages the ingress accepted (genesys 0, bulk 1701, rest 202), queued now or scheduled, by "
              "priority."),
    MetricDef("smsagg_submit_sm_total", COUNTER, ("carrier", "command_status"),
              "Segments submitted to carriers, by carrier id and the answer's command_status (hex; "
              "connection_lost when no answer came; HTTP and MM7 carriers' answers mapped onto SMPP statuses)."),
    MetricDef("smsagg_carrier_throttle_waits_total", COUNTER, ("carrier",),
              "Messages held back by a carrier's token bucket (retried when the bucket allows), by carrier id."),
    MetricDef("smsagg_receipts_total", COUNTER, ("carrier", "outcome"),
              "Delivery receipts, by carrier id and outcome: matched (to a submitted segment, on arrival or "
              "later), held (matched nothing on arrival: kept and matched again), unmatched (given up after an hour)."),
    MetricDef("smsagg_callbacks_total", COUNTER, ("outcome",),
              "DR/MO callback attempts, by outcome: delivered, retry (scheduled again), dead (no more retries)."),
    MetricDef("smsagg_callback_duration_seconds", HISTOGRAM, ("outcome",),
              "Time of one callback HTTP attempt, by outcome (delivered, retry, dead).",
              buckets=CALLBACK_SECONDS_BUCKETS),
    MetricDef("smsagg_retries_total", COUNTER, ("stage",),
              "Items scheduled for another attempt, by stage (mt.<priority>: throttled, transient errors, "
              "failover; callbacks: failed attempts)."),
    MetricDef("smsagg_dead_letters_total", COUNTER, ("stage",),
              "Items set aside for an operator, by stage (stage dead letters: smsagg queues dead; "
              "callbacks: dead callbacks)."),
    MetricDef("smsagg_stage_backlog", GAUGE, ("stage",),
              "Items waiting at a stage: on its list, claimed by drain tasks, and Celery task messages "
              "(smsagg queues).", source=SCRAPE),
    MetricDef("smsagg_stage_oldest_age_seconds", GAUGE, ("stage",),
              "Age of the oldest item of a drained stage: the oldest waiting item or the oldest claim, "
              "whichever is older; 0 when it is empty.", source=SCRAPE),
    MetricDef("smsagg_stage_delayed", GAUGE, ("stage",),
              "Items of a drained stage waiting for a later attempt (retries, throttled).", source=SCRAPE),
    MetricDef("smsagg_stage_dead_letters", GAUGE, ("stage",),
              "Items on a stage's dead-letter list now (smsagg queues dead).", source=SCRAPE),
    MetricDef("smsagg_smpp_binds_up", GAUGE, ("carrier",),
              "SMPP binds up, by carrier id, summed over every live worker process.", source=SCRAPE),
    MetricDef("smsagg_smpp_binds_configured", GAUGE, ("carrier",),
              "SMPP binds configured, by carrier id, summed over every live worker process.", source=SCRAPE),
    MetricDef("smsagg_parts", GAUGE, ("part",),
              "Live processes by part (ingress, worker, beat), from their heartbeats.", source=SCRAPE),
    MetricDef("smsagg_schedule_backlog", GAUGE, (),
              "Scheduled batches waiting for their time.", source=SCRAPE),
    MetricDef("smsagg_schedule_overdue_seconds", GAUGE, (),
              "How long the most overdue scheduled batch has been due (0: none overdue; growing: beat is "
              "not releasing).", source=SCRAPE),
)

BY_NAME: dict[str, MetricDef] = {definition.name: definition for definition in DEFINITIONS}


def definition(name: str) -> MetricDef:
    """The definition of ``name`` (a ``KeyError`` names a metric nobody defined)."""
    return BY_NAME[name]
