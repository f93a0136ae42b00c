"""``smsagg bench ingress``: accepted submits/s of ``/httpapi/receiver`` against the
same server's bare baseline, under each HTTP server the ingress can run on, measured in
one run.

Each server is ``smsagg bench web`` (the product's app plus the baseline, 2 processes
with ``SMSAGG_WEB_THREADS`` threads each) with a real Redis, once under granian and once
under gunicorn (``SMSAGG_WEB_SERVER``), both up for the whole run; the baseline is
``/_bench/baseline`` on the same server, a request that does one Redis ``LPUSH`` and
nothing else. Rounds alternate baseline / full, server after server, so that noise on
this shared machine hits all alike; the figure of each is its best round. Besides the
rate, each server's own CPU time per request is measured (its process group's
user+system time over the round, from ``/proc``): the figure the choice of server
rests on (app/web/server.py). Every full submit must answer ``result_code=0`` (a
unique ``message_id`` each), or the run fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import urlencode

from app.bench.harness import (BENCH_LOGIN, BENCH_PASSWORD, BENCH_SENDER, BenchGateway, free_port, group_cpu_seconds,
                               wait_for_port)
from app.bench.loadgen import LoadResult, RequestSpec, format_result, run_load

ROUNDS = 2


class SubmitRequests:
    """Valid MT submits, each with its own message_id (picklable, cheap per call)."""

    def __init__(self, tag: str):
        self.prefix = urlencode({
            "login": BENCH_LOGIN, "password": BENCH_PASSWORD, "phone_number": "12025550100",
            "sender": BENCH_SENDER, "message": "Benchmark message, 42 characters long!!", "carrier": "1",
        }).encode() + f"&message_id={tag}-".encode()

    def __call__(self, index: int) -> RequestSpec:
        return RequestSpec("POST", "/httpapi/receiver", self.prefix + str(index).encode())


def baseline_request(_index: int) -> RequestSpec:
    return RequestSpec("POST", "/_bench/baseline", b"x=1")


SERVERS = ("granian", "gunicorn")


@dataclasses.dataclass(frozen=True)
class Round:
    load: LoadResult
    server_cpu_ms_per_request: float


def _measure(url: str, make_request, seconds: float, concurrency: int, group: int) -> Round:
    before = group_cpu_seconds(group)
    load = run_load(url, make_request, concurrency=concurrency, seconds=seconds, warmup=1.0)
    total = load.requests + load.warmup_requests
    return Round(load, 1000 * (group_cpu_seconds(group) - before) / total if total else 0.0)


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gateway:
        urls, groups = {}, {}
        for server in SERVERS:
            port = free_port()
            groups[server] = gateway.start("bench", "web", "--port", str(port), SMSAGG_WEB_SERVER=server).pid
            wait_for_port(port)
            urls[server] = f"http://127.0.0.1:{port}"
            run_load(urls[server], SubmitRequests(f"warm-{server}"), concurrency=4, seconds=1.0,
                     warmup=0.0)  # credential caches
        baselines: dict[str, list[Round]] = {server: [] for server in SERVERS}
        fulls: dict[str, list[Round]] = {server: [] for server in SERVERS}
        for round_number in range(ROUNDS):
            for server in SERVERS:
                baselines[server].append(_measure(urls[server], baseline_request, seconds, concurrency, groups[server]))
                fulls[server].append(_measure(urls[server], SubmitRequests(f"{server}-r{round_number}"), seconds,
                                              concurrency, groups[server]))
                echo(f"round {round_number + 1}, {server}: baseline "
                     f"{baselines[server][-1].load.requests_per_second:,.0f} req/s, full "
                     f"{fulls[server][-1].load.requests_per_second:,.0f} req/s "
                     f"({fulls[server][-1].server_cpu_ms_per_request:.3f} ms server CPU each)")
    figures = {}
    for server in SERVERS:
        _check_all_queued([measured.load for measured in fulls[server]])
        baseline = max(baselines[server], key=lambda r: r.load.requests_per_second)
        full = max(fulls[server], key=lambda r: r.load.requests_per_second)
        cpu = min(r.server_cpu_ms_per_request for r in fulls[server])
        ratio = full.load.requests_per_second / baseline.load.requests_per_second
        echo(f"{server}: baseline (one LPUSH):\n" + format_result(baseline.load))
        echo(f"{server}: full submit:\n" + format_result(full.load))
        echo(f"{server}: full / baseline = {ratio:.2f}; server CPU per full submit {cpu:.3f} ms")
        figures[server] = {
            "full_submits_per_second": round(full.load.requests_per_second, 1),
            "baseline_requests_per_second": round(baseline.load.requests_per_second, 1),
            "ratio": round(ratio, 3),
            "server_cpu_ms_per_submit": round(cpu, 4),
            "full_latency_ms": dataclasses.asdict(full.load.latency_ms),
            "loadgen_cpu_percent": round(full.load.cpu_percent, 1),
        }
    rate_ratio = figures["granian"]["full_submits_per_second"] / figures["gunicorn"]["full_submits_per_second"]
    cpu_ratio = figures["granian"]["server_cpu_ms_per_submit"] / figures["gunicorn"]["server_cpu_ms_per_submit"]
    echo(f"granian / gunicorn: full submits/s {rate_ratio:.2f}, server CPU per submit {cpu_ratio:.2f}")
    return {
        "benchmark": "ingress",
        **figures,
        "granian_to_gunicorn_rate": round(rate_ratio, 3),
        "granian_to_gunicorn_cpu": round(cpu_ratio, 3),
        "concurrency": concurrency,
        "seconds_per_round": seconds,
        "rounds": ROUNDS,
    }


def _check_all_queued(results: list[LoadResult]) -> None:
    for result in results:
        bad = {body: n for body, n in result.body_counts.items() if body != "result_code=0"}
        if bad or result.other_bodies or result.errors:
            raise RuntimeError(f"not every submit was queued: {bad} other={result.other_bodies} errors={result.errors}")
