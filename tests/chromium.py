"""Driving Debian's headless Chromium over the DevTools protocol (a websocket, with
aiohttp), for the browser tests: the agent page (GMS) and the operator console.

``running_chromium(tmp_path)`` starts a fresh browser (its own ``--user-data-dir``) and
yields the websocket URL of its page; :class:`Cdp` sends the few protocol calls the
tests need. Tests skip when ``CHROMIUM`` is None. Screenshots go to the test's
``tmp_path`` only, never into the repository.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage")


class Cdp:
    """The few DevTools protocol calls the tests need. Events that arrive while a call
    waits for its answer are kept in ``events`` (method, params)."""

    def __init__(self, ws):
        self.ws = ws
        self.last_id = 0
        self.events: list[tuple[str, dict]] = []

    async def call(self, method: str, **params):
        self.last_id += 1
        await self.ws.send_json({"id": self.last_id, "method": method, "params": params})
        while True:
            message = await self.ws.receive_json(timeout=15)
            if message.get("id") == self.last_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                return message["result"]
            if "method" in message:
                self.events.append((message["method"], message.get("params", {})))

    async def event(self, method: str, timeout: float = 10.0) -> dict:
        """The params of the next ``method`` event (one that already arrived counts)."""
        for index, (name, params) in enumerate(self.events):
            if name == method:
                del self.events[index]
                return params
        deadline = time.monotonic() + timeout
        while True:
            message = await self.ws.receive_json(timeout=max(0.1, deadline - time.monotonic()))
            if message.get("method") == method:
                return message.get("params", {})
            if "method" in message:
                self.events.append((message["method"], message.get("params", {})))

    async def eval(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, timeout: float = 10.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = await self.eval(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out waiting for {expression}")

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


@contextmanager
def running_chromium(user_data: Path, *, width: int = 1280, height: int = 900) -> Iterator[str]:
    """A headless Chromium with a fresh profile in ``user_data``; yields its page's
    DevTools websocket URL and stops the browser afterwards."""
    process = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--window-size={width},{height}", f"--user-data-dir={user_data}",
         "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        yield _page_websocket(process, user_data)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _page_websocket(process: subprocess.Popen, user_data: Path) -> str:
    port_file = user_data / "DevToolsActivePort"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"chromium exited with {process.returncode}")
        if port_file.exists() and port_file.read_text().strip():
            port = port_file.read_text().split()[0]
            for target in requests.get(f"http://127.0.0.1:{port}/json/list", timeout=5).json():
                if target["type"] == "page":
                    return target["webSocketDebuggerUrl"]
        time.sleep(0.1)
    raise AssertionError("chromium did not open its DevTools port")
