"""``smsagg bench rest``: the REST API's single-destination ``POST /api/v1/messages``
against ``/httpapi/receiver`` (the same admission) and the bare baseline, on one server
in one run.

The server is ``smsagg bench web`` (the ingress under its default server, granian, 2
processes, plus the baseline) with a real Redis, as in
``smsagg bench ingress``. Rounds alternate baseline (one ``LPUSH``) / MT API submit /
REST POST, so noise on this shared machine hits all three alike; each figure is its
best round. Besides the rate, the server's own CPU time per request is measured (the
server's process group's user+system time over the round, from ``/proc``), which is
the figure that says what the JSON parse, validation and API key cost on top of the
form parse and the login check. Every MT submit must answer ``result_code=0`` and every
REST POST ``202`` (a unique message_id each), or the run fails.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from dataclasses import dataclass

from app.api import keys
from app.bench.harness import BENCH_LOGIN, BENCH_SENDER, BenchGateway, free_port, group_cpu_seconds, wait_for_port
from app.bench.ingress import SubmitRequests, baseline_request
from app.bench.loadgen import LoadResult, RequestSpec, format_result, run_load
from app.db.session import session_scope

ROUNDS = 2


class RestRequests:
    """Valid single-destination REST sends, each with its own message_id (picklable)."""

    def __init__(self, tag: str, token: str):
        self.headers = f"Authorization: Bearer {token}\r\n"
        self.prefix = json.dumps({
            "phone_numbers": ["12025550100"], "sender": BENCH_SENDER,
            "message": "Benchmark message, 42 characters long!!", "carrier": 1,
        })[:-1].encode() + f', "message_id": "{tag}-'.encode()

    def __call__(self, index: int) -> RequestSpec:
        return RequestSpec("POST", "/api/v1/messages", self.prefix + str(index).encode() + b'"}',
                           content_type="application/json", headers=self.headers)


@dataclass(frozen=True)
class Round:
    load: LoadResult
    server_cpu_ms_per_request: float


def _measure(url: str, make_request: Callable, seconds: float, concurrency: int, group: int) -> Round:
    before = group_cpu_seconds(group)
    load = run_load(url, make_request, concurrency=concurrency, seconds=seconds, warmup=1.0)
    spent = group_cpu_seconds(group) - before
    total = load.requests + load.warmup_requests
    return Round(load, 1000 * spent / total if total else 0.0)


def _check(rounds: list[Round], expected_status: int, expected_body: str | None) -> None:
    for measured in rounds:
        load = measured.load
        wrong = {status: n for status, n in load.status_counts.items() if status != expected_status}
        bad_bodies = {} if expected_body is None else {b: n for b, n in load.body_counts.items() if b != expected_body}
        if wrong or bad_bodies or load.errors or (expected_body is not None and load.other_bodies):
            raise RuntimeError(f"not every request was accepted: statuses {wrong} bodies {bad_bodies} "
                               f"errors {load.errors}")


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gateway:
        with session_scope(gateway.database_url) as session:
            token = keys.create_key(session, BENCH_LOGIN, "bench").token
        port = free_port()
        server = gateway.start("bench", "web", "--port", str(port))
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        run_load(url, SubmitRequests("warm"), concurrency=4, seconds=1.0, warmup=0.0)
        run_load(url, RestRequests("rest-warm", token), concurrency=4, seconds=1.0, warmup=0.0)
        baselines, submits, posts = [], [], []
        for number in range(ROUNDS):
            baselines.append(_measure(url, baseline_request, seconds, concurrency, server.pid))
            submits.append(_measure(url, SubmitRequests(f"r{number}"), seconds, concurrency, server.pid))
            posts.append(_measure(url, RestRequests(f"rest-r{number}", token), seconds, concurrency, server.pid))
            echo(f"round {number + 1}: baseline {baselines[-1].load.requests_per_second:,.0f} req/s, "
                 f"MT API {submits[-1].load.requests_per_second:,.0f}/s "
                 f"({submits[-1].server_cpu_ms_per_request:.3f} ms CPU), "
                 f"REST {posts[-1].load.requests_per_second:,.0f}/s ({posts[-1].server_cpu_ms_per_request:.3f} ms CPU)")
    _check(submits, 200, "result_code=0")
    _check(posts, 202, None)
    best = {name: max(rounds, key=lambda r: r.load.requests_per_second)
            for name, rounds in (("baseline", baselines), ("mt", submits), ("rest", posts))}
    cpu = {name: min(r.server_cpu_ms_per_request for r in rounds)
           for name, rounds in (("baseline", baselines), ("mt", submits), ("rest", posts))}
    rate_ratio = best["rest"].load.requests_per_second / best["mt"].load.requests_per_second
    cpu_ratio = cpu["rest"] / cpu["mt"] if cpu["mt"] else 0.0
    echo("baseline (one LPUSH):\n" + format_result(best["baseline"].load))
    echo("MT API submit (/httpapi/receiver):\n" + format_result(best["mt"].load))
    unique_bodies = dataclasses.replace(best["rest"].load, body_counts={}, other_bodies=0)  # one id each
    echo("REST POST /api/v1/messages:\n" + format_result(unique_bodies))
    echo(f"server CPU per request: baseline {cpu['baseline']:.3f} ms, MT API {cpu['mt']:.3f} ms, "
         f"REST {cpu['rest']:.3f} ms")
    echo(f"REST / MT API: rate {rate_ratio:.2f}, server CPU per request {cpu_ratio:.2f}")
    return {
        "benchmark": "rest",
        "rest_per_second": round(best["rest"].load.requests_per_second, 1),
        "mt_api_per_second": round(best["mt"].load.requests_per_second, 1),
        "baseline_per_second": round(best["baseline"].load.requests_per_second, 1),
        "server_cpu_ms_per_request": {name: round(value, 4) for name, value in cpu.items()},
        "rate_ratio_rest_to_mt": round(rate_ratio, 3),
        "cpu_ratio_rest_to_mt": round(cpu_ratio, 3),
        "concurrency": concurrency,
        "seconds_per_round": seconds,
        "rounds": ROUNDS,
    }
