"""HTTP/1.1 load generator for ``smsagg bench``.

What it promises
----------------
- ``run_load(url, make_request, ...)`` opens ``concurrency`` keep-alive connections to a plain
  ``http://`` URL and sends requests on each one back to back: one request in flight per
  connection, no pipelining. It blocks, running its own event loop, and returns a ``LoadResult``.
- Each request comes from the caller's ``make_request(i) -> RequestSpec``, called once per
  request with an index unique within the run (0, 1, 2, ...; with several processes, process p
  gets p, p+P, p+2P, ...), so every request can carry its own message_id. An index whose request
  failed is not reused. The generator adds Host, Content-Type (when the spec names one), the
  spec's own header lines and Content-Length; the Host line is encoded once per run.
- Responses are parsed minimally but correctly: status line, Content-Length, chunked transfer
  coding, bodies delimited by the server closing the connection, no body for HEAD/204/304, and
  the keep-alive rules of HTTP/1.0 and 1.1. A response that ends the connection (``Connection:
  close``, HTTP/1.0 without keep-alive, close-delimited body) makes the next request reconnect.
  Interim 1xx responses are not handled: the generator never sends ``Expect``.
- A failed request (refused or reset connection, the server closing mid-response, no complete
  response within ``timeout`` seconds, a malformed response) is tallied under the exception's
  class name; that connection is then closed and reopened after ``RECONNECT_PAUSE`` seconds, so
  a dead server gives a bounded rate of errors, never a hang.
- Time: the run lasts at most ``seconds`` of wall time, the first ``warmup`` of them included.
  Requests still in flight at the end are abandoned uncounted. ``max_requests`` (optional) ends
  the run early once that many requests have been issued, the warm-up's included.
- Every figure in ``LoadResult`` covers the measured window only (after the warm-up), except
  ``warmup_requests`` and ``connections_opened``, which cover the whole run.
- The generator's own CPU is measured per process as the event-loop thread's CPU time
  (``time.thread_time()``, which equals ``time.process_time()`` in a generator process and
  stays correct when the caller's process runs other threads, such as a test server).
  ``cpu_percent`` is of one core, summed over processes.
- ``processes=N`` runs N spawned processes (``make_request`` must then be picklable: a
  module-level function, ``functools.partial`` or a small class instance), splitting connections
  and ``max_requests`` between them; they start their clocks together behind a barrier and their
  tallies are merged.
- ``run_wrk`` runs ``wrk`` (when ``wrk_available()``) and returns the same ``LoadResult`` shape:
  wrk reports neither status nor body tallies nor connection counts, so those are empty/None.

Measured on this machine (2 cores shared with other work, so figures swing +-40% from run to
run; Python 3.11; 64 connections; a form POST carrying a unique message_id; the server a minimal
asyncio one in its own process answering a fixed 13-byte body):
- one generator process: 20-37k req/s at ~100% of one core, 26-49 us of CPU per request;
- ``processes=2``: 44-47k req/s at ~70% of one core each (the server shares the same 2 cores);
- ``wrk -t1`` against the same server: 52-92k req/s.
Against the same server made to burn 150 us of CPU per request (a ~5.5k req/s ceiling, like the
Python WSGI servers in DESIGN.md): this generator 4.6-5.5k req/s using 50-60% of one core
(~100 us per request: at such rates every response is a wake-up of its own); ``wrk`` 5.4-5.6k
req/s using ~15%. So the generator does not cap such a server, but it does take about half a
core that a server able to use both cores (gunicorn with 2 workers) would otherwise get: for
that server's headline rate prefer ``run_wrk``, and use ``run_load`` for the status and body
tallies.
"""

from __future__ import annotations

import asyncio
import dataclasses
import math
import multiprocessing
import re
import resource
import shutil
import socket
import subprocess
import tempfile
import time
from array import array
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from multiprocessing.synchronize import Barrier
from typing import Callable, NamedTuple
from urllib.parse import urlsplit

RECONNECT_PAUSE = 0.05
"""Seconds a connection waits after a failed request before it reconnects."""
BODY_KEY_BYTES = 200
"""Bodies are tallied by their first this-many bytes."""
MAX_DISTINCT_BODIES = 1000
"""A process tallies at most this many distinct bodies; later new ones count as other bodies."""
TOP_BODIES = 10
"""How many distinct bodies a LoadResult lists, most common first."""
START_BARRIER_TIMEOUT = 60.0
"""Seconds generator processes wait for each other to start."""

@dataclass(frozen=True, slots=True)
class RequestSpec:
    """One request to send. ``path`` includes any query string."""

    method: str
    path: str
    body: bytes = b""
    content_type: str = "application/x-www-form-urlencoded"
    headers: str = ""  # further header lines, each ending in CRLF (e.g. Authorization)


RequestFactory = Callable[[int], RequestSpec]


class ProtocolError(Exception):
    """The server's answer is not a well-formed HTTP/1.x response."""


class Response(NamedTuple):
    status: int
    body: bytes
    keep_alive: bool


# ---------------------------------------------------------------------------------------------
# Wire format
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """Where to connect, and the Host header line to send there."""

    host: str
    port: int
    host_line: str


def parse_url(url: str) -> Target:
    parts = urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ValueError(f"only plain http://host[:port] URLs are supported, got {url!r}")
    port = parts.port or 80
    return Target(parts.hostname, port, f"Host: {parts.netloc}\r\n")


def encode_request(spec: RequestSpec, host_line: str) -> bytes:
    content_type = f"Content-Type: {spec.content_type}\r\n" if spec.content_type else ""
    head = (
        f"{spec.method} {spec.path} HTTP/1.1\r\n{host_line}{content_type}{spec.headers}"
        f"Content-Length: {len(spec.body)}\r\n\r\n"
    )
    return head.encode("latin-1") + spec.body


async def read_response(reader: asyncio.StreamReader, head_request: bool = False) -> Response:
    """Read one complete response; ``head_request`` says it answers a HEAD (so has no body)."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *header_lines = head[:-4].split(b"\r\n")
    version, status = _parse_status_line(status_line)
    headers = _parse_headers(header_lines)
    keep_alive = _keeps_alive(version, headers.get(b"connection", b""))
    if head_request or status in (204, 304):
        return Response(status, b"", keep_alive)
    if b"chunked" in headers.get(b"transfer-encoding", b"").lower():
        return Response(status, await _read_chunked(reader), keep_alive)
    if b"content-length" in headers:
        length = _parse_int(headers[b"content-length"], 10)
        return Response(status, await reader.readexactly(length), keep_alive)
    return Response(status, await reader.read(), False)


def _parse_status_line(line: bytes) -> tuple[bytes, int]:
    if not line.startswith(b"HTTP/1.") or len(line) < 12:
        raise ProtocolError(f"bad status line {line[:80]!r}")
    return line[:8], _parse_int(line[9:12], 10)


def _parse_headers(lines: list[bytes]) -> dict[bytes, bytes]:
    headers = {}
    for line in lines:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    return headers


def _keeps_alive(version: bytes, connection: bytes) -> bool:
    tokens = connection.lower()
    if version == b"HTTP/1.0":
        return b"keep-alive" in tokens
    return b"close" not in tokens


async def _read_chunked(reader: asyncio.StreamReader) -> bytes:
    chunks = []
    while size := _parse_int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
        chunks.append((await reader.readexactly(size + 2))[:-2])
    while await reader.readuntil(b"\r\n") != b"\r\n":  # trailer fields, then the blank line
        pass
    return b"".join(chunks)


def _parse_int(text: bytes, base: int) -> int:
    try:
        return int(text.strip(), base)
    except ValueError:
        raise ProtocolError(f"bad number {text[:40]!r}") from None


# ---------------------------------------------------------------------------------------------
# One process's run
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessShare:
    """What one generator process does: its connections, its request indexes, its clock."""

    url: str
    make_request: RequestFactory
    connections: int
    seconds: float
    warmup: float
    timeout: float
    first_index: int = 0
    index_step: int = 1
    max_requests: int | None = None


@dataclass
class Tally:
    """One process's counts; picklable, merged by ``summarize``."""

    responses: int = 0
    status_counts: Counter = field(default_factory=Counter)
    body_counts: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    latencies_ms: array = field(default_factory=lambda: array("d"))
    warmup_requests: int = 0
    connections_opened: int = 0
    window_seconds: float = 0.0
    cpu_seconds: float = 0.0
    wall_seconds: float = 0.0

    def counts_at(self, now: float, clock: Clock) -> bool:
        """Whether an outcome at ``now`` is in the measured window; tallies warm-up ones."""
        if now < clock.measure_from:
            self.warmup_requests += 1
            return False
        return now <= clock.deadline

    def record_response(self, response: Response, latency_ms: float) -> None:
        self.responses += 1
        self.status_counts[response.status] += 1
        key = response.body[:BODY_KEY_BYTES]
        if key in self.body_counts or len(self.body_counts) < MAX_DISTINCT_BODIES:
            self.body_counts[key] += 1
        self.latencies_ms.append(latency_ms)


class Clock:
    """The run's time frame, in event-loop time."""

    def __init__(self, start: float, share: ProcessShare):
        self.measure_from = start + share.warmup
        self.deadline = start + share.seconds

    def measured_seconds(self, end: float) -> float:
        return max(0.0, min(end, self.deadline) - self.measure_from)


class IndexIssuer:
    """Hands out this process's request indexes until ``max_requests`` is reached."""

    def __init__(self, share: ProcessShare):
        self.next_index = share.first_index
        self.step = share.index_step
        self.remaining = math.inf if share.max_requests is None else share.max_requests

    def issue(self) -> int | None:
        if self.remaining <= 0:
            return None
        self.remaining -= 1
        index, self.next_index = self.next_index, self.next_index + self.step
        return index


REQUEST_ERRORS = (
    OSError,
    TimeoutError,
    asyncio.IncompleteReadError,
    asyncio.LimitOverrunError,
    ProtocolError,
)


async def _drive_connection(
    share: ProcessShare, address: tuple[str, int], host_line: str,
    clock: Clock, issuer: IndexIssuer, tally: Tally,
) -> None:
    loop = asyncio.get_running_loop()
    stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
    try:
        while (index := issuer.issue()) is not None:
            spec = share.make_request(index)
            payload = encode_request(spec, host_line)
            started = loop.time()
            try:
                async with asyncio.timeout(share.timeout):
                    if stream is None:
                        stream = await asyncio.open_connection(*address)
                        tally.connections_opened += 1
                    stream[1].write(payload)
                    response = await read_response(stream[0], spec.method == "HEAD")
            except REQUEST_ERRORS as error:
                _close(stream)
                stream = None
                if tally.counts_at(loop.time(), clock):
                    tally.errors[type(error).__name__] += 1
                await asyncio.sleep(RECONNECT_PAUSE)
                continue
            finished = loop.time()
            if tally.counts_at(finished, clock):
                tally.record_response(response, (finished - started) * 1000.0)
            if not response.keep_alive:
                _close(stream)
                stream = None
    finally:
        _close(stream)


def _close(stream: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
    if stream is not None:
        stream[1].close()


def _resolve(target: Target) -> tuple[str, int]:
    """Resolve the host once, so reconnects never wait on name lookups."""
    *_, sockaddr = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)[0]
    return sockaddr[0], sockaddr[1]


async def _drive(share: ProcessShare) -> Tally:
    target = parse_url(share.url)
    address = _resolve(target)
    loop = asyncio.get_running_loop()
    clock, issuer, tally = Clock(loop.time(), share), IndexIssuer(share), Tally()
    tasks = [
        asyncio.create_task(_drive_connection(share, address, target.host_line, clock, issuer, tally))
        for _ in range(share.connections)
    ]
    done, pending = await asyncio.wait(tasks, timeout=max(0.0, clock.deadline - loop.time()))
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    for task in done:
        task.result()  # re-raise what is not a request error, such as a failing make_request
    tally.window_seconds = clock.measured_seconds(loop.time())
    return tally


def run_share(share: ProcessShare) -> Tally:
    """Run one process's share of the load on a new event loop, timing its CPU."""
    cpu_started, wall_started = time.thread_time(), time.monotonic()
    tally = asyncio.run(_drive(share))
    tally.cpu_seconds = time.thread_time() - cpu_started
    tally.wall_seconds = time.monotonic() - wall_started
    return tally


# ---------------------------------------------------------------------------------------------
# Several processes
# ---------------------------------------------------------------------------------------------

_start_barrier: Barrier | None = None


def _remember_start_barrier(barrier: Barrier) -> None:
    global _start_barrier
    _start_barrier = barrier


def _run_share_after_barrier(share: ProcessShare) -> Tally:
    _start_barrier.wait(START_BARRIER_TIMEOUT)
    return run_share(share)


def split_share(share: ProcessShare, processes: int) -> list[ProcessShare]:
    """Divide connections and max_requests; interleave indexes so they stay unique."""

    def portion(total: int, p: int) -> int:
        return total // processes + (p < total % processes)

    return [
        dataclasses.replace(
            share,
            connections=portion(share.connections, p),
            first_index=p,
            index_step=processes,
            max_requests=None if share.max_requests is None else portion(share.max_requests, p),
        )
        for p in range(processes)
    ]


def _run_in_processes(shares: list[ProcessShare]) -> list[Tally]:
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(len(shares))
    with ProcessPoolExecutor(
        len(shares), mp_context=context,
        initializer=_remember_start_barrier, initargs=(barrier,),
    ) as pool:
        return list(pool.map(_run_share_after_barrier, shares))


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Latency:
    p50: float
    p90: float
    p99: float
    max: float


@dataclass(frozen=True)
class LoadResult:
    """What a run measured; see the module docstring for which window each figure covers."""

    tool: str
    requests: int
    seconds: float
    requests_per_second: float
    status_counts: dict[int, int]
    body_counts: dict[str, int]
    """The TOP_BODIES most common bodies (first BODY_KEY_BYTES bytes), most common first."""
    other_bodies: int
    """Responses whose body is not listed in body_counts."""
    errors: dict[str, int]
    latency_ms: Latency
    cpu_seconds: float
    cpu_percent: float
    process_cpu_percent: tuple[float, ...]
    warmup_requests: int
    connections_opened: int | None

    def as_dict(self) -> dict:
        return dataclasses.asdict(self)


def percentile(sorted_values, fraction: float) -> float:
    """Nearest-rank percentile of an ascending sequence; 0.0 when it is empty."""
    if not sorted_values:
        return 0.0
    return sorted_values[max(0, math.ceil(fraction * len(sorted_values)) - 1)]


def summarize(tallies: list[Tally]) -> LoadResult:
    latencies = sorted(value for tally in tallies for value in tally.latencies_ms)
    bodies = sum((tally.body_counts for tally in tallies), Counter())
    top_bodies = {body.decode("utf-8", "replace"): n for body, n in bodies.most_common(TOP_BODIES)}
    responses = sum(tally.responses for tally in tallies)
    per_process_percent = tuple(_percent(tally.cpu_seconds, tally.wall_seconds) for tally in tallies)
    return LoadResult(
        tool="smsagg-loadgen",
        requests=responses,
        seconds=max(tally.window_seconds for tally in tallies),
        requests_per_second=sum(
            tally.responses / tally.window_seconds for tally in tallies if tally.window_seconds
        ),
        status_counts=dict(sorted(sum((t.status_counts for t in tallies), Counter()).items())),
        body_counts=top_bodies,
        other_bodies=responses - sum(top_bodies.values()),
        errors=dict(sum((tally.errors for tally in tallies), Counter())),
        latency_ms=Latency(*(percentile(latencies, q) for q in (0.5, 0.9, 0.99, 1.0))),
        cpu_seconds=sum(tally.cpu_seconds for tally in tallies),
        cpu_percent=sum(per_process_percent),
        process_cpu_percent=per_process_percent,
        warmup_requests=sum(tally.warmup_requests for tally in tallies),
        connections_opened=sum(tally.connections_opened for tally in tallies),
    )


def _percent(cpu_seconds: float, wall_seconds: float) -> float:
    return 100.0 * cpu_seconds / wall_seconds if wall_seconds else 0.0


def run_load(
    url: str,
    make_request: RequestFactory,
    *,
    concurrency: int = 64,
    seconds: float = 10.0,
    warmup: float = 1.0,
    processes: int = 1,
    timeout: float = 5.0,
    max_requests: int | None = None,
) -> LoadResult:
    """Load ``url`` with requests from ``make_request`` and measure; see the module docstring."""
    if not 0 <= warmup < seconds:
        raise ValueError("need 0 <= warmup < seconds")
    if not 1 <= processes <= concurrency:
        raise ValueError("need 1 <= processes <= concurrency")
    parse_url(url)
    share = ProcessShare(url, make_request, concurrency, seconds, warmup, timeout,
                         max_requests=max_requests)
    if processes == 1:
        return summarize([run_share(share)])
    return summarize(_run_in_processes(split_share(share, processes)))


def format_result(result: LoadResult) -> str:
    lat = result.latency_ms
    lines = [
        f"{result.tool}: {result.requests} responses in {result.seconds:.2f} s "
        f"= {result.requests_per_second:,.0f} req/s "
        f"(+{result.warmup_requests} during warm-up)",
        f"latency ms: p50 {lat.p50:.2f}  p90 {lat.p90:.2f}  p99 {lat.p99:.2f}  max {lat.max:.2f}",
        "status: " + (", ".join(f"{code} x{n}" for code, n in result.status_counts.items()) or "-"),
        "errors: " + (", ".join(f"{kind} x{n}" for kind, n in result.errors.items()) or "none"),
        f"generator CPU: {result.cpu_seconds:.2f} s = {result.cpu_percent:.0f}% of one core"
        + (f" (per process: {', '.join(f'{p:.0f}%' for p in result.process_cpu_percent)})"
           if len(result.process_cpu_percent) > 1 else ""),
    ]
    if result.connections_opened is not None:
        lines.append(f"connections opened: {result.connections_opened}")
    lines += [f"body x{n}: {body!r}" for body, n in result.body_counts.items()]
    if result.other_bodies:
        lines.append(f"other bodies: {result.other_bodies}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# wrk
# ---------------------------------------------------------------------------------------------

_WRK_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
_WRK_DURATION = r"([\d.]+)(us|ms|s|m|h)"


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(url: str, lua_script_text: str, seconds: float, connections: int, threads: int,
            timeout: float = 5.0) -> LoadResult:
    """Run wrk (whole seconds, no warm-up) with the given Lua script; CPU is wrk's own.

    Raises ``subprocess.CalledProcessError`` when wrk fails, e.g. cannot connect at all.
    """
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(lua_script_text)
        script.flush()
        command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, math.ceil(seconds))}s",
                   f"--timeout={max(1, math.ceil(timeout))}s", "--latency", "-s", script.name, url]
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_seconds = (children_after.ru_utime + children_after.ru_stime
                   - children_before.ru_utime - children_before.ru_stime)
    return parse_wrk_output(output, cpu_seconds)


def parse_wrk_output(output: str, cpu_seconds: float = 0.0) -> LoadResult:
    total = re.search(r"(\d+) requests in " + _WRK_DURATION, output)
    if total is None:
        raise ValueError(f"not wrk output: {output[:200]!r}")
    window_seconds = _wrk_ms(total.group(2), total.group(3)) / 1000.0
    cpu_percent = _percent(cpu_seconds, window_seconds)
    return LoadResult(
        tool="wrk",
        requests=int(total.group(1)),
        seconds=window_seconds,
        requests_per_second=float(re.search(r"Requests/sec:\s*([\d.]+)", output).group(1)),
        status_counts={},
        body_counts={},
        other_bodies=0,
        errors=_wrk_errors(output),
        latency_ms=Latency(
            *(_wrk_latency(output, rf"^\s+{q}%\s+" + _WRK_DURATION) for q in (50, 90, 99)),
            _wrk_latency(output, r"^\s+Latency[ \t]+\S+[ \t]+\S+[ \t]+" + _WRK_DURATION),
        ),
        cpu_seconds=cpu_seconds,
        cpu_percent=cpu_percent,
        process_cpu_percent=(cpu_percent,),
        warmup_requests=0,
        connections_opened=None,
    )


def _wrk_ms(number: str, unit: str) -> float:
    return float(number) * _WRK_UNITS[unit]


def _wrk_latency(output: str, pattern: str) -> float:
    found = re.search(pattern, output, re.MULTILINE)
    return _wrk_ms(*found.groups()) if found else 0.0


def _wrk_errors(output: str) -> dict[str, int]:
    errors = {}
    socket_errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    if socket_errors:
        for kind, count in zip(("connect", "read", "write", "timeout"), socket_errors.groups()):
            if int(count):
                errors[kind] = int(count)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non_2xx:
        errors["non-2xx/3xx"] = int(non_2xx.group(1))
    return errors
