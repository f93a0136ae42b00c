"""How many submit_sm per second the client and the simulator sustain together.

``await measure_simulator_throughput(seconds, window, binds)`` starts an
``SmscSimulator`` on a free 127.0.0.1 port and an ``SmppPool`` of ``binds``
transceivers in this process, keeps ``window`` submits outstanding on every
bind for ``seconds``, and returns the figures as a dict (see ``_report``).
Client and simulator share one event loop and so one core: the figure is a
floor for either alone. Pass ``simulator=(host, port)`` to load a simulator
already running elsewhere (say, in its own process) instead.
``with_receipts=True`` asks for a receipt per message, which the simulator
sends at once and the client acknowledges, as in production.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections import Counter
from typing import Any

from app.smpp.client import SmppClientConfig, SmppPool
from app.smpp.pdu import DeliverSm, SubmitSm
from app.smpp.simulator import SimulatorConfig, SmscSimulator

_MESSAGE = SubmitSm(source_addr="SMSAGG", destination_addr="33612345678", short_message=b"Benchmark message")


async def measure_simulator_throughput(
    seconds: float = 5.0,
    window: int = 10,
    binds: int = 1,
    *,
    with_receipts: bool = False,
    simulator: tuple[str, int] | None = None,
) -> dict[str, Any]:
    async with contextlib.AsyncExitStack() as stack:
        if simulator is None:
            local = await stack.enter_async_context(SmscSimulator(SimulatorConfig(port=0, dr_delay=0)))
            simulator = ("127.0.0.1", local.port)
        receipts = _ReceiptCounter()
        config = SmppClientConfig(simulator[0], simulator[1], "bench", "bench", window=window)
        pool = await stack.enter_async_context(SmppPool(config, binds, receipts))
        statuses, elapsed = await _submit_flat_out(pool, seconds, window * binds, with_receipts)
    return _report(statuses, elapsed, receipts.count, window, binds)


class _ReceiptCounter:
    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, pdu: DeliverSm) -> None:
        self.count += 1


async def _submit_flat_out(pool: SmppPool, seconds: float, concurrency: int,
                           with_receipts: bool) -> tuple[Counter[int], float]:
    """concurrency loops submitting back to back until the deadline; command_status counts."""
    message = dataclasses.replace(_MESSAGE, registered_delivery=int(with_receipts))
    statuses = Counter[int]()
    started = time.perf_counter()
    deadline = started + seconds

    async def submit_until_deadline() -> None:
        while time.perf_counter() < deadline:
            statuses[(await pool.submit(message)).command_status] += 1

    await asyncio.gather(*(submit_until_deadline() for _ in range(concurrency)))
    return statuses, time.perf_counter() - started


def _report(statuses: Counter[int], elapsed: float, receipts: int, window: int, binds: int) -> dict[str, Any]:
    submitted = sum(statuses.values())
    return {
        "submit_sm_per_second": round(submitted / elapsed),
        "submitted": submitted,
        "accepted": statuses[0],
        "receipts_received": receipts,
        "seconds": round(elapsed, 3),
        "window": window,
        "binds": binds,
    }
