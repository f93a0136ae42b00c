"""The metrics: their names and labels, docs/metrics.md against the definitions, the
per-process counts flushed and merged in Redis, and what a scrape renders."""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import fakeredis
import pytest
import redis
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from app.adapters import metrics
from app.adapters.heartbeats import Heartbeat
from app.adapters.metrics import Counter, Histogram, MetricsFlusher, Recorder, count_on_commit, field_of, read_totals
from app.adapters.stage_queue import StageQueue
from app.domain.metrics import BY_NAME, COUNTER, DEFINITIONS, GAUGE, HISTOGRAM, PROCESS, SCRAPE
from app.services.metrics import metrics_registry, render
from app.settings import Settings
from app.web import metrics as web_metrics

ROOT = Path(__file__).resolve().parents[2]
PREFIX = "t:"
HASH = f"{PREFIX}metrics"

EXPECTED = {
    "smsagg_submits_total": ("api", "result_code"),
    "smsagg_accepted_total": ("priority",),
    "smsagg_submit_sm_total": ("carrier", "command_status"),
    "smsagg_carrier_throttle_waits_total": ("carrier",),
    "smsagg_receipts_total": ("carrier", "outcome"),
    "smsagg_callbacks_total": ("outcome",),
    "smsagg_callback_duration_seconds": ("outcome",),
    "smsagg_retries_total": ("stage",),
    "smsagg_dead_letters_total": ("stage",),
    "smsagg_stage_backlog": ("stage",),
    "smsagg_stage_oldest_age_seconds": ("stage",),
    "smsagg_stage_delayed": ("stage",),
    "smsagg_stage_dead_letters": ("stage",),
    "smsagg_smpp_binds_up": ("carrier",),
    "smsagg_smpp_binds_configured": ("carrier",),
    "smsagg_parts": ("part",),
    "smsagg_schedule_backlog": (),
    "smsagg_schedule_overdue_seconds": (),
}
"""Dashboards and alert rules depend on these: a change here is a breaking change."""


# --- names and labels --------------------------------------------------------------------


def test_the_names_and_labels_are_the_published_ones():
    assert {d.name: d.labels for d in DEFINITIONS} == EXPECTED


@pytest.mark.parametrize("metric", DEFINITIONS, ids=lambda d: d.name)
def test_each_metric_follows_prometheus_naming(metric):
    assert re.fullmatch(r"smsagg_[a-z][a-z0-9_]*", metric.name)
    assert all(re.fullmatch(r"[a-z][a-z0-9_]*", label) and label != "le" for label in metric.labels)
    assert metric.help and metric.kind in (COUNTER, GAUGE, HISTOGRAM)
    assert metric.name.endswith("_total") == (metric.kind == COUNTER)
    assert (metric.source == PROCESS) == (metric.kind != GAUGE) and metric.source in (PROCESS, SCRAPE)
    assert bool(metric.buckets) == (metric.kind == HISTOGRAM)
    if metric.kind == HISTOGRAM:
        assert metric.name.endswith("_seconds") and list(metric.buckets) == sorted(set(metric.buckets))


def _documented() -> dict[str, tuple[str, tuple[str, ...], str]]:
    rows = {}
    for line in (ROOT / "docs" / "metrics.md").read_text().splitlines():
        match = re.fullmatch(r"\| `(smsagg_\w+)` \| (\w+) \| ([^|]*) \| (.*) \|", line)
        if match:
            name, kind, labels, meaning = match.groups()
            rows[name] = (kind, tuple(l.strip() for l in labels.split(",") if l.strip() not in ("", "—")), meaning)
    return rows


def test_the_documentation_lists_exactly_the_defined_metrics():
    assert _documented() == {d.name: (d.kind, d.labels, d.help) for d in DEFINITIONS}


def test_every_metric_the_deploy_files_use_is_defined():
    used = set()
    for path in [ROOT / "deploy/prometheus/alerts.yml", ROOT / "deploy/grafana/smsagg-dashboard.json"]:
        used |= set(re.findall(r"smsagg_[a-z0-9_]+", path.read_text()))
    known = set(BY_NAME) | {f"{name}_{suffix}" for name in BY_NAME for suffix in ("bucket", "sum", "count")}
    assert used and used <= known, used - known


def test_the_dashboard_is_json_with_panels():
    dashboard = json.loads((ROOT / "deploy/grafana/smsagg-dashboard.json").read_text())
    targets = [t["expr"] for panel in dashboard["panels"] for t in panel.get("targets", [])]
    assert dashboard["title"] and len(targets) >= 10


# --- counting ----------------------------------------------------------------------------


def test_a_counter_refuses_the_wrong_number_of_labels():
    counter = Counter("smsagg_submits_total", Recorder())
    with pytest.raises(ValueError):
        counter.inc("genesys")
    with pytest.raises(ValueError):
        Counter("smsagg_stage_backlog")  # a gauge: computed at scrape time, not counted


def test_a_histogram_puts_each_value_in_its_own_bucket_and_adds_the_sum():
    recorder = Recorder()
    histogram = Histogram("smsagg_callback_duration_seconds", recorder)
    for value in (0.05, 0.07, 3, 99):
        histogram.observe("delivered", value=value)
    deltas = recorder.take()
    name, labels = "smsagg_callback_duration_seconds", ("delivered",)
    assert deltas == {(name, labels, "0.05"): 1, (name, labels, "0.1"): 1, (name, labels, "5.0"): 1,
                      (name, labels, "+Inf"): 1, (name, labels, "sum"): pytest.approx(102.12)}


def test_two_processes_flushes_add_up_in_one_hash():
    client = fakeredis.FakeRedis()
    first, second = Recorder(), Recorder()
    Counter("smsagg_accepted_total", first).inc("bulk", amount=3)
    Counter("smsagg_accepted_total", second).inc("bulk")
    Counter("smsagg_accepted_total", second).inc("interactive")
    assert first.flush(client, HASH) == 1 and second.flush(client, HASH) == 2
    assert second.flush(client, HASH) == 0  # nothing new: no round trip
    Counter("smsagg_accepted_total", first).inc("bulk")
    first.flush(client, HASH)
    assert dict(read_totals(client, HASH)) == {("smsagg_accepted_total", ("bulk",), ""): 5.0,
                                               ("smsagg_accepted_total", ("interactive",), ""): 1.0}


def test_a_failed_flush_keeps_its_counts_for_the_next():
    recorder = Recorder()
    Counter("smsagg_retries_total", recorder).inc("mt.bulk", amount=2)
    down = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    with pytest.raises(redis.ConnectionError):
        recorder.flush(down, HASH)
    Counter("smsagg_retries_total", recorder).inc("mt.bulk")
    client = fakeredis.FakeRedis()
    recorder.flush(client, HASH)
    assert dict(read_totals(client, HASH)) == {("smsagg_retries_total", ("mt.bulk",), ""): 3.0}


def test_the_flusher_flushes_on_its_thread_and_when_stopped():
    client, recorder = fakeredis.FakeRedis(), Recorder()
    counter = Counter("smsagg_dead_letters_total", recorder)
    flusher = MetricsFlusher(client, HASH, interval=0.05, recorder=recorder)
    flusher.start()
    counter.inc("inbound")
    deadline = time.monotonic() + 5
    while not client.hget(HASH, field_of(("smsagg_dead_letters_total", ("inbound",), ""))):
        assert time.monotonic() < deadline
        time.sleep(0.01)
    counter.inc("inbound")
    flusher.stop()
    assert dict(read_totals(client, HASH)) == {("smsagg_dead_letters_total", ("inbound",), ""): 2.0}


def test_a_flusher_with_redis_away_logs_and_keeps_the_counts(caplog):
    recorder = Recorder()
    Counter("smsagg_retries_total", recorder).inc("callbacks")
    flusher = MetricsFlusher(redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), HASH,
                             recorder=recorder)
    assert flusher.flush() == 0 and flusher.flush() == 0
    assert sum("metrics not flushed" in r.message for r in caplog.records) == 1  # once per outage
    assert recorder.take() == {("smsagg_retries_total", ("callbacks",), ""): 1.0}


def test_counts_made_in_a_unit_of_work_wait_for_its_commit():
    recorder = Recorder()
    counter = Counter("smsagg_receipts_total", recorder)
    engine = create_engine("sqlite://")
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        count_on_commit(session, counter, "7", "matched", amount=2)
        session.rollback()
        count_on_commit(session, counter, "7", "held")
        assert recorder.take() == {}
        session.commit()
    assert recorder.take() == {("smsagg_receipts_total", ("7", "held"), ""): 1.0}


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_counting_from_nothing():
    metrics.ACCEPTED.inc("bulk_low")
    pid = os.fork()
    if pid == 0:  # the child: the parent's counts are not its own
        os._exit(0 if metrics.RECORDER.take() == {} else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert metrics.RECORDER.take().get(("smsagg_accepted_total", ("bulk_low",), ""), 0) >= 1


def test_fields_a_later_version_wrote_are_skipped():
    client = fakeredis.FakeRedis()
    client.hset(HASH, mapping={"not json": 1, field_of(("smsagg_retries_total", ("a", "b"), "")): 4,
                               field_of(("smsagg_gone_total", ("x",), "")): 2,
                               field_of(("smsagg_retries_total", ("mt.bulk",), "")): 3})
    families = _scrape(client)
    assert _samples(families, "smsagg_retries_total") == {(("stage", "mt.bulk"),): 3.0}


# --- the scrape --------------------------------------------------------------------------


def _scrape(client) -> dict:
    text = render(metrics_registry(client, PREFIX)).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def _samples(families: dict, name: str, sample_name: str | None = None) -> dict:
    family = families[name.removesuffix("_total")]
    return {tuple(sorted(s.labels.items())): s.value for s in family.samples if s.name == (sample_name or name)}


def test_every_defined_metric_is_rendered_with_its_help_even_before_anything_counted():
    families = _scrape(fakeredis.FakeRedis())
    for metric in DEFINITIONS:
        family = families[metric.name.removesuffix("_total")]
        assert family.type == metric.kind and family.documentation == metric.help


def test_counters_and_histograms_render_the_merged_totals():
    client, recorder = fakeredis.FakeRedis(), Recorder()
    Counter("smsagg_submit_sm_total", recorder).inc("7", "0x00000000", amount=2)
    histogram = Histogram("smsagg_callback_duration_seconds", recorder)
    for value in (0.02, 0.3, 20):
        histogram.observe("retry", value=value)
    recorder.flush(client, HASH)
    families = _scrape(client)
    assert _samples(families, "smsagg_submit_sm_total") == {(("carrier", "7"), ("command_status", "0x00000000")): 2}
    buckets = {dict(labels)["le"]: value for labels, value in
               _samples(families, "smsagg_callback_duration_seconds", "smsagg_callback_duration_seconds_bucket").items()}
    assert (buckets["0.05"], buckets["0.25"], buckets["0.5"], buckets["15.0"], buckets["30.0"], buckets["+Inf"]) == \
        (1, 1, 2, 2, 3, 3)
    assert _samples(families, "smsagg_callback_duration_seconds", "smsagg_callback_duration_seconds_count") == \
        {(("outcome", "retry"),): 3}


def test_the_gauges_show_backlogs_their_age_binds_parts_and_the_schedule():
    client = fakeredis.FakeRedis()
    stages = StageQueue(client, PREFIX)
    now = time.time()
    stages.push("mt.bulk", [{"id": "a", "accepted_at": now - 42}, {"id": "b", "accepted_at": now - 1}])
    stages.later("mt.bulk", ['{"retry":"c"}'], 60)
    stages.set_aside("inbound", '{"source":"smpp"}', ValueError("bad PDU"))
    Heartbeat(client, PREFIX, "worker", queues=("mt.bulk",), binds=lambda: {7: (1, 2)}).beat()
    Heartbeat(client, PREFIX, "ingress").beat()
    client.zadd(f"{PREFIX}schedule", {"soon": now + 3600, "late": now - 90})
    families = _scrape(client)
    backlog = _samples(families, "smsagg_stage_backlog")
    assert backlog[(("stage", "mt.bulk"),)] == 4  # two payloads, the drain task message and the delayed one's
    assert 41 <= _samples(families, "smsagg_stage_oldest_age_seconds")[(("stage", "mt.bulk"),)] <= 50
    assert _samples(families, "smsagg_stage_oldest_age_seconds")[(("stage", "mt.interactive"),)] == 0
    assert _samples(families, "smsagg_stage_delayed")[(("stage", "mt.bulk"),)] == 1
    assert _samples(families, "smsagg_stage_dead_letters")[(("stage", "inbound"),)] == 1
    assert _samples(families, "smsagg_smpp_binds_up") == {(("carrier", "7"),): 1}
    assert _samples(families, "smsagg_smpp_binds_configured") == {(("carrier", "7"),): 2}
    assert _samples(families, "smsagg_parts") == {(("part", "beat"),): 0, (("part", "ingress"),): 1,
                                                  (("part", "worker"),): 1}
    assert _samples(families, "smsagg_schedule_backlog") == {(): 2}
    assert 89 <= _samples(families, "smsagg_schedule_overdue_seconds")[()] <= 100


# --- who may scrape ----------------------------------------------------------------------


def _app(token: str | None = None):
    app = Flask(__name__)
    client = fakeredis.FakeRedis()
    app.extensions["smsagg"] = {"settings": Settings(key_prefix=PREFIX, metrics_token=token,
                                                     metrics_flush_seconds=60)}
    web_metrics.install(app, client, app.extensions["smsagg"]["settings"])
    return app.test_client()


@pytest.mark.parametrize("address", ["127.0.0.1", "127.3.2.1", "::1", "::ffff:127.0.0.1"])
def test_without_a_token_loopback_clients_may_scrape(address):
    response = _app().get("/metrics", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 200 and b"# TYPE smsagg_submits_total counter" in response.data
    assert response.headers["Content-Type"].startswith("text/plain; version=")


@pytest.mark.parametrize("address", ["10.0.0.5", "192.0.2.7", "::ffff:10.0.0.5", "2001:db8::1", ""])
def test_without_a_token_other_clients_are_refused(address):
    response = _app().get("/metrics", environ_base={"REMOTE_ADDR": address})
    assert response.status_code == 403 and response.get_json()["error"] == "forbidden"


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", "Basic czNjcmV0", "Bearer", "s3cret"])
def test_with_a_token_anything_but_the_token_is_refused_even_from_loopback(authorization):
    headers = {"Authorization": authorization} if authorization else {}
    response = _app("s3cret").get("/metrics", headers=headers, environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 401 and response.headers["WWW-Authenticate"].startswith("Bearer")


def test_with_a_token_the_token_is_accepted_from_anywhere():
    response = _app("s3cret").get("/metrics", headers={"Authorization": "Bearer s3cret"},
                                  environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert response.status_code == 200 and b"smsagg_stage_backlog" in response.data


def test_redis_away_answers_503():
    app = Flask(__name__)
    settings = Settings(key_prefix=PREFIX, metrics_flush_seconds=60)
    app.extensions["smsagg"] = {"settings": settings}
    web_metrics.install(app, redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2), settings)
    response = app.test_client().get("/metrics", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    assert response.status_code == 503


@pytest.mark.parametrize("environ, message", [
    ({"SMSAGG_METRICS_FLUSH_SECONDS": "0"}, "more than 0"),
    ({"SMSAGG_METRICS_FLUSH_SECONDS": "soon"}, "not a float"),
])
def test_a_bad_flush_interval_is_refused(environ, message):
    from app.settings import SettingsError

    with pytest.raises(SettingsError, match=message):
        Settings.from_env(environ)


def test_the_settings_read_the_token_and_the_interval():
    settings = Settings.from_env({"SMSAGG_METRICS_TOKEN": "t0k", "SMSAGG_METRICS_FLUSH_SECONDS": "0.5"})
    assert (settings.metrics_token, settings.metrics_flush_seconds) == ("t0k", 0.5)
    assert (Settings.from_env({}).metrics_token, Settings.from_env({}).metrics_flush_seconds) == (None, 5.0)
