"""``smsagg bench bulk``: one ``/bulksms/bulksms`` request with 10,000 destinations
against a live ``smsagg web``, and the rate at which a worker fans such a batch out
into the priority queue.

* Request latency: POST requests of 10,000 destinations each (a new text each time, so
  the duplicate window does not refuse them), for ``seconds`` or at least 3 requests,
  on a keep-alive connection; every entry of every reply must be 1701. Then one request
  of 100,000 destinations, which must be refused whole (``1706||``) just as quickly.
* Fan-out: an ``smsagg worker --queues mt.bulk`` is started and the batch's cursor (how
  many per-destination task messages are pushed) is sampled every 5 ms: the rate is
  destinations / (last push - first push). Then the rate at which the same worker
  delivers those messages to the SMSC simulator (an SMPP carrier with a catch-all
  route; acknowledged ``submit_sm`` per second) is sampled for a few seconds.

``concurrency`` parallel clients send the latency requests (default 1 in the CLI's
sense: any value is capped at 4, since each request is 10,000 destinations).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import redis
from sqlalchemy import func, select

from app.bench.harness import (BENCH_LOGIN, BENCH_PASSWORD, BENCH_SENDER, BenchGateway, FormClient, free_port,
                               wait_for_port)
from app.bench.e2e import configure_simulator_carrier
from app.bulk.payloads import FANOUT_TASK
from app.db.models import SegmentSubmit
from app.db.session import session_scope

DESTINATIONS = 10_000


def _body(index: int, count: int = DESTINATIONS) -> dict[str, str]:
    return {
        "username": BENCH_LOGIN, "password": BENCH_PASSWORD, "type": "0", "dlr": "0", "source": BENCH_SENDER,
        "message": f"Bench campaign {index}: hello from smsagg",
        "destination": ",".join(str(12025500000 + i) for i in range(count)),
    }


def _post(client: FormClient, body: dict[str, str]) -> tuple[float, str]:
    started = time.perf_counter()
    text = client.post("/bulksms/bulksms", body)
    return time.perf_counter() - started, text


def _check(text: str) -> str:
    entries = text.split(",")
    if len(entries) != DESTINATIONS or any(not e.startswith("1701|") for e in entries):
        raise RuntimeError(f"not every destination was accepted: {text[:200]!r}")
    return entries[0].split("|")[2][:24]


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gateway:
        port = free_port()
        gateway.start("web", "--port", str(port))
        wait_for_port(port)
        url = f"http://127.0.0.1:{port}"
        client = redis.Redis.from_url(gateway.redis_url)
        warm = FormClient(url)
        for _ in range(4):  # both ingress processes: credential cache, directory snapshot
            _post(warm, {**_body(-1, 1), "message": f"warm {time.time()}"})
        bodies = [_body(i) for i in range(64)]
        latencies, batch_ids, index = [], [], 0
        deadline = time.monotonic() + seconds
        clients = max(1, min(concurrency, 4))
        posters = [FormClient(url) for _ in range(clients)]
        with ThreadPoolExecutor(max_workers=clients) as pool:
            while index < 3 or (time.monotonic() < deadline and index < len(bodies)):
                batch = bodies[index : index + clients]
                results = list(pool.map(lambda pair: _post(*pair), zip(posters, batch)))
                for latency, text in results:
                    latencies.append(latency)
                    batch_ids.append(_check(text))
                index += len(batch)
        echo(f"{len(latencies)} requests of {DESTINATIONS:,} destinations: median "
             f"{statistics.median(latencies) * 1000:.0f} ms, max {max(latencies) * 1000:.0f} ms")
        huge_latency, huge_text = _post(warm, _body(10**6, 100_000))
        if huge_text != "1706||":
            raise RuntimeError(f"100,000 destinations were not refused: {huge_text[:80]!r}")
        for form_client in (warm, *posters):
            form_client.close()
        echo(f"100,000 destinations refused whole (1706||) in {huge_latency * 1000:.0f} ms")

        first = batch_ids[0]
        # Only the first batch is fanned out: its fan-out task is pushed again below. The
        # drain flag goes with the queue (a drain task the warm-up queued is deleted too).
        client.delete("mt.bulk", "smsagg:stage:mt.bulk:drain", "smsagg:stage:mt.bulk")
        client.hdel(f"smsagg:batch:{first}", "cursor")
        from app.adapters.celery_wire import task_message

        samples = []
        smsc_port = free_port()
        gateway.start("smsc-sim", "--port", str(smsc_port), "--control-port", str(free_port()))
        wait_for_port(smsc_port)
        configure_simulator_carrier(gateway, smsc_port, free_port())
        gateway.start("worker", "--queues", "mt.bulk", "--pool", "threads", "--concurrency", "20")
        client.lpush("mt.bulk", task_message(FANOUT_TASK, "mt.bulk", [first]))
        limit = time.monotonic() + 120
        while time.monotonic() < limit:
            cursor = int(client.hget(f"smsagg:batch:{first}", "cursor") or 0)
            samples.append((time.perf_counter(), cursor))
            if cursor >= DESTINATIONS:
                break
            time.sleep(0.005)
        started = next(t for t, c in samples if c > 0)
        chunk = next(c for t, c in samples if c > 0)
        fanout_rate = (DESTINATIONS - chunk) / max(samples[-1][0] - started, 1e-6)
        echo(f"fan-out: {DESTINATIONS:,} payloads pushed at {fanout_rate:,.0f}/s "
             f"({samples[-1][0] - started:.2f} s after the first chunk of {chunk})")
        delivery_rate = _delivery_rate(gateway.database_url, first, seconds=min(max(seconds, 3.0), 10.0))
        echo(f"delivered to the SMSC simulator by one worker: {delivery_rate:,.0f} messages/s")
    return {
        "benchmark": "bulk",
        "destinations_per_request": DESTINATIONS,
        "requests": len(latencies),
        "request_latency_ms_median": round(statistics.median(latencies) * 1000, 1),
        "request_latency_ms_max": round(max(latencies) * 1000, 1),
        "refusal_100k_latency_ms": round(huge_latency * 1000, 1),
        "fanout_messages_per_second": round(fanout_rate, 1),
        "smsc_messages_per_second": round(delivery_rate, 1),
        "concurrency": clients,
    }


def _submitted(database_url: str, batch_id: str) -> int:
    """Segments of the batch's messages the SMSC acknowledged."""
    with session_scope(database_url) as session:
        return session.scalar(select(func.count()).select_from(SegmentSubmit).where(
            SegmentSubmit.message_id >= batch_id + "0" * 8, SegmentSubmit.message_id <= batch_id + "f" * 8))


def _delivery_rate(database_url: str, batch_id: str, seconds: float) -> float:
    start_count, started = _submitted(database_url, batch_id), time.perf_counter()
    time.sleep(seconds)
    return (_submitted(database_url, batch_id) - start_count) / (time.perf_counter() - started)
