"""``smsagg bench throttle``: does a carrier's token bucket hold its configured rate
across processes? Four processes (as four worker processes would) take tokens from
one carrier bucket in Redis with the same call the delivery stage makes
(``RedisStore.take_carrier_token``), each waiting the time the bucket answers when
refused; the figure is the rate of tokens granted against the configured rate (the
baseline), over ``--seconds`` (the issue asks for a minute: ``--seconds 60``).
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable

from app.adapters.redis_scripts import RedisStore, connect
from app.bench.harness import BenchGateway

PROCESSES = 4
RATE = 200.0
CARRIER = 1


def _take_for(redis_url: str, seconds: float, start_at: float, granted) -> None:
    store = RedisStore(connect(redis_url), "bench:")
    count = 0
    time.sleep(max(0.0, start_at - time.time()))
    deadline = start_at + seconds
    while time.time() < deadline:
        wait = store.take_carrier_token(CARRIER, RATE, RATE)
        if wait > 0:
            time.sleep(min(wait, max(0.0, deadline - time.time())))
        else:
            count += 1
    with granted.get_lock():
        granted.value += count


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gw:
        granted = multiprocessing.Value("i", 0)
        start_at = time.time() + 1.0
        takers = [multiprocessing.Process(target=_take_for, args=(gw.redis_url, seconds, start_at, granted))
                  for _ in range(PROCESSES)]
        for taker in takers:
            taker.start()
        for taker in takers:
            taker.join()
    # A full bucket lets one burst through at the start; the rate is what follows it.
    measured = (granted.value - RATE) / seconds
    ratio = measured / RATE
    echo(f"{PROCESSES} processes, configured {RATE:.0f}/s: granted {granted.value} in {seconds:.0f}s "
         f"= {measured:.1f}/s after the initial burst; ratio to the configured rate {ratio:.3f}")
    return {"benchmark": "throttle", "processes": PROCESSES, "configured_rate": RATE, "seconds": seconds,
            "granted": granted.value, "measured_rate": round(measured, 2), "ratio": round(ratio, 4)}
