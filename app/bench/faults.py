"""``smsagg bench faults``: the gateway under a steady load while its parts fail, as an
operator would break it, and what became of every accepted message.

The gateway is laid out as ``deploy/`` lays it out: every part its own process (the
ingress, a worker per queue group, two callback workers, beat), a Redis of its own with
the shipped persistence (AOF ``everysec``; the ``durability`` scenario compares
``always``), SQLite (PostgreSQL for the database scenario: a throwaway cluster it can
restart), the SMSC simulator as the SMPP carrier with a journal of every message it
received (``smsagg smsc-sim --journal``: it survives the simulator being killed, so
duplicates at the SMSC are counted), and a client endpoint for the DR callbacks that
can be switched to answering 503. A killed part is started again after a pause, as
systemd's ``Restart=always`` would.

The load: ``LOAD_RATE`` MT/s over HTTP with ``receipt=TRUE``, one in four INTERACTIVE,
the rest BULK, each with its own ``message_id`` and the id in its text; it runs through
every fault and ``tail`` seconds past the last one. A refused submit (``98`` while Redis
is away, a refused connection while the ingress is down) is not retried: the promise
is about messages that got ``result_code=0``.

Per scenario it prints:

* **accepted**: submits answered ``result_code=0`` (and how many were refused);
* **reached SMSC**: accepted messages in the simulator's journal; **lost**: accepted
  ones that never got there by the end of the wait;
* **SMSC duplicates**: receptions beyond the first (the window of ``docs/smpp.md``);
* **reported**: accepted messages whose client received a DR callback (state 6 or
  later); **client duplicates**: callbacks received more than once;
* **time to recover**: from the moment the last fault cleared until every message
  accepted before it was reported, and the worst delay of any accepted message
  between ``max(accepted, fault cleared)`` and its first report;
* parts that exited by themselves (none should: every part rides out an outage).

The targets (issue "Faults under load"), checked by ``pytest -m faults``: nothing lost,
everything reported within ``TARGET_REPORT_SECONDS`` of the fault clearing, SMSC
duplicates under 0.1 %.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from app.bench.harness import FormClient, free_port, wait_for_port
from app.db import migrate
from app.db.session import session_scope
from app.embedded_redis import start_embedded_redis
from app.services import accounts as svc
from app.services.accounts import AccountOptions

LOAD_RATE = 120.0
TARGET_REPORT_SECONDS = 60.0
TARGET_DUPLICATE_RATIO = 0.001
LOGIN, PASSWORD, SENDER, CARRIER = "faults", "faults-password", "12345", 1
WAIT_AFTER_LOAD_SECONDS = 240.0
"""How long to wait, after the load, for every accepted message to be reported."""

WORKERS = {
    "worker-interactive": ("mt.interactive,mt.interactive_low", 4),
    "worker-bulk": ("mt.bulk,mt.bulk_low", 4),
    "worker-inbound": ("inbound", 4),
    "worker-callbacks": ("callbacks", 8),
    "worker-callbacks-2": ("callbacks", 8),
}


@dataclass
class Part:
    name: str
    args: list[str]
    module: str = "app.cli"
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen | None = None
    killed: bool = False


class FaultGateway:
    """Every part as its own process, each one killable and restartable."""

    def __init__(self, *, appendfsync: str = "everysec", database_url: str | None = None,
                 callback_interval: int = 5, callback_retries: int = 25, dr_delay: float = 0.5):
        self.home = Path(tempfile.mkdtemp(prefix="smsagg-faults-"))
        self.appendfsync = appendfsync
        self.database_url = database_url or f"sqlite:///{self.home / 'smsagg.db'}"
        self.redis_port, self.smsc_port, self.receiver_port, self.web_port = (free_port() for _ in range(4))
        self.redis_url = f"redis://127.0.0.1:{self.redis_port}/0"
        self.journal = self.home / "smsc-journal.jsonl"
        self.callbacks = self.home / "callbacks.tsv"
        self.callback_interval, self.callback_retries, self.dr_delay = callback_interval, callback_retries, dr_delay
        self.redis: subprocess.Popen | None = None
        self.parts: dict[str, Part] = {}
        self.postgres: ThrowawayPostgres | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def __enter__(self) -> "FaultGateway":
        try:
            self.start_redis()
            migrate.upgrade(self.database_url)
            self._provision()
            self._define_parts()
            for name in self.parts:
                self.start(name)
            for port in (self.smsc_port, self.receiver_port, self.web_port):
                wait_for_port(port, timeout=60)
            deadline = time.monotonic() + 90
            while not all(b" ready." in self.log(name).read_bytes() for name in WORKERS):
                if time.monotonic() > deadline:
                    raise RuntimeError("workers did not start")
                time.sleep(0.2)
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        for part in self.parts.values():
            _stop(part.process)
        _stop(self.redis)
        if os.environ.get("SMSAGG_FAULTS_KEEP"):
            print(f"kept {self.home}")
        else:
            shutil.rmtree(self.home, ignore_errors=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def environment(self, **extra: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
        env.update(SMSAGG_HOME=str(self.home), SMSAGG_REDIS_URL=self.redis_url, SMSAGG_DATABASE_URL=self.database_url,
                   SMSAGG_ALLOW_PRIVATE_CALLBACKS="1", SMSAGG_LOG_LEVEL="INFO", **extra)
        return env

    def _provision(self) -> None:
        with session_scope(self.database_url) as session:
            svc.create_account(session, LOGIN, PASSWORD, senders=(SENDER,), default_max_length=1600,
                               options=AccountOptions(dr_url=f"http://127.0.0.1:{self.receiver_port}/dr",
                                                      callback_retry_interval=self.callback_interval,
                                                      callback_max_retries=self.callback_retries))
            svc.add_carrier(session, CARRIER, "smsc-sim", connector="smpp", throughput=None,
                            settings={"host": "127.0.0.1", "port": self.smsc_port, "system_id": "faults",
                                      "password": "faults", "window": 50})
            svc.add_route(session, svc.DEFAULT_ROUTE_PREFIX, CARRIER)

    def _define_parts(self) -> None:
        parts = [
            Part("receiver", ["--port", str(self.receiver_port), "--out", str(self.callbacks)],
                 module="app.bench.receiver"),
            Part("smsc-sim", ["smsc-sim", "--port", str(self.smsc_port), "--control-port", str(free_port()),
                              "--dr-delay", str(self.dr_delay), "--journal", str(self.journal)]),
            Part("web", ["web", "--port", str(self.web_port)]),
            Part("beat", ["beat"]),
            *(Part(name, ["worker", "--queues", queues, "--pool", "threads", "--concurrency", str(threads),
                          "--name", f"{name}@faults"]) for name, (queues, threads) in WORKERS.items()),
        ]
        self.parts = {part.name: part for part in parts}

    def log(self, name: str) -> Path:
        return self.home / f"{name}.log"

    def start(self, name: str) -> None:
        part = self.parts[name]
        with open(self.log(name), "ab") as log:
            part.process = subprocess.Popen([sys.executable, "-m", part.module, *part.args],
                                            env=self.environment(**part.env), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        part.killed = False

    def kill(self, name: str, sig: int = signal.SIGKILL) -> None:
        """``kill -<sig>`` the part's processes (its process group: the ingress's workers too)."""
        part = self.parts[name]
        part.killed = True
        if part.process is not None and part.process.poll() is None:
            os.killpg(part.process.pid, sig)
            part.process.wait()

    def exited_by_themselves(self) -> list[str]:
        return [f"{part.name} (exit {part.process.returncode})" for part in self.parts.values()
                if part.process is not None and part.process.poll() is not None and not part.killed]

    # --- Redis and the client endpoint ----------------------------------------------------------

    def start_redis(self) -> None:
        self.redis = start_embedded_redis(self.home / "redis", self.redis_port, appendfsync=self.appendfsync)

    def stop_redis(self, sig: int) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(sig)
            self.redis.wait()

    def client_answers(self, status: int) -> None:
        request = urllib.request.Request(f"http://127.0.0.1:{self.receiver_port}/_status/{status}", method="PUT")
        with urllib.request.urlopen(request, timeout=5):  # raises for an answer other than 2xx
            pass


def _stop(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


# --- a throwaway PostgreSQL cluster (the database-restart scenario) --------------------------------


class ThrowawayPostgres:
    """``initdb`` + ``pg_ctl`` in a temporary directory, on a free loopback port; or on
    ``host``:``port``, trusting clients from ``network`` (a CIDR), its commands run under
    ``prefix`` (``ip netns exec NS``: the topology bench, ``app.bench.topology``)."""

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, network: str | None = None,
                 prefix: tuple[str, ...] = ()) -> None:
        self.bin = _postgres_bin()
        self.dir = Path(tempfile.mkdtemp(prefix="smsagg-faults-pg-"))
        self.host, self.port, self.network = host, port or free_port(), network
        self.url = f"postgresql+psycopg://postgres@{host}:{self.port}/postgres"
        self._as = [*prefix, *(["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else [])]

    def __enter__(self) -> "ThrowawayPostgres":
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres")
        subprocess.run([*self._as, str(self.bin / "initdb"), "-D", str(self.dir / "data"), "-A", "trust", "-U",
                        "postgres"], check=True, capture_output=True)
        if self.network:
            with open(self.dir / "data" / "pg_hba.conf", "a", encoding="utf-8") as hba:
                hba.write(f"host all all {self.network} trust\n")
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "stop", "-m", "immediate"],
                       capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.dir} -c listen_addresses={self.host} -c fsync=off"
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-o", options, "-l",
                        str(self.dir / "pg.log"), "-w", "start"], check=True, capture_output=True)

    def stop(self) -> None:
        subprocess.run([*self._as, str(self.bin / "pg_ctl"), "-D", str(self.dir / "data"), "-m", "fast", "-w",
                        "stop"], check=True, capture_output=True)


def postgres_available() -> bool:
    try:
        _postgres_bin()
    except RuntimeError:
        return False
    return True


def _postgres_bin() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not candidates:
        raise RuntimeError("no PostgreSQL server binaries (pg_ctl, initdb) found")
    return candidates[-1].parent


# --- the load ---------------------------------------------------------------------------------------


class SteadyLoad:
    """``rate`` submits per second from a pool of threads, each with its own keep-alive
    connection, each request's outcome kept by message id."""

    def __init__(self, url: str, tag: str, rate: float = LOAD_RATE):
        self.url, self.tag, self.rate = url, tag, rate
        self.sent: dict[str, tuple[float, str]] = {}
        self._stop = threading.Event()
        self._local = threading.local()
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)

    def start(self) -> "SteadyLoad":
        self.started = time.time()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        with ThreadPoolExecutor(max_workers=24) as pool:
            index = 0
            while not self._stop.is_set():
                due = self.started + index / self.rate
                delay = due - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._submit, index)
                index += 1

    def _submit(self, index: int) -> None:
        message_id = f"{self.tag}-{index}"
        fields = {"login": LOGIN, "password": PASSWORD, "phone_number": "12025550100", "sender": SENDER,
                  "message": f"fault {message_id}", "message_id": message_id, "receipt": "TRUE",
                  "priority": "INTERACTIVE" if index % 4 == 0 else "BULK"}
        client = getattr(self._local, "client", None) or FormClient(self.url, timeout=10, reconnect=False)
        self._local.client = client
        at = time.time()
        try:
            status, text = client.exchange("/httpapi/receiver", fields)
            outcome = text.strip() if status == 200 else f"HTTP {status}"
        except (OSError, http.client.HTTPException) as exc:
            outcome = f"error: {type(exc).__name__}"
        self.sent[message_id] = (at, outcome)


# --- scenarios ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    at: float  # seconds after the load started
    lasts: float  # seconds until it clears
    what: str
    begin: Callable[[FaultGateway], None]
    end: Callable[[FaultGateway], None]


def kill_part(name: str, *, at: float, down: float = 2.0) -> Fault:
    return Fault(at, down, f"kill -9 {name}, restarted {down:g}s later",
                 lambda gw: gw.kill(name), lambda gw: gw.start(name))


def stop_redis(sig: int, *, at: float, down: float = 4.0) -> Fault:
    label = "kill -9" if sig == signal.SIGKILL else "SIGTERM"
    return Fault(at, down, f"{label} Redis for {down:g}s", lambda gw: gw.stop_redis(sig), lambda gw: gw.start_redis())


def client_down(*, at: float, down: float) -> Fault:
    return Fault(at, down, f"client endpoint answers 503 for {down:g}s", lambda gw: gw.client_answers(503),
                 lambda gw: gw.client_answers(200))


@dataclass(frozen=True)
class Scenario:
    name: str
    faults: tuple[Fault, ...]
    tail: float = 10.0
    callback_interval: int = 5
    callback_retries: int = 25
    postgres: bool = False
    wait_after: float = WAIT_AFTER_LOAD_SECONDS


def _postgres_restart(*, at: float, down: float = 4.0) -> Fault:
    return Fault(at, down, f"PostgreSQL stopped (fast) for {down:g}s", lambda gw: gw.postgres.stop(),
                 lambda gw: gw.postgres.start())


SCENARIOS: dict[str, Scenario] = {scenario.name: scenario for scenario in (
    Scenario("combined", (
        kill_part("worker-bulk", at=15),
        kill_part("worker-callbacks", at=30),
        kill_part("smsc-sim", at=45, down=15),
        stop_redis(signal.SIGTERM, at=70),
        client_down(at=85, down=30),
    )),
    *(Scenario(f"kill-{name}", (kill_part(name, at=10),)) for name in WORKERS if name != "worker-callbacks-2"),
    Scenario("redis-restart", (stop_redis(signal.SIGTERM, at=10),)),
    Scenario("redis-kill", (stop_redis(signal.SIGKILL, at=10),)),
    Scenario("smsc-down", (kill_part("smsc-sim", at=10, down=60),)),
    Scenario("client-down", (client_down(at=10, down=600),), callback_interval=5, callback_retries=150,
             wait_after=1200),
    Scenario("client-down-60s", (client_down(at=10, down=60),), callback_interval=5, callback_retries=150,
             wait_after=600),
    Scenario("kill-web", (kill_part("web", at=10),)),
    Scenario("postgres-restart", (_postgres_restart(at=10),), postgres=True),
)}


@dataclass
class Figures:
    scenario: str
    accepted: int
    refused: dict[str, int]
    reached_smsc: int
    lost: int
    smsc_duplicates: int
    reported: int
    unreported: int
    client_duplicates: int
    time_to_recover_s: float | None
    worst_report_delay_s: float | None
    exited_by_themselves: list[str]
    timeline: list[str]

    @property
    def smsc_duplicate_ratio(self) -> float:
        return self.smsc_duplicates / max(1, self.accepted)

    @property
    def targets_met(self) -> bool:
        return (self.lost == 0 and self.unreported == 0 and not self.exited_by_themselves
                and self.worst_report_delay_s is not None and self.worst_report_delay_s <= TARGET_REPORT_SECONDS
                and self.smsc_duplicate_ratio < TARGET_DUPLICATE_RATIO)

    def as_dict(self) -> dict:
        return {**self.__dict__, "smsc_duplicate_ratio": round(self.smsc_duplicate_ratio, 5),
                "targets_met": self.targets_met}

    def lines(self) -> list[str]:
        refused = ", ".join(f"{count} {what}" for what, count in sorted(self.refused.items())) or "none"
        return [
            f"[{self.scenario}] accepted {self.accepted} (refused: {refused})",
            f"[{self.scenario}] reached SMSC {self.reached_smsc}, lost {self.lost}, SMSC duplicates "
            f"{self.smsc_duplicates} ({self.smsc_duplicate_ratio:.3%})",
            f"[{self.scenario}] reported {self.reported}, unreported {self.unreported}, client duplicates "
            f"{self.client_duplicates}",
            f"[{self.scenario}] time to recover {_seconds(self.time_to_recover_s)}, worst report delay "
            f"{_seconds(self.worst_report_delay_s)} (target {TARGET_REPORT_SECONDS:g}s); exited by themselves: "
            f"{', '.join(self.exited_by_themselves) or 'none'}; targets {'met' if self.targets_met else 'MISSED'}",
        ]


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}s"


def _journal(gw: FaultGateway) -> Counter[str]:
    received: Counter[str] = Counter()
    if gw.journal.exists():
        for line in gw.journal.read_text(encoding="utf-8").splitlines():
            text = json.loads(line)["text"]
            if text.startswith("fault "):
                received[text.removeprefix("fault ")] += 1
    return received


def _reports(gw: FaultGateway) -> tuple[dict[str, float], Counter[tuple[str, str]]]:
    first: dict[str, float] = {}
    seen: Counter[tuple[str, str]] = Counter()
    if gw.callbacks.exists():
        for line in gw.callbacks.read_text(encoding="utf-8").splitlines():
            at, _path, message_id, state = line.split("\t")
            first[message_id] = min(float(at), first.get(message_id, float("inf")))
            seen[(message_id, state)] += 1
    return first, seen


def run_scenario(name: str, echo: Callable[[str], None]) -> Figures:
    scenario = SCENARIOS[name]
    if scenario.postgres:
        with ThrowawayPostgres() as postgres:
            return _run(scenario, echo, scenario.wait_after, postgres)
    return _run(scenario, echo, scenario.wait_after, None)


def _run(scenario: Scenario, echo, wait_after: float, postgres: ThrowawayPostgres | None) -> Figures:
    with FaultGateway(database_url=postgres.url if postgres else None, callback_interval=scenario.callback_interval,
                      callback_retries=scenario.callback_retries) as gw:
        gw.postgres = postgres
        timeline: list[str] = []
        load = SteadyLoad(gw.url, scenario.name).start()
        cleared = load.started
        for fault in sorted(scenario.faults, key=lambda f: f.at):
            _sleep_until(load.started + fault.at)
            fault.begin(gw)
            timeline.append(f"t={time.time() - load.started:5.1f}s {fault.what} (at {time.time():.3f})")
            echo(f"[{scenario.name}] {timeline[-1]}")
            _sleep_until(time.time() + fault.lasts)
            fault.end(gw)
            cleared = time.time()
            timeline.append(f"t={cleared - load.started:5.1f}s cleared")
        _sleep_until(cleared + scenario.tail)
        load.stop()
        accepted = {mid: at for mid, (at, outcome) in load.sent.items() if outcome == "result_code=0"}
        echo(f"[{scenario.name}] load stopped: {len(accepted)} accepted of {len(load.sent)}; waiting for delivery")
        deadline = time.time() + wait_after
        while time.time() < deadline:
            first, _ = _reports(gw)
            if all(mid in first for mid in accepted) and set(accepted) <= set(_journal(gw)):
                break
            time.sleep(2)
        return _figures(scenario.name, gw, load, accepted, cleared, timeline)


def _sleep_until(moment: float) -> None:
    while (left := moment - time.time()) > 0:
        time.sleep(min(left, 0.5))


def _figures(name: str, gw: FaultGateway, load: SteadyLoad, accepted: dict[str, float], cleared: float,
             timeline: list[str]) -> Figures:
    received = _journal(gw)
    first, seen = _reports(gw)
    refused = Counter(outcome for _, outcome in load.sent.values() if outcome != "result_code=0")
    reported = [mid for mid in accepted if mid in first]
    before = [first[mid] - cleared for mid, at in accepted.items() if at <= cleared and mid in first]
    delays = [first[mid] - max(at, cleared) for mid, at in accepted.items() if mid in first]
    return Figures(
        scenario=name,
        accepted=len(accepted),
        refused=dict(refused),
        reached_smsc=sum(1 for mid in accepted if mid in received),
        lost=sum(1 for mid in accepted if mid not in received),
        smsc_duplicates=sum(count - 1 for mid, count in received.items() if mid in accepted and count > 1),
        reported=len(reported),
        unreported=len(accepted) - len(reported),
        client_duplicates=sum(count - 1 for key, count in seen.items() if count > 1),
        time_to_recover_s=round(max(0.0, max(before, default=0.0)), 1),
        worst_report_delay_s=round(max(delays), 1) if delays else None,
        exited_by_themselves=gw.exited_by_themselves(),
        timeline=timeline,
    )


# --- durability: what a Redis crash loses, and what appendfsync always costs ---------------------------


def durability(echo: Callable[[str], None], seconds: float) -> dict:
    """For ``everysec`` (shipped) then ``always``: the ingress's accepted submits/s at full
    speed (same run, same machine: the ratio is the cost), then ``kill -9`` of Redis under
    that load and how many accepted messages never reached the SMSC."""
    from app.bench.loadgen import RequestSpec, run_load

    class Submits:
        def __init__(self, tag: str):
            self.tag = tag

        def __call__(self, index: int) -> RequestSpec:
            return RequestSpec("POST", "/httpapi/receiver", urlencode({
                "login": LOGIN, "password": PASSWORD, "phone_number": "12025550100", "sender": SENDER,
                "message": f"fault {self.tag}-{index}", "message_id": f"{self.tag}-{index}",
                "receipt": "FALSE"}).encode())

    figures = {}
    for appendfsync in ("everysec", "always"):
        with FaultGateway(appendfsync=appendfsync) as gw:
            run_load(gw.url, Submits(f"warm-{appendfsync}"), concurrency=4, seconds=1.0, warmup=0.0)
            rate = run_load(gw.url, Submits(f"rate-{appendfsync}"), concurrency=32, seconds=seconds,
                            warmup=1.0).requests_per_second
            echo(f"[durability] appendfsync {appendfsync}: {rate:,.0f} accepted submits/s at full speed")
            load = SteadyLoad(gw.url, f"crash-{appendfsync}", rate=min(400.0, rate * 0.5)).start()
            time.sleep(5)
            gw.stop_redis(signal.SIGKILL)
            killed_at = time.time()
            time.sleep(0.5)
            load.stop()
            gw.start_redis()
            accepted = [mid for mid, (at, outcome) in load.sent.items() if outcome == "result_code=0"]
            deadline = time.time() + 120
            while time.time() < deadline and not set(accepted) <= set(_journal(gw)):
                time.sleep(1)
            received = _journal(gw)
            lost = [mid for mid in accepted if mid not in received]
            figures[appendfsync] = {"accepted_per_second": round(rate, 1), "accepted_before_kill": len(accepted),
                                    "lost_after_kill_9": len(lost),
                                    "accepted_in_last_second": sum(1 for mid, (at, o) in load.sent.items()
                                                                   if o == "result_code=0" and at > killed_at - 1)}
            echo(f"[durability] appendfsync {appendfsync}: kill -9 of Redis under load: {len(accepted)} accepted, "
                 f"{len(lost)} lost")
    figures["always_to_everysec_throughput_ratio"] = round(
        figures["always"]["accepted_per_second"] / max(0.1, figures["everysec"]["accepted_per_second"]), 2)
    echo(f"[durability] appendfsync always costs: ratio {figures['always_to_everysec_throughput_ratio']} "
         "of the everysec throughput, same run")
    return figures


def run(seconds: float, concurrency: int, echo: Callable[[str], None], scenarios: tuple[str, ...] = ()) -> dict:
    """``smsagg bench faults [--scenario NAME ...]`` (default: every scenario, then durability)."""
    chosen = list(scenarios) or [*SCENARIOS, "durability"]
    unknown = [name for name in chosen if name not in SCENARIOS and name != "durability"]
    if unknown:
        raise ValueError(f"unknown scenario(s) {unknown}; choose from {', '.join([*SCENARIOS, 'durability'])}")
    results = {}
    for name in chosen:
        if name == "durability":
            results[name] = durability(echo, seconds)
            continue
        figures = run_scenario(name, echo)
        for line in figures.lines():
            echo(line)
        results[name] = figures.as_dict()
    return {"benchmark": "faults", **results}
