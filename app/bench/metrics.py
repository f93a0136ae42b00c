"""``smsagg bench metrics``: what the metrics hooks cost a submit, against the same
submit without them, measured in one run.

The ingress app runs in this process (Flask's test client: no HTTP server, no load
generator, so the hooks are a larger share of what is measured than behind gunicorn)
on a throwaway gateway (:class:`app.bench.harness.BenchGateway`: an embedded Redis,
SQLite). Short rounds alternate many times, so that the load of a shared machine,
which drifts over seconds, hits both alike: submits *without hooks* (the app's submit
counting and flusher start detached, the accepted counter counting into nothing: a
function call remains) and submits *with hooks* (the app as shipped); each figure is
the median of its rounds. Every submit must answer ``result_code=0``. Then each hook
alone, timed over many calls (the precise figure: a difference of a few microseconds
in a submit of hundreds is within the noise of the rounds), and one flush to Redis.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from flask import Flask, Response

from app.adapters import metrics
from app.adapters.metrics import Recorder
from app.bench.harness import BENCH_LOGIN, BENCH_PASSWORD, BENCH_SENDER, BenchGateway
from app.settings import Settings
from app.web import create_app
from app.web import metrics as web_metrics

MICRO_CALLS = 100_000


class _Nowhere(Recorder):
    def add(self, key, amount) -> None:
        pass


@contextmanager
def hooks_detached(app: Flask) -> Iterator[None]:
    """The app without its metrics hooks while the block runs."""
    before = app.before_request_funcs[None]
    after = app.after_request_funcs["httpapi"]
    app.before_request_funcs[None] = [f for f in before if f.__name__ != "_start_flushing"]
    app.after_request_funcs["httpapi"] = [f for f in after if f is not web_metrics._count_submit]
    counting_into = metrics.ACCEPTED.recorder
    metrics.ACCEPTED.recorder = _Nowhere()
    try:
        yield
    finally:
        app.before_request_funcs[None], app.after_request_funcs["httpapi"] = before, after
        metrics.ACCEPTED.recorder = counting_into


def _submits(client, tag: str, count: int) -> float:
    """Microseconds per submit over ``count`` submits."""
    form = {"login": BENCH_LOGIN, "password": BENCH_PASSWORD, "phone_number": "12025550100", "sender": BENCH_SENDER,
            "message": "Benchmark message, 42 characters long!!", "carrier": "1"}
    started = time.perf_counter()
    for index in range(count):
        reply = client.post("/httpapi/receiver", data={**form, "message_id": f"{tag}-{index}"})
        if reply.data != b"result_code=0":
            raise RuntimeError(f"submit answered {reply.data!r}, not result_code=0")
    return (time.perf_counter() - started) / count * 1e6


def _per_call_ns(call: Callable[[], object], calls: int = MICRO_CALLS) -> float:
    started = time.perf_counter()
    for _ in range(calls):
        call()
    return (time.perf_counter() - started) / calls * 1e9


def _hook_costs(app: Flask) -> dict[str, float]:
    """Nanoseconds per call of each hook, counting into a recorder of its own."""
    recorder = Recorder()
    submits = metrics.Counter("smsagg_submits_total", recorder)
    accepted = metrics.Counter("smsagg_accepted_total", recorder)
    callbacks = metrics.Counter("smsagg_callbacks_total", recorder)
    seconds = metrics.Histogram("smsagg_callback_duration_seconds", recorder)
    response = Response("result_code=0", mimetype="text/plain")
    flusher = app.extensions["smsagg"]["metrics_flusher"]
    counted, web_metrics.SUBMITS = web_metrics.SUBMITS, submits
    try:
        with app.test_request_context("/httpapi/receiver", method="POST"):
            count_submit = _per_call_ns(lambda: web_metrics._count_submit(response))
    finally:
        web_metrics.SUBMITS = counted
    return {
        "counter_inc_ns": round(_per_call_ns(lambda: accepted.inc("interactive")), 1),
        "histogram_observe_ns": round(_per_call_ns(lambda: seconds.observe("delivered", value=0.12)), 1),
        "submit_counting_after_request_ns": round(count_submit, 1),
        "flusher_started_check_ns": round(_per_call_ns(lambda: flusher.started), 1),
        "callback_counted_ns": round(_per_call_ns(lambda: (callbacks.inc("delivered"),
                                                           seconds.observe("delivered", value=0.12))), 1),
    }


def _flush_ms(gateway: BenchGateway, app: Flask) -> tuple[int, float]:
    """One flush of a recorder holding every submit code and callback bucket (a busy
    interval's worth of distinct fields): fields, milliseconds."""
    recorder = Recorder()
    submits = metrics.Counter("smsagg_submits_total", recorder)
    seconds = metrics.Histogram("smsagg_callback_duration_seconds", recorder)
    for code in range(40):
        submits.inc("genesys", str(code))
    for value in (0.01, 0.07, 0.2, 0.4, 0.9, 2, 4, 8, 12, 20, 40):
        seconds.observe("delivered", value=value)
    client = app.extensions["smsagg"]["store"].client
    started = time.perf_counter()
    fields = recorder.flush(client, f"{gateway.key_prefix}bench:metrics")
    return fields, (time.perf_counter() - started) * 1000


def run(submits: int, rounds: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gateway:
        settings = Settings.from_env(gateway.environment())
        app = create_app(settings)
        client = app.test_client()
        _submits(client, "warm", 50)  # the credential cache, the directory
        without, with_ = [], []
        for round_number in range(rounds):
            with hooks_detached(app):
                without.append(_submits(client, f"off{round_number}", submits))
            with_.append(_submits(client, f"on{round_number}", submits))
            if round_number % 5 == 4 or round_number == rounds - 1:
                echo(f"round {round_number + 1}: without hooks {without[-1]:.1f} us/submit, "
                     f"with hooks {with_[-1]:.1f} us/submit")
        hooks = _hook_costs(app)
        fields, flush_ms = _flush_ms(gateway, app)
        app.extensions["smsagg"]["metrics_flusher"].stop()  # before its Redis goes
    best_without, best_with = statistics.median(without), statistics.median(with_)
    ratio = best_with / best_without
    echo(f"without hooks (median of {rounds} rounds): {best_without:.1f} us/submit")
    echo(f"with hooks (median of {rounds} rounds):    {best_with:.1f} us/submit")
    echo(f"with / without = {ratio:.3f}")
    ingress_ns = hooks["submit_counting_after_request_ns"] + hooks["counter_inc_ns"] + hooks["flusher_started_check_ns"]
    echo("hooks alone: " + ", ".join(f"{name} {value:.0f}" for name, value in hooks.items()))
    echo(f"an ingress submit's hooks: {ingress_ns:.0f} ns = {ingress_ns / 10 / best_without:.2f}% of a submit")
    echo(f"one flush of {fields} fields to Redis: {flush_ms:.2f} ms (every SMSAGG_METRICS_FLUSH_SECONDS per process)")
    return {
        "benchmark": "metrics",
        "without_hooks_median_us_per_submit": round(best_without, 1),
        "with_hooks_median_us_per_submit": round(best_with, 1),
        "ratio": round(ratio, 4),
        "rounds_without_us": [round(v, 1) for v in without],
        "rounds_with_us": [round(v, 1) for v in with_],
        "ingress_hooks_ns_per_submit": round(ingress_ns, 1),
        **hooks,
        "flush_fields": fields,
        "flush_ms": round(flush_ms, 3),
        "submits_per_round": submits,
        "rounds": rounds,
    }
