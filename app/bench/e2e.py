"""``smsagg bench e2e``: messages submitted over HTTP, delivered over SMPP to the SMSC
simulator, receipts coming back as DR callbacks to a client endpoint — every part a
real process, as ``smsagg up`` runs them.

Figures, each from one run:

* **throughput**: valid BULK submits for ``seconds`` with a keep-alive load generator,
  then the rate at which they reached the SMSC (accepted -> ``submit_sm_resp``), its
  ratio to the HTTP rate offered in the same run, and those latencies' percentiles (the
  message log's ``accepted_at`` against the segment's ``submitted_at``). Twice: first
  with ``receipt=FALSE`` (the MT path alone: no receipts, no callbacks), then with
  ``receipt=TRUE`` (the DR leg running at the same time on the same cores);
* **DR leg**: final DR callbacks per second at the client, and the latency from the
  simulator sending the ``deliver_sm`` (the segment's ``submitted_at`` plus the
  simulator's fixed receipt delay) to the callback's arrival;
* **isolation**: 100,000 BULK messages are queued at once (accepted payloads pushed
  onto the BULK MT list, pipelined, and one drain task), then INTERACTIVE messages are submitted over HTTP at 10/s while that
  backlog drains; their accept -> ``submit_sm_resp`` latency percentiles. The baseline
  for them is the same measure with no backlog, taken first in the same run.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from urllib.parse import parse_qsl, urlencode

import redis
from sqlalchemy import select

from app.adapters import stage_queue
from app.adapters.redis_scripts import RedisKeys
from app.bench.harness import (BENCH_LOGIN, BENCH_PASSWORD, BENCH_SENDER, BenchGateway, FormClient, free_port,
                               wait_for_port)
from app.bench.loadgen import RequestSpec, run_load
from app.db.models import Account, Carrier, Message, SegmentSubmit
from app.db.session import session_scope
from app.domain.priorities import Priority
from app.services import accounts as svc

DR_DELAY = 0.5
BACKLOG = 100_000
INTERACTIVE_PROBES = 50


class Submits:
    """Valid submits with unique message_ids (picklable)."""

    def __init__(self, tag: str, priority: str = "BULK", receipt: bool = True):
        self.prefix = urlencode({
            "login": BENCH_LOGIN, "password": BENCH_PASSWORD, "phone_number": "12025550100", "sender": BENCH_SENDER,
            "message": "Benchmark message end to end", "receipt": "TRUE" if receipt else "FALSE", "priority": priority,
        }).encode() + f"&message_id={tag}-".encode()

    def __call__(self, index: int) -> RequestSpec:
        return RequestSpec("POST", "/httpapi/receiver", self.prefix + str(index).encode())


def percentiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    return {"p50": round(pick(0.50), 1), "p90": round(pick(0.90), 1), "p99": round(pick(0.99), 1),
            "max": round(ordered[-1], 1), "count": len(ordered)}


def _epoch(moment: datetime) -> float:
    return (moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)).timestamp()


def submitted_times(database_url: str, tag: str) -> dict[str, tuple[float, float]]:
    """client message_id -> (accepted_at, submitted_at) for messages the SMSC acknowledged."""
    with session_scope(database_url) as session:
        rows = session.execute(
            select(Message.client_message_id, Message.accepted_at, SegmentSubmit.submitted_at)
            .join(SegmentSubmit, SegmentSubmit.message_id == Message.id)
            .where(Message.client_message_id.like(f"{tag}-%"), SegmentSubmit.seq == 1,
                   SegmentSubmit.submitted_at.is_not(None))
        )
        return {cid: (_epoch(accepted), _epoch(submitted)) for cid, accepted, submitted in rows}


def wait_for(condition: Callable[[], bool], timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return False


def configure_simulator_carrier(gw: BenchGateway, smsc_port: int, receiver_port: int) -> None:
    """Carrier 1 becomes the SMSC simulator for every number; DRs go to ``receiver_port``."""
    with session_scope(gw.database_url) as session:
        carrier = session.get(Carrier, 1)
        carrier.connector = "smpp"
        carrier.settings = {"host": "127.0.0.1", "port": smsc_port, "system_id": "bench", "password": "bench",
                            "window": 50}
        svc.add_route(session, svc.DEFAULT_ROUTE_PREFIX, 1)
        account = session.scalar(select(Account).where(Account.login == BENCH_LOGIN))
        account.dr_url = f"http://127.0.0.1:{receiver_port}/dr"


def _start_gateway(gw: BenchGateway) -> tuple[str, str]:
    smsc_port, receiver_port, web_port = free_port(), free_port(), free_port()
    out = str(gw.home / "callbacks.tsv")
    gw.start("--port", str(receiver_port), "--out", out, module="app.bench.receiver")
    gw.start("smsc-sim", "--port", str(smsc_port), "--control-port", str(free_port()), "--dr-delay", str(DR_DELAY))
    configure_simulator_carrier(gw, smsc_port, receiver_port)
    env = {"SMSAGG_ALLOW_PRIVATE_CALLBACKS": "1"}
    gw.start("web", "--port", str(web_port), **env)
    worker_env = {**env, "SMSAGG_LOG_LEVEL": "INFO"}  # Celery says " ready." at INFO
    gw.start("beat", **worker_env)  # re-matches held receipts, sweeps, as in `smsagg up`
    workers = [
        gw.start("worker", "--queues", "mt.interactive,mt.interactive_low", "--pool", "threads", "--concurrency", "4",
                 **worker_env),
        gw.start("worker", "--queues", "mt.bulk,mt.bulk_low", "--pool", "threads", "--concurrency", "4", **worker_env),
        gw.start("worker", "--queues", "inbound", "--pool", "threads", "--concurrency", "4", **worker_env),
        gw.start("worker", "--queues", "callbacks", "--pool", "threads", "--concurrency", "8", **worker_env),
        gw.start("worker", "--queues", "callbacks", "--pool", "threads", "--concurrency", "8", **worker_env),
    ]
    for port in (smsc_port, receiver_port, web_port):
        wait_for_port(port)
    if not wait_for(lambda: all(b" ready." in gw.logs[w.pid].read_bytes() for w in workers), 60):
        raise RuntimeError("workers did not start")
    return f"http://127.0.0.1:{web_port}", out


def _throughput(url: str, gw: BenchGateway, seconds: float, concurrency: int, echo, *,
                tag: str, receipt: bool) -> tuple[dict, dict]:
    """Submit for ``seconds``, wait until everything reached the SMSC, and report the
    SMSC rate against the HTTP rate offered in the same run (the baseline: a delivery
    stage that keeps up has a ratio of 1)."""
    load = run_load(url, Submits(tag, receipt=receipt), concurrency=concurrency, seconds=seconds, warmup=0.0)
    accepted = load.body_counts.get("result_code=0", 0)
    echo(f"[{tag}] submitted over HTTP (receipt={receipt}): {accepted} accepted in {load.seconds:.1f}s "
         f"({load.requests_per_second:,.0f}/s)")
    wait_for(lambda: len(submitted_times(gw.database_url, tag)) >= accepted, timeout=max(60, seconds * 6), interval=1)
    times = submitted_times(gw.database_url, tag)
    first_accept = min(a for a, _ in times.values())
    last_submit = max(s for _, s in times.values())
    rate = len(times) / (last_submit - first_accept)
    figures = {
        "accepted": accepted,
        "reached_smsc": len(times),
        "smsc_messages_per_second": round(rate, 1),
        "accept_to_submit_resp_ms": percentiles([(s - a) * 1000 for a, s in times.values()]),
        "http_submits_per_second": round(load.requests_per_second, 1),
        "smsc_to_http_ratio": round(rate / max(load.requests_per_second, 0.1), 2),
    }
    echo(f"[{tag}] reached the SMSC: {figures['reached_smsc']} at {rate:,.0f} msg/s "
         f"(ratio to the HTTP rate {figures['smsc_to_http_ratio']}); accept -> submit_sm_resp ms "
         f"{figures['accept_to_submit_resp_ms']}")
    return figures, times


def _dr_leg(out: str, times: dict[str, tuple[float, float]], echo) -> dict:
    def finals() -> dict[str, float]:
        arrivals = {}
        with open(out, encoding="utf-8") as lines:
            for line in lines:
                at, path, message_id, state = line.rstrip("\n").split("\t")
                if state == "2" and message_id in times:
                    arrivals[message_id] = float(at)
        return arrivals

    wait_for(lambda: len(finals()) >= len(times), timeout=120, interval=1)
    arrivals = finals()
    if not arrivals:
        return {"final_dr_callbacks": 0}
    latencies = [(at - (times[mid][1] + DR_DELAY)) * 1000 for mid, at in arrivals.items()]
    first_deliver = min(times[mid][1] for mid in arrivals) + DR_DELAY
    figures = {
        "final_dr_callbacks": len(arrivals),
        "dr_callbacks_per_second": round(len(arrivals) / max(0.001, max(arrivals.values()) - first_deliver), 1),
        "deliver_sm_to_callback_ms": percentiles(latencies),
    }
    echo(f"DR callbacks: {figures['final_dr_callbacks']} final at {figures['dr_callbacks_per_second']:,.0f}/s; "
         f"deliver_sm -> client ms {figures['deliver_sm_to_callback_ms']}")
    return figures


def _interactive_probe(url: str, gw: BenchGateway, tag: str) -> dict:
    client = FormClient(url, timeout=10)
    for index in range(INTERACTIVE_PROBES):
        spec = Submits(tag, "INTERACTIVE")(index)
        reply = client.post(spec.path, dict(parse_qsl(spec.body.decode())))
        if reply != "result_code=0":
            raise RuntimeError(f"interactive probe refused: {reply}")
        time.sleep(0.1)
    client.close()
    wait_for(lambda: len(submitted_times(gw.database_url, tag)) >= INTERACTIVE_PROBES, timeout=60, interval=0.5)
    return percentiles([(s - a) * 1000 for a, s in submitted_times(gw.database_url, tag).values()])


def _queue_bulk_backlog(gw: BenchGateway, count: int) -> float:
    client = redis.Redis.from_url(gw.redis_url)
    keys = RedisKeys(gw.key_prefix)
    with session_scope(gw.database_url) as session:
        account_id = session.scalar(select(Account.id).where(Account.login == BENCH_LOGIN))
    started = time.monotonic()
    priority = Priority.BULK
    for start in range(0, count, 2000):
        pipe = client.pipeline(transaction=False)
        for index in range(start, min(count, start + 2000)):
            message_id = uuid.uuid4().hex
            payload = {"id": message_id, "account_id": account_id, "client_message_id": f"backlog-{index}",
                       "phone_number": "12025550100", "sender": BENCH_SENDER, "message": "backlog", "carrier": None,
                       "receipt": False, "app_id": None, "conversation_id": None, "priority": priority.value,
                       "attachments": [], "accepted_at": time.time()}
            pipe.lpush(keys.stage_pending(priority.queue), stage_queue.item(payload))
        pipe.execute()
    client.lpush(priority.queue, stage_queue.drain_message(priority.queue))
    return time.monotonic() - started


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    with BenchGateway() as gw:
        url, out = _start_gateway(gw)
        mt_only, _ = _throughput(url, gw, seconds, concurrency, echo, tag="mt", receipt=False)
        throughput, times = _throughput(url, gw, seconds, concurrency, echo, tag="tp", receipt=True)
        dr = _dr_leg(out, times, echo)
        idle = _interactive_probe(url, gw, "idle")
        echo(f"INTERACTIVE, no backlog: accept -> submit_sm_resp ms {idle}")
        pushed_in = _queue_bulk_backlog(gw, BACKLOG)
        echo(f"queued {BACKLOG:,} BULK messages in {pushed_in:.1f}s")
        loaded = _interactive_probe(url, gw, "busy")
        backlog = RedisKeys(gw.key_prefix).stage_pending(Priority.BULK.queue)
        backlog_left = redis.Redis.from_url(gw.redis_url).llen(backlog)
        echo(f"INTERACTIVE with the BULK backlog draining ({backlog_left:,} still queued): ms {loaded}")
        redis.Redis.from_url(gw.redis_url).delete(backlog)
    return {
        "benchmark": "e2e",
        "without_receipts": mt_only,
        **throughput,
        **dr,
        "interactive_idle_ms": idle,
        "interactive_with_bulk_backlog_ms": loaded,
        "bulk_backlog": BACKLOG,
        "bulk_backlog_left_when_measured": backlog_left,
        "interactive_p99_ratio_to_idle": round(loaded["p99"] / max(idle["p99"], 0.1), 2),
    }
