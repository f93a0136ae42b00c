"""Processes of ``smsagg bench peers``: started with their output in the run's folder,
stopped each by its own pid, and measured from ``/proc`` (Linux).

* ``Processes.spawn`` starts a command in a session of its own; ``stop`` sends SIGTERM
  to that pid alone and SIGKILL after a timeout; ``stop_all`` stops every one still
  running, newest first. A pid is only signalled while the process it named is alive
  with the start time it had (a reused pid is never hit).
* ``cpu_ticks`` / ``ProcessSnapshot``: utime + stime of processes, and the tree of
  descendants of a pid with their command lines, from ``/proc/<pid>/stat``.
* ``listening_addresses(pids)``: the TCP addresses those processes listen on, from
  ``/proc/net/tcp{,6}`` and their file descriptors, to prove everything is on loopback.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pid: int) -> int | None:
    """utime + stime of a live process, in clock ticks; None once it is gone."""
    fields = _stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[11]) + int(fields[12])


def cpu_seconds(pid: int) -> float:
    return (cpu_ticks(pid) or 0) / CLOCK_TICKS


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def alive(pid: int, started: int | None) -> bool:
    fields = _stat_fields(pid)
    return fields is not None and fields[0] not in ("Z", "X") and int(fields[19]) == started


def host_cpu_ticks() -> tuple[int, int]:
    """(busy, total) clock ticks of the whole host since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:9]]
    idle = values[3] + values[4]  # idle + iowait
    return sum(values) - idle, sum(values)


def host_busy_percent(before: tuple[int, int], after: tuple[int, int], cores: int) -> float:
    """How busy the host was between two readings, 100 per core."""
    total = after[1] - before[1]
    return 100.0 * cores * (after[0] - before[0]) / total if total > 0 else 0.0


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    started: int
    cmdline: str


def process_table() -> dict[int, ProcessInfo]:
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode("utf-8", "replace").strip()
        except OSError:
            continue
        if fields is not None:
            table[int(entry)] = ProcessInfo(int(entry), int(fields[1]), int(fields[19]), cmdline)
    return table


def descendants(root: int, table: dict[int, ProcessInfo] | None = None) -> list[ProcessInfo]:
    table = process_table() if table is None else table
    children = defaultdict(list)
    for info in table.values():
        children[info.ppid].append(info)
    found, todo = [], [root]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child.pid)
    return found


def listening_addresses(pids: set[int]) -> list[str]:
    """``["127.0.0.1:8080", ...]``: the TCP sockets in LISTEN state held by ``pids``."""
    inodes = set()
    for pid in pids:
        with_fds = Path(f"/proc/{pid}/fd")
        try:
            for fd in with_fds.iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                found.append(decode_proc_address(fields[1]))
    return sorted(set(found))


def decode_proc_address(value: str) -> str:
    """``0100007F:1F90`` -> ``127.0.0.1:8080`` (IPv6 too), as /proc/net/tcp writes them."""
    address, port = value.split(":")
    raw = bytes.fromhex(address)
    words = [raw[i:i + 4][::-1] for i in range(0, len(raw), 4)]  # each 32-bit word is host-endian
    packed = b"".join(words)
    if len(packed) == 4:
        host = ".".join(str(b) for b in packed)
    elif packed[:12] == b"\0" * 10 + b"\xff\xff":
        host = ".".join(str(b) for b in packed[12:])
    else:
        host = "[" + ":".join(packed[i:i + 2].hex() for i in range(0, 16, 2)) + "]"
    return f"{host}:{int(port, 16)}"


def is_loopback(address: str) -> bool:
    host = address.rsplit(":", 1)[0]
    return host.startswith("127.") or host == "[0000:0000:0000:0000:0000:0000:0000:0001]"


class CpuMeter:
    """CPU seconds per named group of pids, cumulative; a pid that is gone keeps the
    last value read for it."""

    def __init__(self, groups: dict[str, list[int]]):
        self.groups = groups
        self._last: dict[int, int] = {}

    def sample(self) -> dict[str, float]:
        totals = {}
        for name, pids in self.groups.items():
            ticks = 0
            for pid in pids:
                now = cpu_ticks(pid)
                if now is not None:
                    self._last[pid] = now
                ticks += self._last.get(pid, 0)
            totals[name] = ticks / CLOCK_TICKS
        return totals


def spent(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before.get(name, 0.0) for name in after}


class Processes:
    """What one run started; each stopped by its own pid."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.started: list[subprocess.Popen] = []

    def spawn(self, name: str, command: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        with open(self.folder / f"{name}.log", "ab") as log:
            process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       env=env, cwd=self.folder, start_new_session=True)
        self.started.append(process)
        return process

    def log_tail(self, name: str, size: int = 2000) -> str:
        path = self.folder / f"{name}.log"
        return path.read_bytes()[-size:].decode("utf-8", "replace") if path.exists() else ""

    def stop(self, process: subprocess.Popen, timeout: float = 30.0) -> float:
        """SIGTERM to the process alone, then SIGKILL; seconds it took."""
        began = time.monotonic()
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
        return time.monotonic() - began

    def stop_all(self) -> None:
        for process in reversed(self.started):
            self.stop(process)

    @staticmethod
    def stop_leftovers(leftovers: list[ProcessInfo], timeout: float = 10.0) -> list[ProcessInfo]:
        """Stop, by pid, processes that outlived their parent; returns those that did."""
        outlived = [info for info in leftovers if alive(info.pid, info.started)]
        for info in outlived:
            os.kill(info.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and any(alive(i.pid, i.started) for i in outlived):
            time.sleep(0.1)
        for info in outlived:
            if alive(info.pid, info.started):
                os.kill(info.pid, signal.SIGKILL)
        return outlived
