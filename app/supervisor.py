"""``smsagg up``: every part of the gateway as child processes of one foreground
command, on embedded defaults, kept running the way systemd's ``Restart=always`` or
supervisord would.

Parts: an embedded Redis (unless ``SMSAGG_REDIS_URL`` is set; on ``--redis-port``, or a
free port), the SQLite schema brought up to date, the SMSC and MMSC simulators (unless
``--no-smsc-sim``; on a fresh gateway: carriers 1 and 2 with a catch-all route, so a
first SMS and MMS go out and their receipts come back), the ingress, the GMS CometD
server, one worker for the interactive queues, one for the bulk queues, one for inbound,
two for callbacks (sending and recording callbacks is the busiest stage), and beat.

Before it starts anything it claims ``SMSAGG_HOME`` (``app.runfile``: a second
``smsagg up`` on the same home is refused) and checks that the ports of the ingress, the
CometD server and the simulators are free; once the parts run it writes the run file through which commands typed
in another terminal find this gateway, and removes it on the way out.

Supervision (:class:`Supervisor`): a part that dies is logged with its exit status (or
the signal that killed it) and started again after a backoff, 1 s doubling up to 30 s,
back to 1 s once it has stayed up for a minute. A part that dies 5 times within 60 s is
broken rather than unlucky: the gateway stops, exit status 1. (Those numbers are
``SMSAGG_RESTART_DELAY_SECONDS``, ``SMSAGG_RESTART_LIMIT_BURST`` and
``SMSAGG_RESTART_LIMIT_SECONDS``.) The embedded Redis is a
part like the others; it comes back on the same port and data directory, and its
append-only file brings the data back. On Linux every part is also stopped when
``smsagg up`` itself dies (``PR_SET_PDEATHSIG``: SIGTERM for Redis, SIGKILL for the
others), so a killed ``smsagg up`` leaves no orphans holding its ports or Redis's data
directory. Ctrl-C or SIGTERM stops the parts,
then Redis last so it can flush its append-only file, and exits 0.
"""

from __future__ import annotations

import ctypes
import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from rich.console import Console

from app import runfile
from app.adapters.redis_scripts import connect
from app.db import migrate
from app.db.session import session_scope
from app.domain.priorities import BULK_QUEUES, CALLBACK_QUEUE, INBOUND_QUEUE, INTERACTIVE_QUEUES
from app.embedded_redis import start_embedded_redis
from app.services.accounts import ensure_simulator_carrier, mmsc_simulator_options
from app.settings import Settings

console = Console(highlight=False, soft_wrap=True)
STOP_TIMEOUT_SECONDS = 15
POLL_SECONDS = 0.2


class PortBusy(RuntimeError):
    """A port ``smsagg up`` needs is taken by another program."""


MAX_BACKOFF_SECONDS = 30.0


@dataclass(frozen=True)
class RestartPolicy:
    """When a dead part is started again, and when the gateway gives up on it. A part
    that stayed up for ``give_up_window`` starts its backoff from the first step again."""

    first_backoff: float = 1.0
    give_up_deaths: int = 5
    give_up_window: float = 60.0
    max_backoff: float = MAX_BACKOFF_SECONDS

    @classmethod
    def from_settings(cls, settings: Settings) -> "RestartPolicy":
        return cls(first_backoff=settings.restart_delay_seconds, give_up_deaths=settings.restart_limit_burst,
                   give_up_window=settings.restart_limit_seconds)

    def backoff(self, step: int) -> float:
        return min(self.max_backoff, self.first_backoff * 2**step)


class Part:
    """One supervised child process: how to start it, and its record of deaths."""

    def __init__(self, name: str, start: Callable[[], subprocess.Popen], *, stop_last: bool = False) -> None:
        self.name = name
        self.stop_last = stop_last
        self._start = start
        self.process: subprocess.Popen | None = None
        self.started_at = 0.0
        self.deaths: deque[float] = deque()
        self.backoff_step = 0
        self.restart_at: float | None = None

    def start(self, now: float) -> None:
        self.process = self._start()
        self.started_at, self.restart_at = now, None

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None


def describe_exit(returncode: int) -> str:
    if returncode < 0:
        try:
            return f"was killed by {signal.Signals(-returncode).name}"
        except ValueError:
            return f"was killed by signal {-returncode}"
    return f"exited with status {returncode}"


def _stamp() -> str:
    return time.strftime("%H:%M:%S")


def _print_plain(line: str) -> None:
    console.print(line, markup=False)  # exception texts may hold brackets


class Supervisor:
    """Keeps ``parts`` running until :meth:`request_stop`, or until one dies too often."""

    def __init__(self, policy: RestartPolicy = RestartPolicy(), *, log: Callable[[str], None] = _print_plain,
                 on_restart: Callable[[], None] = lambda: None, clock: Callable[[], float] = time.monotonic) -> None:
        self.parts: list[Part] = []
        self.policy = policy
        self.gave_up: Part | None = None
        self.on_restart = on_restart  # after a part was started again (smsagg up rewrites the run file)
        self._log = log
        self._clock = clock
        self._stop_requested = False

    def add(self, part: Part) -> None:
        """Start ``part`` and supervise it from now on."""
        part.start(self._clock())
        self.parts.append(part)

    def request_stop(self) -> None:
        """Safe from a signal handler: the loop notices within ``POLL_SECONDS``."""
        self._stop_requested = True

    @property
    def stop_requested(self) -> bool:
        return self._stop_requested

    def run(self) -> int:
        """Supervise until asked to stop (0) or until a part died too often (1)."""
        while not self._stop_requested and self.gave_up is None:
            self.check(self._clock())
            time.sleep(POLL_SECONDS)
        return 0 if self.gave_up is None else 1

    def check(self, now: float) -> None:
        """One round: record the parts found dead, start again those whose backoff is over."""
        for part in self.parts:
            if self._stop_requested or self.gave_up is not None:
                return
            if part.restart_at is not None:
                if now >= part.restart_at:
                    self._restart(part, now)
            elif part.process is not None and part.process.poll() is not None:
                self._died(part, f"(pid {part.process.pid}) {describe_exit(part.process.returncode)}", now)

    def _died(self, part: Part, how: str, now: float) -> None:
        policy = self.policy
        if now - part.started_at >= policy.give_up_window:
            part.backoff_step = 0
        part.deaths.append(now)
        while part.deaths and part.deaths[0] < now - policy.give_up_window:
            part.deaths.popleft()
        if len(part.deaths) >= policy.give_up_deaths:
            self._log(f"{_stamp()} {part.name} {how}: it died {len(part.deaths)} times within "
                      f"{policy.give_up_window:g} s; stopping the gateway")
            self.gave_up = part
            return
        delay = policy.backoff(part.backoff_step)
        part.backoff_step += 1
        part.restart_at = now + delay
        self._log(f"{_stamp()} {part.name} {how}; starting it again in {delay:g} s")

    def _restart(self, part: Part, now: float) -> None:
        try:
            part.start(now)
        except (OSError, RuntimeError) as exc:
            part.process, part.started_at = None, now
            self._died(part, f"could not start ({exc})", now)
            return
        self._log(f"{_stamp()} {part.name} started again (pid {part.process.pid})")
        self.on_restart()

    def stop(self) -> None:
        """SIGTERM every part, wait (then SIGKILL after ``STOP_TIMEOUT_SECONDS``); the
        ``stop_last`` parts (Redis) only once the others are gone."""
        _stop_together([p for p in self.parts if not p.stop_last])
        _stop_together([p for p in self.parts if p.stop_last])


def _stop_together(parts: list[Part]) -> None:
    running = [part.process for part in parts if part.running]
    for process in running:
        process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for process in running:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_PR_SET_PDEATHSIG = 1


def _dies_with_parent(signum: signal.Signals) -> Callable[[], None] | None:
    """A ``preexec_fn``: the kernel sends the child ``signum`` when ``smsagg up`` dies
    (Linux; elsewhere nothing)."""
    if sys.platform != "linux":
        return None
    return lambda: ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)


# Redis gets SIGTERM, so it flushes its append-only file. The other parts get SIGKILL: with
# smsagg up gone nobody stops them in order, and a worker told to stop politely while its
# Redis is stopping too keeps trying to reach it (seen: an orphan doing so for 30 minutes).
# Killed mid-task, they lose nothing: tasks are acked late and every stage is idempotent.
REDIS_CHILD_SETUP = _dies_with_parent(signal.SIGTERM)
CHILD_SETUP = _dies_with_parent(signal.SIGKILL)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "app.cli", *args]


def _worker(queues: tuple[str, ...], concurrency: int = 1) -> list[str]:
    """Thread pools: MT batches in flight share the process's SMPP binds (several
    submit_sm outstanding at once), and callbacks to one slow client cannot hold up
    the others. A few threads suffice: MT and inbound tasks drain batches."""
    pool = ["--pool", "threads", "--concurrency", str(concurrency)] if concurrency > 1 else []
    return _cli("worker", "--queues", ",".join(queues), *pool)


def _child_environment(settings: Settings, redis_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SMSAGG_HOME=str(settings.home.resolve()),
        SMSAGG_REDIS_URL=redis_url,
        SMSAGG_DATABASE_URL=settings.database_url,
        SMSAGG_REDIS_PREFIX=settings.key_prefix,
    )
    return env


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _refuse_busy_ports(ports: dict[str, tuple[str, int]]) -> None:
    """``{what: (host, port)}``: one clear error instead of a part dying on EADDRINUSE
    until the supervisor gives up."""
    for what, (host, port) in ports.items():
        with socket.socket() as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as exc:
                raise PortBusy(f"{what} port {host}:{port} is in use ({exc.strerror}): {_how_to_move(what)}") from None


def _how_to_move(what: str) -> str:
    return {"the ingress": "choose another with --port or SMSAGG_WEB_PORT",
            "the embedded Redis": "choose another with --redis-port (or leave it out: a free port is taken)",
            }.get(what, "choose another SMPP port with SMSAGG_SMSC_SIM_PORT (its control port is the next one), "
                        "or run with --no-smsc-sim")


def _banner(settings: Settings, info: runfile.RunInfo) -> None:
    embedded = f" (embedded, data in {settings.home / 'redis'})" if info.redis_embedded else ""
    console.print("[bold green]smsagg is up[/]")
    console.print(f"  ingress   {info.web_url}/httpapi/receiver")
    console.print(f"  redis     {info.redis_url}{embedded}")
    console.print(f"  database  {settings.database_url}")
    if info.smsc_sim_port:
        console.print(f"  smsc-sim  SMPP 127.0.0.1:{info.smsc_sim_port}, control port {info.smsc_sim_control_port}")
    if info.mmsc_sim_url:
        console.print(f"  mmsc-sim  MM7 {info.mmsc_sim_url}")
    console.print(f"  workers   {','.join(INTERACTIVE_QUEUES)} | {','.join(BULK_QUEUES)} | {INBOUND_QUEUE},{CALLBACK_QUEUE}")
    console.print(f"  run file  {runfile.run_file(settings.home)}: every smsagg command run with this SMSAGG_HOME "
                  "(another terminal, the same directory) finds this gateway through it")
    console.print("  first account:  smsagg account create --login demo --password secret --sender 12345")
    console.print(f"  send one:       curl '{info.web_url}/httpapi/receiver?login=demo&password=secret"
                  "&phone_number=12025550100&sender=12345&message=Hello&message_id=1'")
    console.print("[dim]Ctrl-C stops everything.[/]")


def run_gateway(settings: Settings, *, web_port: int | None, redis_port: int | None, smsc_sim: bool) -> int:
    """Run the gateway until Ctrl-C/SIGTERM (0) or a part that keeps dying (1)."""
    supervisor = Supervisor(RestartPolicy.from_settings(settings))
    # From here on Ctrl-C and SIGTERM stop the gateway in order, even one started with
    # SIGINT ignored (a background job of a script); a start under way is cut short.
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: supervisor.request_stop())
    claim = runfile.HomeClaim(settings.home)
    note = claim.acquire()
    if note:
        console.print(note)
    try:
        return _run(settings, supervisor, web_port or settings.web_port, redis_port, smsc_sim)
    finally:
        runfile.remove(settings.home)
        claim.release()


def _run(settings: Settings, supervisor: Supervisor, web_port: int, redis_port: int | None, smsc_sim: bool) -> int:
    sim_port, embedded = settings.smsc_sim_port, settings.redis_url is None
    ports = {"the ingress": (settings.web_host, web_port), "the CometD server": (settings.web_host, settings.cometd_port)}
    if smsc_sim:
        ports |= {"the SMSC simulator's": ("127.0.0.1", sim_port),
                  "the SMSC simulator's control": ("127.0.0.1", sim_port + 1),
                  "the MMSC simulator": ("127.0.0.1", settings.mmsc_sim_port)}
    if embedded and redis_port:
        ports["the embedded Redis"] = ("127.0.0.1", redis_port)
    _refuse_busy_ports(ports)
    if not embedded:
        connect(settings.redis_url).ping()  # an external Redis out of reach: one line, not parts retrying

    supervisor.on_restart = lambda: publish()
    try:
        redis_url = settings.redis_url
        if embedded:
            redis_port = redis_port or free_port()
            data_dir = settings.home / "redis"
            start_redis = functools.partial(start_embedded_redis, data_dir, redis_port,
                                            appendfsync=settings.redis_appendfsync, preexec_fn=REDIS_CHILD_SETUP)
            supervisor.add(Part("redis", start_redis, stop_last=True))
            redis_url = f"redis://127.0.0.1:{redis_port}/0"
        migrate.upgrade(settings.database_url)
        env = _child_environment(settings, redis_url)
        commands = {}
        mmsc_options = None
        if smsc_sim:
            commands["smsc-sim"] = _cli("smsc-sim", "--port", str(sim_port), "--control-port", str(sim_port + 1))
            with session_scope(settings.database_url) as session:
                if ensure_simulator_carrier(session, sim_port, mmsc_port=settings.mmsc_sim_port):
                    console.print("carriers 1 and 2 are the SMSC and MMSC simulators: every SMS routes to 1, "
                                  "every MMS to 2")
                mmsc_options = mmsc_simulator_options(session, port=settings.mmsc_sim_port, web_port=web_port)
            if mmsc_options is not None:
                commands["mmsc-sim"] = _cli("mmsc-sim", *mmsc_options)
        commands |= {
            "web": _cli("web", "--port", str(web_port)),
            "cometd": _cli("cometd", "--port", str(settings.cometd_port)),
            "worker-interactive": _worker(INTERACTIVE_QUEUES, concurrency=4),
            "worker-bulk": _worker(BULK_QUEUES, concurrency=4),
            "worker-inbound": _worker((INBOUND_QUEUE,), concurrency=4),
            "worker-callbacks": _worker((CALLBACK_QUEUE,), concurrency=8),
            "worker-callbacks-2": _worker((CALLBACK_QUEUE,), concurrency=8),
            "beat": _cli("beat"),
        }
        for name, command in commands.items():
            if supervisor.stop_requested:
                break
            supervisor.add(Part(name, lambda command=command: subprocess.Popen(
                command, env=env, process_group=0, preexec_fn=CHILD_SETUP)))
        if supervisor.stop_requested:
            console.print("stopping before the start is complete ...")
            return 0

        info = runfile.RunInfo(
            pid=os.getpid(), started_at=time.time(), redis_url=redis_url, redis_embedded=embedded,
            database_url=settings.database_url, key_prefix=settings.key_prefix,
            web_url=f"http://{_reachable(settings.web_host)}:{web_port}",
            smsc_sim_port=sim_port if smsc_sim else None, smsc_sim_control_port=sim_port + 1 if smsc_sim else None,
            mmsc_sim_url=f"http://127.0.0.1:{settings.mmsc_sim_port}" if mmsc_options is not None else None,
        )

        def publish() -> None:
            runfile.write(settings.home, replace(info, parts={p.name: p.process.pid for p in supervisor.parts
                                                              if p.running}))

        publish()
        _banner(settings, info)
        exit_code = supervisor.run()
        console.print("stopping ..." if exit_code == 0 else f"stopping: {supervisor.gave_up.name} keeps dying")
        return exit_code
    finally:
        supervisor.stop()


def _reachable(host: str) -> str:
    """The address a local client uses for an ingress listening on ``host``."""
    if host in ("", "0.0.0.0", "::"):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host
