"""``smsagg bench auth``: a legitimate client's accepted submits/s alone and while an
attacker sends wrong passwords, measured in one run (docs/security.md).

The server is the ingress as ``smsagg web`` runs it (its default server and threads, 2
processes) with a real Redis. The client submits valid MTs (a unique ``message_id`` each)
on ``concurrency`` kept-alive connections; the attacker, in a process of its own so it
takes no time from the client's load generator, sends ``rate`` submits per second of the
same login with random wrong passwords, paced over :data:`ATTACKER_CONNECTIONS`
connections (so a slow answer does not slow the attack down), from the same address as
the client: the hardest case, since the attacker locks that address out. Rounds alternate
alone / attacked so noise on this shared machine hits both alike; each figure is its best
round, and the ratio attacked / alone is the figure to hold at 0.90 or more.

With ``--spread`` the attacker comes from a new IPv6 /64 for every submit (the server
believes its ``X-Forwarded-For``: ``SMSAGG_TRUSTED_PROXIES=127.0.0.1/32``), as a botnet
would: no address limit is ever reached, and the login's limit is what stops it.

With ``--unguarded`` the same rounds run again on a second server whose limits are off
(``SMSAGG_AUTH_ADDRESS_FAILURES=0``, ``SMSAGG_AUTH_LOGIN_FAILURES=0``) and whose KDF is
unbounded (``SMSAGG_AUTH_KDF_CONCURRENCY=64``): what the same attack costs without them.
"""

from __future__ import annotations

import http.client
import multiprocessing
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode

from app.bench.harness import BENCH_LOGIN, BENCH_SENDER, BenchGateway, free_port, wait_for_port
from app.bench.ingress import SubmitRequests
from app.bench.loadgen import LoadResult, run_load

ROUNDS = 3
ATTACKER_CONNECTIONS = 8
QUEUED = "result_code=0"
UNGUARDED = {"SMSAGG_AUTH_ADDRESS_FAILURES": "0", "SMSAGG_AUTH_LOGIN_FAILURES": "0",
             "SMSAGG_AUTH_KDF_CONCURRENCY": "64"}


def _wrong_password_submit(index: int) -> str:
    return urlencode({"login": BENCH_LOGIN, "password": secrets.token_urlsafe(12), "phone_number": "12025550100",
                      "sender": BENCH_SENDER, "message": "guess", "message_id": f"attack-{index}"})


def _attack_connection(port: int, interval: float, offset: float, spread: bool, stop, answers: Counter,
                       lock) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    due, index = time.monotonic() + offset, 0
    while not stop.is_set():
        pause = due - time.monotonic()
        if pause > 0 and stop.wait(pause):
            break
        due += interval
        index += 1
        if spread:
            headers["X-Forwarded-For"] = f"2001:db8:{secrets.randbits(16):x}:{secrets.randbits(16):x}::1"
        try:
            connection.request("POST", "/httpapi/receiver", body=_wrong_password_submit(index), headers=headers)
            answer = connection.getresponse().read().decode()
        except (OSError, http.client.HTTPException) as error:
            connection.close()
            answer = type(error).__name__
        with lock:
            answers[answer] += 1
    connection.close()


def attack(port: int, rate: float, spread: bool, under_way, stop, results) -> None:
    """Wrong-password submits at ``rate`` per second until ``stop`` is set (a process);
    ``under_way`` is set once the first answer came back."""
    answers: Counter = Counter()
    lock = threading.Lock()
    interval = ATTACKER_CONNECTIONS / rate
    threads = [threading.Thread(target=_attack_connection,
                                args=(port, interval, n * interval / ATTACKER_CONNECTIONS, spread, stop, answers,
                                      lock))
               for n in range(ATTACKER_CONNECTIONS)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    while not stop.is_set() and not answers:
        time.sleep(0.05)
    under_way.set()
    for thread in threads:
        thread.join()
    results.put((dict(answers), time.monotonic() - started))


@dataclass(frozen=True)
class Round:
    load: LoadResult
    attacker_answers: dict[str, int]
    attacker_per_second: float

    @property
    def accepted_per_second(self) -> float:
        return self.load.body_counts.get(QUEUED, 0) / self.load.seconds if self.load.seconds else 0.0


def _measure(url: str, port: int, tag: str, seconds: float, concurrency: int, rate: float | None,
             spread: bool) -> Round:
    if rate is None:
        return Round(run_load(url, SubmitRequests(tag), concurrency=concurrency, seconds=seconds, warmup=1.0), {}, 0.0)
    context = multiprocessing.get_context("spawn")
    under_way, stop, results = context.Event(), context.Event(), context.Queue()
    attacker = context.Process(target=attack, args=(port, rate, spread, under_way, stop, results), daemon=True)
    attacker.start()
    try:
        if not under_way.wait(60):
            raise RuntimeError("the attacker got no answer within 60 s")
        load = run_load(url, SubmitRequests(tag), concurrency=concurrency, seconds=seconds, warmup=1.0)
    finally:
        stop.set()
    answers, elapsed = results.get(timeout=60)
    attacker.join(10)
    return Round(load, answers, sum(answers.values()) / elapsed if elapsed else 0.0)


def _rounds(gateway: BenchGateway, seconds: float, concurrency: int, rate: float, spread: bool, label: str,
            echo: Callable[[str], None], **env: str) -> dict:
    port = free_port()
    if spread:
        env["SMSAGG_TRUSTED_PROXIES"] = "127.0.0.1/32"
    gateway.start("web", "--port", str(port), **env)
    wait_for_port(port)
    url = f"http://127.0.0.1:{port}"
    run_load(url, SubmitRequests(f"{label}-warm"), concurrency=4, seconds=1.5, warmup=0.0)  # both processes' caches
    alone, attacked = [], []
    for number in range(ROUNDS):
        alone.append(_measure(url, port, f"{label}-alone-{number}", seconds, concurrency, None, spread))
        attacked.append(_measure(url, port, f"{label}-attacked-{number}", seconds, concurrency, rate, spread))
        echo(f"{label} round {number + 1}: alone {alone[-1].accepted_per_second:,.0f} accepted/s, "
             f"attacked {attacked[-1].accepted_per_second:,.0f} accepted/s "
             f"(attacker {attacked[-1].attacker_per_second:.1f} submits/s: {attacked[-1].attacker_answers})")
    best_alone = max(alone, key=lambda r: r.accepted_per_second)
    best_attacked = max(attacked, key=lambda r: r.accepted_per_second)
    ratio = best_attacked.accepted_per_second / best_alone.accepted_per_second if best_alone.accepted_per_second else 0
    echo(f"{label}: alone {best_alone.accepted_per_second:,.0f} accepted/s, attacked "
         f"{best_attacked.accepted_per_second:,.0f} accepted/s, attacked / alone = {ratio:.2f}")
    return {
        "alone_accepted_per_second": round(best_alone.accepted_per_second, 1),
        "attacked_accepted_per_second": round(best_attacked.accepted_per_second, 1),
        "ratio": round(ratio, 3),
        "attacker_submits_per_second": round(best_attacked.attacker_per_second, 1),
        "attacker_answers": best_attacked.attacker_answers,
        "client_answers": {"alone": best_alone.load.body_counts, "attacked": best_attacked.load.body_counts},
        "attacked_latency_p99_ms": best_attacked.load.latency_ms.p99,
    }


def run(seconds: float, concurrency: int, echo: Callable[[str], None], *, rate: float = 20.0,
        spread: bool = False, unguarded: bool = False) -> dict:
    figures = {"benchmark": "auth", "attacker_rate": rate, "attacker_spread": spread, "concurrency": concurrency,
               "seconds_per_round": seconds, "rounds": ROUNDS, "target_ratio": 0.90}
    with BenchGateway() as gateway:
        figures["guarded"] = _rounds(gateway, seconds, concurrency, rate, spread, "guarded", echo)
        if unguarded:
            figures["unguarded"] = _rounds(gateway, seconds, concurrency, rate, spread, "unguarded", echo,
                                           **UNGUARDED)
    return figures
