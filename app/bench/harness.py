"""A throwaway gateway for benchmarks: an embedded Redis of its own (so a benchmark
never touches an operator's Redis), SQLite in a temporary ``SMSAGG_HOME``, one
provisioned account, and real ``smsagg`` processes started and stopped around it.

Benchmarks use only the gateway's runtime dependencies and the standard library
(``FormClient`` is ``http.client`` on a kept-alive connection), so ``smsagg bench``
works from ``pip install .`` alone."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from app.db import migrate
from app.db.session import session_scope
from app.embedded_redis import start_embedded_redis
from app.services import accounts as svc
from app.services.accounts import AccountOptions

BENCH_LOGIN, BENCH_PASSWORD, BENCH_SENDER, BENCH_CARRIER = "bench", "bench-password", "12345", 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(group: int) -> float:
    """User + system CPU of every live process in process group ``group``."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as stat:
                fields = stat.read().rsplit(b")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == group:  # fields after "(comm)": state, ppid, pgrp, ..., utime, stime
            total += int(fields[11]) + int(fields[12])
    return total / _CLOCK_TICKS


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class FormClient:
    """POSTs ``application/x-www-form-urlencoded`` forms to one server on one
    kept-alive connection. A connection the server closed while idle is reopened once
    (``reconnect=True``); a benchmark that counts every outcome (a second submit of a
    message whose first answer was lost would be a duplicate) passes ``reconnect=False``
    and sees the error."""

    def __init__(self, url: str, timeout: float = 30.0, *, reconnect: bool = True) -> None:
        parts = urlsplit(url)
        self._connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=timeout)
        self._reconnect = reconnect

    def post(self, path: str, fields: dict[str, str]) -> str:
        """The reply's body."""
        return self.exchange(path, fields)[1]

    def exchange(self, path: str, fields: dict[str, str]) -> tuple[int, str]:
        """The reply's HTTP status and body. Raises ``OSError`` or
        ``http.client.HTTPException`` when the connection fails (it is closed then)."""
        body = urlencode(fields)
        try:
            return self._send(path, body)
        except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
            self._connection.close()
            if not self._reconnect:
                raise
            return self._send(path, body)  # the server closed the idle connection: one new one
        except (OSError, http.client.HTTPException):
            self._connection.close()
            raise

    def _send(self, path: str, body: str) -> tuple[int, str]:
        self._connection.request("POST", path, body=body,
                                 headers={"Content-Type": "application/x-www-form-urlencoded"})
        reply = self._connection.getresponse()
        return reply.status, reply.read().decode()

    def close(self) -> None:
        self._connection.close()


class BenchGateway:
    """``with BenchGateway() as gw: gw.start("web", ...)``; everything is removed after."""

    def __init__(self) -> None:
        self._stack = ExitStack()
        self.home = Path(tempfile.mkdtemp(prefix="smsagg-bench-"))
        # SQLite by default, like ``smsagg up``; SMSAGG_BENCH_DATABASE_URL names an empty
        # database to measure another one (e.g. PostgreSQL, as in production).
        self.database_url = os.environ.get("SMSAGG_BENCH_DATABASE_URL") or f"sqlite:///{self.home / 'smsagg.db'}"
        self.redis_port = free_port()
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.key_prefix = "smsagg:"
        self.logs: dict[int, Path] = {}

    def __enter__(self) -> "BenchGateway":
        redis = start_embedded_redis(self.home / "redis", self.redis_port)
        self._stack.callback(self._stop, redis)
        migrate.upgrade(self.database_url)
        with session_scope(self.database_url) as session:
            svc.create_account(session, BENCH_LOGIN, BENCH_PASSWORD, senders=(BENCH_SENDER,),
                               options=AccountOptions(), default_max_length=1600)
            svc.add_carrier(session, BENCH_CARRIER, "bench-sink", connector="http",
                            settings={"url": "http://127.0.0.1:9"}, throughput=None)
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()
        shutil.rmtree(self.home, ignore_errors=True)

    def environment(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
        env.update({"SMSAGG_HOME": str(self.home), "SMSAGG_REDIS_URL": self.redis_url,
                    "SMSAGG_DATABASE_URL": self.database_url, "SMSAGG_REDIS_PREFIX": self.key_prefix,
                    "SMSAGG_LOG_LEVEL": "WARNING", **extra})
        return env

    def start(self, *args: str, module: str = "app.cli", **extra_env: str) -> subprocess.Popen:
        """Start ``python -m <module> <args>`` (default: ``smsagg <args>``); it is
        stopped when the gateway closes. Its output goes to ``self.log_path(process)``."""
        log_path = self.home / f"{args[0]}-{len(self._stack._exit_callbacks)}.log"
        log = open(log_path, "wb")
        process = subprocess.Popen([sys.executable, "-m", module, *args], env=self.environment(**extra_env),
                                   stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.logs[process.pid] = log_path
        self._stack.callback(log.close)
        self._stack.callback(self._stop, process)
        return process

    @staticmethod
    def _stop(process: subprocess.Popen) -> None:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
