"""The SMSC simulator running in the test process, on a loop thread of its own, so a
test can both talk to it over TCP (through real workers) and look inside it."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager

from app.smpp.simulator import SimulatorConfig, SmscSimulator


class SimulatorThread:
    def __init__(self, config: SimulatorConfig):
        self.loop = asyncio.new_event_loop()
        self.simulator = SmscSimulator(config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "SimulatorThread":
        self._thread.start()
        self.call(self.simulator.start())
        return self

    def call(self, coroutine, timeout: float = 10.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def port(self) -> int:
        return self.simulator.port

    @property
    def messages(self):
        return list(self.simulator.messages)

    def wait_for_messages(self, count: int, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.simulator.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"simulator got {len(self.simulator.messages)} of {count} messages")

    def inject_mo(self, source: str, destination: str, text: str) -> int:
        return self.call(self.simulator.inject_mo(source, destination, text))

    def stop(self) -> None:
        self.call(self.simulator.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@contextmanager
def running_simulator(**options):
    config = SimulatorConfig(port=0, control_port=0, **options)
    simulator = SimulatorThread(config).start()
    try:
        yield simulator
    finally:
        simulator.stop()
