"""The SMSC of ``smsagg bench peers``: the project's simulator (``app.smpp.simulator``)
in a process of its own, counting what reaches it per message.

``python -m app.bench.peers.smsc --port P --control-port C --stats-port S [--dr-delay 1]``

* It acks every submit_sm; with a ``--dr-delay`` it sends each message that asked for
  one a DELIVRD receipt that many seconds later (the simulator's own receipts).
* Every message the benchmark sends starts with its own id (``<id> xxx...``, see
  ``send.lua``), so the SMSC counts the messages it received per id: how many distinct
  ids, and how many arrived more than once.
* ``GET /stats`` on 127.0.0.1:S answers the live counters as JSON: ``submits`` (every
  submit_sm), ``messages``, ``distinct``, ``duplicated`` (ids received more than
  once), ``last_at`` (epoch of the latest message), ``per_second`` (``[[epoch second,
  messages], ...]``), ``binds`` (sessions bound so far), ``receipts_acknowledged``.
  ``GET /ids?prefix=TAG`` answers ``{"ids": {id: count}}`` for the ids starting with TAG.

The simulator keeps each received message in ``sim.messages``; the counters take them
from there every 50 ms (and before every answer), so the list never grows long.

``measure_capacity()`` is the SMSC's self-test: such a process pinned to one core,
loaded from the other by the project's SMPP client, reporting the submit_sm per second
acked and the SMSC's CPU per submit_sm.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass

from aiohttp import web

from app.smpp.simulator import SimulatorConfig, SmscSimulator

COLLECT_EVERY_S = 0.05


class MessageCounter:
    """Per-id counts of the messages a simulator received, taken from ``sim.messages``."""

    def __init__(self, simulator: SmscSimulator):
        self.simulator = simulator
        self.by_id: Counter[str] = Counter()
        self.per_second: Counter[int] = Counter()
        self.messages = 0
        self.duplicated = 0
        self.last_at: float | None = None
        self.binds = 0

    def collect(self) -> None:
        received, self.simulator.messages = self.simulator.messages, []
        for message in received:
            message_id = message.text.split(" ", 1)[0]
            self.by_id[message_id] += 1
            if self.by_id[message_id] == 2:
                self.duplicated += 1
            at = message.received_at.timestamp()
            self.per_second[int(at)] += 1
            self.last_at = at
        self.messages += len(received)

    def stats(self) -> dict:
        self.collect()
        return {"submits": self.simulator.submit_count, "messages": self.messages, "distinct": len(self.by_id),
                "duplicated": self.duplicated, "last_at": self.last_at,
                "per_second": sorted(self.per_second.items()), "binds": self.binds,
                "receipts_acknowledged": self.simulator.acknowledged_deliveries}

    def ids(self, prefix: str) -> dict[str, int]:
        self.collect()
        return {message_id: n for message_id, n in self.by_id.items() if message_id.startswith(prefix)}


class CountingSimulator(SmscSimulator):
    """The simulator, plus a count of the binds it accepted."""

    counter: MessageCounter

    def session_bound(self, session) -> None:
        self.counter.binds += 1
        super().session_bound(session)


async def serve(port: int, control_port: int, stats_port: int, dr_delay: float) -> None:
    simulator = CountingSimulator(SimulatorConfig(port=port, control_port=control_port, dr_delay=dr_delay))
    counter = simulator.counter = MessageCounter(simulator)

    async def stats(_request: web.Request) -> web.Response:
        return web.json_response(counter.stats())

    async def ids(request: web.Request) -> web.Response:
        return web.json_response({"ids": counter.ids(request.query.get("prefix", ""))})

    app = web.Application()
    app.router.add_get("/stats", stats)
    app.router.add_get("/ids", ids)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    stop = asyncio.Event()
    for signal_number in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signal_number, stop.set)
    async with simulator:
        await web.TCPSite(runner, "127.0.0.1", stats_port).start()
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), COLLECT_EVERY_S)
            counter.collect()
    await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description="The SMSC of smsagg bench peers.")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--stats-port", type=int, required=True)
    parser.add_argument("--dr-delay", type=float, default=1.0)
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.control_port, args.stats_port, args.dr_delay))


def command(port: int, control_port: int, stats_port: int, dr_delay: float) -> list[str]:
    return [sys.executable, "-m", "app.bench.peers.smsc", "--port", str(port), "--control-port", str(control_port),
            "--stats-port", str(stats_port), "--dr-delay", str(dr_delay)]


@dataclass(frozen=True)
class Capacity:
    submits_per_s: float
    cpu_us_per_submit: float
    receipts: bool
    pinned: bool

    @property
    def one_core_per_s(self) -> float:
        """What one core would sustain at the measured CPU cost per submit_sm."""
        return 1e6 / self.cpu_us_per_submit if self.cpu_us_per_submit else 0.0

    def describe(self) -> str:
        kind = "with a receipt each" if self.receipts else "no receipts"
        where = "SMSC on CPU 0, client on CPU 1" if self.pinned else "not pinned (one core)"
        return (f"SMSC self-test ({kind}, {where}): {self.submits_per_s:,.0f} submit_sm/s acked, "
                f"{self.cpu_us_per_submit:.0f} us of SMSC CPU each (one core: ~{self.one_core_per_s:,.0f}/s)")


def measure_capacity(seconds: float, *, receipts: bool, free_port, cpu_seconds) -> Capacity:
    """Load a fresh SMSC process (pinned to CPU 0) from this process (pinned to CPU 1)
    with the project's SMPP client: 4 binds, a window of 64 each."""
    from app.bench.harness import wait_for_port
    from app.bench.smpp_throughput import measure_simulator_throughput

    port, stats_port = free_port(), free_port()
    process = subprocess.Popen(command(port, free_port(), stats_port, 0.0), stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    own_cpus = os.sched_getaffinity(0)
    pinned = len(own_cpus) >= 2
    try:
        wait_for_port(port)
        if pinned:
            first, second = sorted(own_cpus)[:2]
            os.sched_setaffinity(process.pid, {first})
            os.sched_setaffinity(0, {second})
        before = cpu_seconds(process.pid)
        figures = asyncio.run(measure_simulator_throughput(seconds, window=64, binds=4, with_receipts=receipts,
                                                           simulator=("127.0.0.1", port)))
        spent = cpu_seconds(process.pid) - before
    finally:
        os.sched_setaffinity(0, own_cpus)
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    submitted = max(1, figures["accepted"])
    return Capacity(figures["submit_sm_per_second"], spent * 1e6 / submitted, receipts, pinned)


if __name__ == "__main__":
    main()
