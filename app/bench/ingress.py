"""``smsagg bench ingress``: accepted submits/s of ``/httpapi/receiver`` against the
same server's bare baseline, measured in one run.

The server is the ingress under gunicorn (gthread, 2 processes; ``smsagg bench web``,
the product's app plus the baseline) with a real Redis; the baseline is
``/_bench/baseline`` on that same server, a request that does one Redis
``LPUSH`` and nothing else. Rounds alternate baseline / full so that noise on this
shared machine hits both alike; the figure of each is its best round. Every full
submit must answer ``result_code=0`` (a unique ``message_id`` each), or the run fails.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from urllib.parse import urlencode

from app.bench.harness import BENCH_LOGIN, BENCH_PASSWORD, BENCH_SENDER, BenchGateway, free_port, wait_for_port
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


def _measure(url: str, make_request, seconds: float, concurrency: int) -> LoadResult:
    return run_load(url, make_request, concurrency=concurrency, seconds=seconds, warmup=1.0)


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gateway:
        port = free_port()
        gateway.start("bench", "web", "--port", str(port), "--workers", "2", "--threads", "8")
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        run_load(url, SubmitRequests("warm"), concurrency=4, seconds=1.0, warmup=0.0)  # credential caches
        baselines, fulls = [], []
        for round_number in range(ROUNDS):
            baselines.append(_measure(url, baseline_request, seconds, concurrency))
            fulls.append(_measure(url, SubmitRequests(f"r{round_number}"), seconds, concurrency))
            echo(f"round {round_number + 1}: baseline {baselines[-1].requests_per_second:,.0f} req/s, "
                 f"full {fulls[-1].requests_per_second:,.0f} req/s")
    baseline = max(baselines, key=lambda r: r.requests_per_second)
    full = max(fulls, key=lambda r: r.requests_per_second)
    _check_all_queued(fulls)
    ratio = full.requests_per_second / baseline.requests_per_second
    echo("baseline (one LPUSH):\n" + format_result(baseline))
    echo("full submit:\n" + format_result(full))
    echo(f"full / baseline = {ratio:.2f}")
    return {
        "benchmark": "ingress",
        "full_submits_per_second": round(full.requests_per_second, 1),
        "baseline_requests_per_second": round(baseline.requests_per_second, 1),
        "ratio": round(ratio, 3),
        "full_latency_ms": dataclasses.asdict(full.latency_ms),
        "loadgen_cpu_percent": round(full.cpu_percent, 1),
        "concurrency": concurrency,
        "seconds_per_round": seconds,
        "rounds": ROUNDS,
    }


def _check_all_queued(results: list[LoadResult]) -> None:
    for result in results:
        bad = {body: n for body, n in result.body_counts.items() if body != "result_code=0"}
        if bad or result.other_bodies or result.errors:
            raise RuntimeError(f"not every submit was queued: {bad} other={result.other_bodies} errors={result.errors}")
