"""``GET /metrics`` against the real gateway: a message submitted to
``/httpapi/receiver`` with ``receipt=TRUE`` is seen counted at every stage, by a real
worker process (SMPP to the simulator, the receipt, the callbacks to a real HTTP
receiver) whose counts reach the ingress's scrape through Redis; each API's submits are
counted by the code the client got; who may scrape."""

from __future__ import annotations

import multiprocessing

import redis
from prometheus_client.parser import text_string_to_metric_families

from app.adapters import metrics
from app.adapters.redis_scripts import RedisKeys
from app.api import keys
from app.db.session import session_scope
from app.web import create_app
from tests.integration.bulk.conftest import params as bulk_params
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_end_to_end import ALL, configure
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready

FLUSH_SECONDS = "0.2"


def _app(settings, **overrides):
    """The ingress, with this test's counts alone in this process (stray counts of
    earlier tests in the same process dropped once the flusher is aimed at this test)."""
    app = create_app(settings.with_overrides(metrics_flush_seconds=float(FLUSH_SECONDS), **overrides))
    metrics.RECORDER.take()
    return app


def scrape(client, **kwargs) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) -> value, from one scrape."""
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.data
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(response.get_data(as_text=True))
            for sample in family.samples}


def total(samples: dict, name: str, **labels) -> float:
    """The sum of ``name``'s samples whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(value for (sample, sample_labels), value in samples.items()
               if sample == name and wanted <= set(sample_labels))


def test_a_submitted_message_is_counted_at_every_stage(gateway, tmp_path, monkeypatch):
    monkeypatch.setenv("SMSAGG_METRICS_FLUSH_SECONDS", FLUSH_SECONDS)  # the worker's
    app = _app(gateway)
    client = app.test_client()
    log = tmp_path / "worker.log"
    with Receiver() as receiver, running_simulator(dr_delay=0.2) as smsc, \
            running(["worker", "--queues", ALL, "--pool", "threads", "--concurrency", "4"], gateway, log,
                    ready=worker_ready(log)):
        configure(gateway, smsc.port, receiver)
        assert submit(client, "POST", params(message_id="metrics-1", receipt="TRUE")) == 0

        def every_stage_counted():
            samples = scrape(client)
            return samples if (
                total(samples, "smsagg_callbacks_total", outcome="delivered") >= 2
                and total(samples, "smsagg_smpp_binds_up", carrier="99901") >= 1) else None

        samples = wait_until(every_stage_counted, timeout=60, interval=0.2)
        [delivered] = [p.form for p in receiver.received("/dr") if p.form["message_state"] == "2"]

    assert total(samples, "smsagg_submits_total", api="genesys", result_code="0") == 1
    assert total(samples, "smsagg_accepted_total") == 1
    assert total(samples, "smsagg_submit_sm_total", carrier="99901", command_status="0x00000000") == 1
    assert total(samples, "smsagg_submit_sm_total") == 1
    assert total(samples, "smsagg_receipts_total", carrier="99901", outcome="matched") == 1
    assert total(samples, "smsagg_callbacks_total") == 2  # state 6 (accepted by the SMSC), then 2 (delivered)
    assert total(samples, "smsagg_callback_duration_seconds_count", outcome="delivered") == 2
    assert 0 < total(samples, "smsagg_callback_duration_seconds_sum", outcome="delivered") < 30
    assert total(samples, "smsagg_callback_duration_seconds_bucket", outcome="delivered", le="+Inf") == 2
    assert total(samples, "smsagg_smpp_binds_configured", carrier="99901") >= 1
    assert total(samples, "smsagg_parts", part="worker") >= 1
    assert total(samples, "smsagg_dead_letters_total") == 0 and total(samples, "smsagg_retries_total") == 0
    assert delivered["message_id"] == "metrics-1"


def test_each_api_counts_its_submits_by_the_code_the_client_got(gateway):
    app = _app(gateway)
    client = app.test_client()
    assert submit(client, "POST", params(message_id="c-1")) == 0
    assert submit(client, "POST", params(message_id="c-1")) == 7  # the same id again: duplicate
    assert submit(client, "POST", params(password="wrong")) == 2
    assert submit(client, "POST", params(phone_number="not-a-number")) == 1
    bulk = client.post("/bulksms/bulksms", data=bulk_params(destination="12025550100,12025550101,abc"))
    assert bulk.get_data(as_text=True).count("1701|") == 2
    with session_scope(gateway.database_url) as session:
        token = keys.create_key(session, "acme", None).token
    rest = client.post("/api/v1/messages", json={"phone_numbers": ["12025550102"], "sender": "99222",
                                                 "message": "Hello", "message_id": "r-9"},
                       headers={"Authorization": f"Bearer {token}"})
    assert rest.status_code == 202
    assert client.post("/api/v1/messages", json={}, headers={"Authorization": "Bearer nope"}).status_code == 401
    app.extensions["smsagg"]["metrics_flusher"].flush()

    samples = scrape(client)
    submits = {dict(labels)["api"] + " " + dict(labels)["result_code"]: value
               for (name, labels), value in samples.items() if name == "smsagg_submits_total"}
    bulk_refused = [code for code in submits if code.startswith("bulk ") and code != "bulk 1701"]
    assert submits == {"genesys 0": 1, "genesys 7": 1, "genesys 2": 1, "genesys 1": 1, "bulk 1701": 2,
                       **{code: 1 for code in bulk_refused}, "rest 202": 1, "rest 401": 1}
    assert len(bulk_refused) == 1  # the destination "abc"
    assert total(samples, "smsagg_accepted_total") == 4  # genesys 1, bulk 2, rest 1


def test_the_token_is_required_when_set(gateway):
    client = _app(gateway, metrics_token="tok-3n").test_client()
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer other"}).status_code == 401
    assert total(scrape(client, headers={"Authorization": "Bearer tok-3n"}), "smsagg_parts", part="ingress") >= 0


def test_without_a_token_only_loopback_may_scrape_even_behind_a_trusted_proxy(gateway):
    from app.domain.forwarded import parse_networks

    client = _app(gateway, trusted_proxies=parse_networks("127.0.0.1/32")).test_client()
    scrape(client)  # from loopback itself
    assert client.get("/metrics", environ_base={"REMOTE_ADDR": "198.51.100.4"}).status_code == 403
    forwarded = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.50"})  # through a proxy on loopback
    assert forwarded.status_code == 403


def _count_one_submit_and_exit(redis_url: str, hash_key: str) -> None:
    """In a multiprocessing child, as a granian ingress worker: it ends in os._exit."""
    flusher = metrics.MetricsFlusher(redis.Redis.from_url(redis_url), hash_key, interval=3600)
    flusher.start()
    metrics.SUBMITS.inc("genesys", "0")


def test_a_multiprocessing_child_flushes_its_counts_when_it_exits(gateway, redis_client):
    """granian's workers skip atexit; the counts of the last flush interval still reach Redis."""
    hash_key = RedisKeys(gateway.key_prefix).metrics()
    child = multiprocessing.get_context("fork").Process(target=_count_one_submit_and_exit,
                                                        args=(gateway.redis_url, hash_key))
    child.start()
    child.join(30)
    assert child.exitcode == 0
    assert any(b"smsagg_submits_total" in field for field in redis_client.hkeys(hash_key))
