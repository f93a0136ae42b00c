"""The MMSC simulator running in the test process, on a loop thread of its own, so a
test can both reach it over HTTP (through the connector or real workers) and look
inside it."""

from __future__ import annotations

import asyncio
import threading
import time
from contextlib import contextmanager

from app.mm7.simulator import MmscConfig, MmscSimulator


class MmscThread:
    def __init__(self, config: MmscConfig):
        self.loop = asyncio.new_event_loop()
        self.simulator = MmscSimulator(config)
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> "MmscThread":
        self._thread.start()
        self.call(self.simulator.start())
        return self

    def call(self, coroutine, timeout: float = 20.0):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.simulator.port}{self.simulator.config.path}"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.simulator.port}"

    @property
    def messages(self):
        return list(self.simulator.messages)

    def wait_for_messages(self, count: int, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if len(self.simulator.messages) >= count:
                return self.messages
            time.sleep(0.05)
        raise AssertionError(f"MMSC simulator got {len(self.simulator.messages)} of {count} messages")

    def inject_mo(self, sender: str, recipient: str, text: str, attachments=()):
        return self.call(self.simulator.inject_mo(sender, recipient, text, tuple(attachments)))

    def stop(self) -> None:
        self.call(self.simulator.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)


@contextmanager
def running_mmsc(**options):
    simulator = MmscThread(MmscConfig(port=0, **options)).start()
    try:
        yield simulator
    finally:
        simulator.stop()
