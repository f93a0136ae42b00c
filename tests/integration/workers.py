"""Running real ``smsagg worker`` / ``smsagg web`` processes for integration tests."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

from app.settings import Settings


def environment(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SMSAGG_HOME=str(settings.home),
        SMSAGG_REDIS_URL=settings.redis_url or "",
        SMSAGG_DATABASE_URL=settings.database_url,
        SMSAGG_REDIS_PREFIX=settings.key_prefix,
        SMSAGG_ALLOW_PRIVATE_CALLBACKS="1",
        SMSAGG_DIRECTORY_REFRESH_SECONDS="0",
    )
    return env


@contextmanager
def running(args: list[str], settings: Settings, log_path: Path, ready=None, timeout: float = 30.0):
    """Run ``python -m app.cli <args>`` until the block ends; wait for ``ready()``."""
    with open(log_path, "wb") as log:
        process = subprocess.Popen([sys.executable, "-m", "app.cli", *args], env=environment(settings),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + timeout
            while ready is not None and not ready():
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[0]} did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
                time.sleep(0.1)
            yield process
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()


def worker_ready(log_path: Path):
    return lambda: b" ready." in log_path.read_bytes()


def port_open(port: int):
    def check() -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    return check


def wait_until(condition, timeout: float = 30.0, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")


async def wait_until_async(condition, timeout: float = 30.0, interval: float = 0.01):
    """:func:`wait_until` inside an event loop: the loop goes on serving while it waits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        await asyncio.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
