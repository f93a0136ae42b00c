"""Where a running ``smsagg up`` lives, so commands typed in another terminal find it.

``smsagg up`` claims its ``SMSAGG_HOME`` with an exclusive ``flock`` on ``run.lock``
for its whole life: a second ``smsagg up`` on the same home is refused (the run file
alone would race). Once its parts are started it writes ``run.json`` (a temporary file
renamed over the old one, so a reader never sees half a file; mode 0600, since a
database URL may carry a password): its pid and start time, the Redis, database and
ingress URLs, the key prefix, the SMSC simulator's SMPP and control ports, the MMSC
simulator's URL, and each part's pid (rewritten when a part is restarted). It removes
the file on the way out.

:func:`find_running` is the only reader. The lock, not the pid, says whether the
gateway is alive (a pid can be reused; a lock dies with its process): a run file that
nobody holds the lock for was left by a gateway that crashed or was killed. It is
ignored and removed (under the lock, so a starting ``smsagg up`` never loses its new
file), and the reason is returned for the caller to print.
"""

from __future__ import annotations

import dataclasses
import errno
import fcntl
import json
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

RUN_FILE = "run.json"
LOCK_FILE = "run.lock"
# How long a second ``smsagg up`` retries the lock: a command probing it holds it for
# a moment (a shared lock while it reads the run file).
CLAIM_WAIT_SECONDS = 2.0


class HomeInUse(RuntimeError):
    """Another ``smsagg up`` holds this ``SMSAGG_HOME``."""


@dataclass(frozen=True)
class RunInfo:
    """What a running ``smsagg up`` tells the commands typed beside it."""

    pid: int
    started_at: float
    redis_url: str
    redis_embedded: bool
    database_url: str
    key_prefix: str
    web_url: str
    smsc_sim_port: int | None = None
    smsc_sim_control_port: int | None = None
    mmsc_sim_url: str | None = None
    parts: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)

    @classmethod
    def from_json(cls, text: str) -> "RunInfo":
        """Raises ``ValueError`` for anything but a run file this version wrote."""
        try:
            data = json.loads(text)
            return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})
        except (TypeError, KeyError, json.JSONDecodeError) as exc:
            raise ValueError(f"not a run file: {exc}") from exc


@dataclass(frozen=True)
class Lookup:
    """The gateway running on a home, if any, and why a run file found was not used."""

    gateway: RunInfo | None
    note: str = ""


def run_file(home: Path) -> Path:
    return home / RUN_FILE


def write(home: Path, info: RunInfo) -> None:
    """Replace the run file atomically."""
    target = run_file(home)
    temporary = target.with_name(f".{RUN_FILE}.{os.getpid()}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(info.to_json())
        out.flush()
        os.fsync(out.fileno())
    os.replace(temporary, target)


def remove(home: Path) -> None:
    run_file(home).unlink(missing_ok=True)


class HomeClaim:
    """``smsagg up``'s exclusive hold on its home, from :meth:`acquire` to :meth:`release`."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self._file = None

    def acquire(self, wait_seconds: float = CLAIM_WAIT_SECONDS) -> str:
        """Take the lock, or raise :class:`HomeInUse` naming the gateway that holds it.
        Returns a note when it removed the run file of a gateway that is gone."""
        self.home.mkdir(parents=True, exist_ok=True)
        lock = open(self.home / LOCK_FILE, "a+b")  # noqa: SIM115 (held until release)
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    lock.close()
                    raise HomeInUse(_in_use_message(self.home)) from None
                time.sleep(0.05)
        self._file = lock
        return _discard_stale(self.home)

    def release(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def _in_use_message(home: Path) -> str:
    try:
        info = RunInfo.from_json(run_file(home).read_text())
        holder = f"pid {info.pid}, ingress {info.web_url}"
    except (OSError, ValueError):
        holder = "it is starting"
    return f"another smsagg up is running on SMSAGG_HOME={home} ({holder}); stop it first or use another home"


def _discard_stale(home: Path) -> str:
    """Remove the run file a dead gateway left (the caller holds the lock)."""
    path = run_file(home)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return ""
    path.unlink(missing_ok=True)
    try:
        info = RunInfo.from_json(text)
    except ValueError:
        return f"removed {path}: it was not a run file smsagg wrote"
    started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(info.started_at))
    return f"removed the stale {path}: the gateway that wrote it (pid {info.pid}, started {started}) is no longer running"


def find_running(home: Path) -> Lookup:
    """The ``smsagg up`` that holds ``home``, from its run file."""
    path = run_file(home)
    if not path.exists():
        return Lookup(None)
    descriptor = os.open(home / LOCK_FILE, os.O_RDONLY | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # a starting smsagg up waits for this
        except BlockingIOError:
            return _read_live(path)
        return Lookup(None, _discard_stale(home))
    finally:
        os.close(descriptor)


def _read_live(path: Path) -> Lookup:
    try:
        info = RunInfo.from_json(path.read_text())
    except FileNotFoundError:
        return Lookup(None, f"a gateway is starting on SMSAGG_HOME={path.parent}; try again in a moment")
    except ValueError as exc:
        return Lookup(None, f"ignored {path}: {exc}")
    if not _alive(info.pid):
        return Lookup(None, f"a gateway is starting on SMSAGG_HOME={path.parent}; try again in a moment")
    return Lookup(info)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError as exc:
        return exc.errno == errno.EPERM
    return True
