"""``smsagg bench topology``: the gateway spread over several hosts on one machine, as
``deploy/`` spreads it, and what happens when a worker host dies.

The hosts are Linux network namespaces (iproute2's ``ip netns``), each with an address
of its own on one bridge, which sits in a namespace of its own too: nothing is added to
the machine's own network, and every run has its own namespaces (named after the
process and a random token), so runs side by side never meet. Each host also has its
own host name (``unshare --uts``), so heartbeats and probes tell the hosts apart::

    data      10.77.0.10  PostgreSQL (a throwaway cluster) and Redis (password, AOF everysec)
    ingress   10.77.0.20  smsagg web, smsagg beat
    worker-a  10.77.0.31  an MT worker (the four mt.* queues) and an inbound + callbacks worker
    worker-b  10.77.0.32  the same
    carrier   10.77.0.40  the SMSC simulator (SMPP, with a journal of what it received)
    client    10.77.0.50  the client's DR callback endpoint, and this program's load

No part assumes another's file system or loopback: each has an ``SMSAGG_HOME`` of its
own and the others' addresses (the carrier's SMPP address and the client's callback URL
come from the database). This program reaches the hosts from the ``client`` host: its
calling thread enters that namespace (:meth:`Topology.inside`).

Two runs:

* :func:`failover` (``pytest -m topology``, a few tens of seconds): a message end to end
  (submit, SMSC, DR, callback), then a steady load during which every process of
  ``worker-a`` is killed with ``kill -9``: every accepted message still reaches the SMSC
  and the client gets its DR (messages ``worker-a`` had claimed come back when their lease
  lapses, ``docs/delivery.md``); the probes of ``worker-b`` (``smsagg health``) and of the
  ingress (``/readyz``) pass.
* :func:`throughput`: a backlog of BULK messages (pushed straight into Redis, so the
  ingress is not what is measured) drained to the SMSC by the MT worker of one host,
  then of two: messages per second at the SMSC, first to last, and the ratio.

Everything created (namespaces, veth pairs, processes, directories) is removed when the
:class:`Topology` closes, also after an error; namespaces left by a run that was itself
killed are removed by the next run (their creator's process is gone).
"""

from __future__ import annotations

import ctypes
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import redis
from sqlalchemy import select

from app.adapters import stage_queue
from app.adapters.heartbeats import read_parts
from app.adapters.redis_scripts import RedisKeys
from app.bench.faults import CARRIER, LOGIN, PASSWORD, SENDER, SteadyLoad, ThrowawayPostgres, postgres_available
from app.bench.harness import FormClient
from app.db import migrate
from app.db.models import Account
from app.db.session import _ENGINES, session_scope
from app.domain.priorities import Priority
from app.embedded_redis import PERSISTENCE, redis_server_binary
from app.services import accounts as svc
from app.services.accounts import AccountOptions

SUBNET = "10.77.0"
"""Inside the topology's own namespaces only, so every run may use the same addresses."""
HOSTS = {"data": 10, "ingress": 20, "worker-a": 31, "worker-b": 32, "carrier": 40, "client": 50}
WORKER_HOSTS = ("worker-a", "worker-b")
REDIS_PORT, POSTGRES_PORT, WEB_PORT, SMSC_PORT, CALLBACK_PORT = 6379, 5432, 8080, 2775, 8000
MT_QUEUES = "mt.interactive,mt.interactive_low,mt.bulk,mt.bulk_low"
NAME_PREFIX = "smsagg-"
DIRECTORY_PREFIX = "smsagg-topology-"
START_TIMEOUT = 60.0

_CLONE_NEWNET = 0x40000000


class TopologyUnavailable(RuntimeError):
    """This machine cannot build the topology (why, in one line)."""


def unavailable_reason() -> str | None:
    """Why the topology cannot run here, or ``None`` when it can."""
    if os.geteuid() != 0:
        return "network namespaces need root (ip netns add); run as root"
    for tool in ("ip", "unshare", "runuser"):
        if shutil.which(tool) is None:
            return f"no {tool} on PATH (iproute2 / util-linux)"
    if not postgres_available():
        return "no PostgreSQL server binaries (initdb, pg_ctl) for the data host"
    probe = f"{NAME_PREFIX}{os.getpid()}-probe{secrets.token_hex(2)}"
    try:
        _ip("netns", "add", probe)
        _ip("-n", probe, "link", "add", "br0", "type", "bridge")
    except TopologyUnavailable as exc:
        return f"ip netns does not work here: {exc}"
    finally:
        subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str) -> str:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise TopologyUnavailable(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout


def _netns_pids(netns: str) -> list[int]:
    done = subprocess.run(["ip", "netns", "pids", netns], capture_output=True, text=True)
    return [int(pid) for pid in done.stdout.split()] if done.returncode == 0 else []


def _kill_all(netns: str) -> None:
    """``kill -9`` every process in ``netns`` (never this one), until none is left."""
    deadline = time.monotonic() + 10
    while pids := [pid for pid in _netns_pids(netns) if pid != os.getpid()]:
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"processes {pids} in {netns} outlived kill -9")
        time.sleep(0.05)


def _gone(name: str, prefix: str) -> bool:
    """Whether ``name`` is ``<prefix><pid>-...`` of a process that no longer runs."""
    creator = name.removeprefix(prefix).split("-", 1)[0]
    return name.startswith(prefix) and creator.isdigit() and not Path(f"/proc/{creator}").exists()


def _remove_stale() -> None:
    """What earlier runs left when they were killed before they could clean up (their
    process is gone): their namespaces' processes are killed, the namespaces deleted,
    their directories removed."""
    for netns in _ip("netns", "list").split():
        if _gone(netns, NAME_PREFIX):
            _kill_all(netns)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
    for directory in Path(tempfile.gettempdir()).glob(f"{DIRECTORY_PREFIX}*"):
        if _gone(directory.name, DIRECTORY_PREFIX):
            shutil.rmtree(directory, ignore_errors=True)


def _setns(fd: int) -> None:
    if hasattr(os, "setns"):  # Python 3.12
        os.setns(fd, _CLONE_NEWNET)
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, _CLONE_NEWNET) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


@dataclass
class Host:
    role: str
    netns: str
    address: str
    hostname: str
    root: Path
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    def home(self, part: str) -> Path:
        """The part's own directory on this host (its SMSAGG_HOME)."""
        path = self.root / part
        path.mkdir(parents=True, exist_ok=True)
        return path


class Topology:
    """``with Topology() as topo:``: the hosts of :data:`HOSTS` on one bridge."""

    def __init__(self, roles: dict[str, int] = HOSTS) -> None:
        self.token = f"{os.getpid()}-{secrets.token_hex(3)}"
        self.root = Path(tempfile.mkdtemp(prefix=f"{DIRECTORY_PREFIX}{os.getpid()}-"))
        self.switch = f"{NAME_PREFIX}{self.token}-switch"
        self.hosts = {role: Host(role, f"{NAME_PREFIX}{self.token}-{role}", f"{SUBNET}.{number}",
                                 f"{role}.{self.token}", self.root / role) for role, number in roles.items()}
        self.cleanup = ExitStack()
        """Closed first when the topology closes (a database to stop cleanly, ...)."""
        self._created: list[str] = []

    def __enter__(self) -> "Topology":
        try:
            _remove_stale()
            self._add_netns(self.switch)
            _ip("-n", self.switch, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.switch, "link", "set", "br0", "up")
            for index, host in enumerate(self.hosts.values()):
                self._add_netns(host.netns)
                port = f"port{index}"
                _ip("-n", self.switch, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", host.netns)
                _ip("-n", self.switch, "link", "set", port, "master", "br0", "up")
                _ip("-n", host.netns, "addr", "add", f"{host.address}/24", "dev", "eth0")
                _ip("-n", host.netns, "link", "set", "eth0", "up")
                _ip("-n", host.netns, "link", "set", "lo", "up")
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def _add_netns(self, name: str) -> None:
        _ip("netns", "add", name)
        self._created.append(name)

    def close(self) -> None:
        """Stop everything and remove every namespace and directory, whatever fails on
        the way (the first failure is raised once the rest is done)."""
        failures: list[BaseException] = []
        try:
            self.cleanup.close()
        except Exception as exc:
            failures.append(exc)
        for netns in reversed(self._created):
            try:
                _kill_all(netns)
            except RuntimeError as exc:
                failures.append(exc)
            subprocess.run(["ip", "netns", "del", netns], capture_output=True)
        self._created.clear()
        for host in self.hosts.values():
            for process in host.processes.values():
                try:
                    process.wait(10)
                except subprocess.TimeoutExpired as exc:
                    failures.append(exc)
        if os.environ.get("SMSAGG_TOPOLOGY_KEEP"):
            print(f"kept {self.root}")
        else:
            shutil.rmtree(self.root, ignore_errors=True)
        if failures:
            raise failures[0]

    def command(self, role: str, argv: list[str]) -> list[str]:
        """``argv`` as run on the host: in its namespace, under its host name."""
        host = self.hosts[role]
        return ["ip", "netns", "exec", host.netns, "unshare", "--uts", "sh", "-c", 'hostname "$0" && exec "$@"',
                host.hostname, *argv]

    def start(self, role: str, part: str, argv: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
        """Start ``argv`` as ``part`` of the host (its output: ``<part>.log`` in its home)."""
        host = self.hosts[role]
        with open(host.home(part) / f"{part}.log", "ab") as log:
            process = subprocess.Popen(self.command(role, argv), env=env, stdout=log, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)
        host.processes[part] = process
        return process

    def kill_host(self, role: str) -> list[int]:
        """``kill -9`` every process on the host, as a machine that died. The pids killed."""
        host = self.hosts[role]
        pids = _netns_pids(host.netns)
        _kill_all(host.netns)
        for process in host.processes.values():
            process.wait(10)
        return pids

    def stop(self, role: str, part: str) -> None:
        """Stop one part cleanly (SIGTERM, as systemd or kubelet would)."""
        process = self.hosts[role].processes.pop(part)
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()

    @contextmanager
    def inside(self, role: str) -> Iterator[None]:
        """Run the calling thread (and threads and processes it starts) on the host."""
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        target = os.open(f"/run/netns/{self.hosts[role].netns}", os.O_RDONLY)
        try:
            _setns(target)
            try:
                yield
            finally:
                _setns(own)
        finally:
            os.close(own)
            os.close(target)


def _wait(what: str, predicate: Callable[[], object], timeout: float = START_TIMEOUT, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (OSError, redis.RedisError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what}: not within {timeout:g}s")
        time.sleep(interval)


class Deployment:
    """The gateway laid out on a :class:`Topology`; this program on the ``client`` host.

    ``with Deployment(topology) as gw:`` starts every part and waits until the ingress
    is ready and every worker beats."""

    def __init__(self, topology: Topology, *, dr_delay: float = 0.2, mt_workers: tuple[str, ...] = WORKER_HOSTS,
                 callback_interval: int = 2) -> None:
        self.topology = topology
        self.hosts = topology.hosts
        self.dr_delay, self.callback_interval = dr_delay, callback_interval
        self.initial_mt_workers = mt_workers
        self.redis_password = secrets.token_hex(16)
        data = self.hosts["data"].address
        self.redis_url = f"redis://:{self.redis_password}@{data}:{REDIS_PORT}/0"
        self.database_url = f"postgresql+psycopg://postgres@{data}:{POSTGRES_PORT}/postgres"
        self.url = f"http://{self.hosts['ingress'].address}:{WEB_PORT}"
        self.journal = self.hosts["carrier"].home("smsc-sim") / "journal.jsonl"
        self.callbacks = self.hosts["client"].home("receiver") / "callbacks.tsv"
        self._stack = ExitStack()

    def __enter__(self) -> "Deployment":
        try:
            self._stack.enter_context(self.topology.inside("client"))
            self._stack.callback(self._forget_engines)
            self._start_data()
            migrate.upgrade(self.database_url)  # `smsagg db upgrade`, as deploy/'s migration job runs it
            self._provision()
            self._start_edges()
            for role in WORKER_HOSTS:
                self.start_worker_host(role, mt=role in self.initial_mt_workers)
            _wait("the ingress ready (/readyz)", self.ready)
            for role in WORKER_HOSTS:
                self.wait_for_workers(role)
        except BaseException:
            self._stack.close()
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        self._stack.close()

    def _forget_engines(self) -> None:
        for url in [url for url in _ENGINES if url == self.database_url]:
            _ENGINES.pop(url).dispose()

    # --- the parts -------------------------------------------------------------------------------

    def environment(self, role: str, part: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
        env.update(SMSAGG_HOME=str(self.hosts[role].home(part)), SMSAGG_REDIS_URL=self.redis_url,
                   SMSAGG_DATABASE_URL=self.database_url, SMSAGG_ALLOW_PRIVATE_CALLBACKS="1",
                   SMSAGG_LOG_LEVEL="INFO")
        return env

    def smsagg(self, role: str, part: str, *args: str, module: str = "app.cli") -> subprocess.Popen:
        return self.topology.start(role, part, [sys.executable, "-m", module, *args], self.environment(role, part))

    def _start_data(self) -> None:
        data = self.hosts["data"]
        postgres = ThrowawayPostgres(host=data.address, port=POSTGRES_PORT, network=f"{SUBNET}.0/24",
                                     prefix=("ip", "netns", "exec", data.netns))
        self.topology.cleanup.enter_context(postgres)
        redis_dir = data.home("redis")
        server = shutil.which("redis-server") or str(redis_server_binary())
        self.topology.start("data", "redis", [
            server, "--bind", data.address, "--port", str(REDIS_PORT), "--dir", str(redis_dir),
            *(arg for name, value in PERSISTENCE.items() for arg in (f"--{name}", value)),
            "--requirepass", self.redis_password, "--protected-mode", "yes",
            "--logfile", str(redis_dir / "redis.log")])
        _wait("Redis on the data host", lambda: redis.Redis.from_url(self.redis_url).ping(), timeout=20)

    def _provision(self) -> None:
        receiver = self.hosts["client"].address
        with session_scope(self.database_url) as session:
            svc.create_account(session, LOGIN, PASSWORD, senders=(SENDER,), default_max_length=1600,
                               options=AccountOptions(dr_url=f"http://{receiver}:{CALLBACK_PORT}/dr",
                                                      callback_retry_interval=self.callback_interval))
            svc.add_carrier(session, CARRIER, "smsc-sim", connector="smpp", throughput=None,
                            settings={"host": self.hosts["carrier"].address, "port": SMSC_PORT,
                                      "system_id": "topology", "password": "topology", "window": 50})
            svc.add_route(session, svc.DEFAULT_ROUTE_PREFIX, CARRIER)
            self.account_id = session.scalar(select(Account.id).where(Account.login == LOGIN))

    def _start_edges(self) -> None:
        carrier, client, ingress = (self.hosts[role].address for role in ("carrier", "client", "ingress"))
        self.smsagg("client", "receiver", "--host", client, "--port", str(CALLBACK_PORT), "--out",
                    str(self.callbacks), module="app.bench.receiver")
        self.smsagg("carrier", "smsc-sim", "smsc-sim", "--host", carrier, "--port", str(SMSC_PORT),
                    "--dr-delay", str(self.dr_delay), "--journal", str(self.journal))
        self.smsagg("ingress", "web", "web", "--host", ingress, "--port", str(WEB_PORT))
        self.smsagg("ingress", "beat", "beat")

    def start_worker_host(self, role: str, *, mt: bool = True) -> None:
        """The host's worker group: an inbound + callbacks worker, and (``mt``) an MT one."""
        host = self.hosts[role]
        self.smsagg(role, "worker-io", "worker", "--queues", "inbound,callbacks", "--pool", "threads",
                    "--concurrency", "8", "--name", f"io@{host.hostname}")
        if mt:
            self.start_mt_worker(role)

    def start_mt_worker(self, role: str) -> None:
        host = self.hosts[role]
        self.smsagg(role, "worker-mt", "worker", "--queues", MT_QUEUES, "--pool", "threads", "--concurrency", "4",
                    "--name", f"mt@{host.hostname}")

    def wait_for_workers(self, role: str) -> None:
        """Until every worker process started on the host beats (their heartbeats)."""
        host = self.hosts[role]
        expected = sum(part.startswith("worker-") for part in host.processes)
        _wait(f"the workers of {role}", lambda: len(self.beats(role, "worker")) >= expected)

    def beats(self, role: str, part: str) -> list[dict]:
        hostname = self.hosts[role].hostname
        client = redis.Redis.from_url(self.redis_url)
        try:
            return [r for r in read_parts(client, "smsagg:") if r["part"] == part and r["host"] == hostname]
        finally:
            client.close()

    def handled(self, role: str) -> int:
        """MT items the host's workers handled, as their last heartbeats say."""
        return sum(count for beat in self.beats(role, "worker") for queue, count in beat["handled"].items()
                   if queue.startswith("mt."))

    def ready(self) -> bool:
        with urllib.request.urlopen(f"{self.url}/readyz", timeout=2) as reply:
            return reply.status == 200

    def probe(self, role: str, part: str, *args: str) -> tuple[int, str]:
        """``smsagg health --part <part> <args>`` run on the host, as kubelet runs it."""
        argv = [sys.executable, "-m", "app.health", "--part", part, *args]
        done = subprocess.run(self.topology.command(role, argv), env=self.environment(role, "probe"),
                              capture_output=True, text=True, timeout=30)
        return done.returncode, (done.stdout + done.stderr).strip()

    # --- what reached whom -----------------------------------------------------------------------

    def received(self, marker: str) -> dict[str, list[float]]:
        """Message ids whose text starts with ``marker`` -> when the SMSC got each copy."""
        copies: dict[str, list[float]] = {}
        if self.journal.exists():
            for line in self.journal.read_text(encoding="utf-8").splitlines():
                entry = json.loads(line)
                if entry["text"].startswith(marker):
                    copies.setdefault(entry["text"].removeprefix(marker), []).append(entry["at"])
        return copies

    def reported(self) -> Counter[str]:
        """Message ids -> DR callbacks of a final state the client received."""
        seen: Counter[str] = Counter()
        if self.callbacks.exists():
            for line in self.callbacks.read_text(encoding="utf-8").splitlines():
                _at, _path, message_id, state = line.split("\t")
                if state == "2":
                    seen[message_id] += 1
        return seen

    def submit(self, message_id: str) -> str:
        client = FormClient(self.url, timeout=10)
        try:
            return client.post("/httpapi/receiver", {
                "login": LOGIN, "password": PASSWORD, "phone_number": "12025550100", "sender": SENDER,
                "message": f"fault {message_id}", "message_id": message_id, "receipt": "TRUE"}).strip()
        finally:
            client.close()

    def push_backlog(self, tag: str, count: int) -> None:
        """``count`` BULK messages straight onto the MT list (as the ingress leaves them),
        and one drain: the workers find the whole backlog waiting."""
        client = redis.Redis.from_url(self.redis_url)
        keys, queue = RedisKeys("smsagg:"), Priority.BULK.queue
        pipe = client.pipeline(transaction=False)
        for index in range(count):
            payload = {"id": uuid.uuid4().hex, "account_id": self.account_id, "client_message_id": f"{tag}-{index}",
                       "phone_number": "12025550100", "sender": SENDER, "message": f"topo {tag}-{index}",
                       "carrier": None, "receipt": False, "app_id": None, "conversation_id": None,
                       "priority": Priority.BULK.value, "attachments": [], "accepted_at": time.time()}
            pipe.lpush(keys.stage_pending(queue), stage_queue.item(payload))
        pipe.lpush(queue, stage_queue.drain_message(queue))
        pipe.execute()
        client.close()


# --- the failover run ------------------------------------------------------------------------------


@dataclass
class FailoverFigures:
    first_message_seconds: float
    accepted: int
    accepted_after_kill: int
    refused: int
    reached_smsc: int
    lost: int
    smsc_duplicates: int
    reported: int
    unreported: int
    all_reported_after_kill_seconds: float | None
    killed_pids: int
    mt_handled_by_killed_host: int
    probes: dict[str, tuple[int, str]]

    def lines(self) -> list[str]:
        return [
            f"first message end to end (submit -> SMSC -> DR -> client callback): {self.first_message_seconds:.2f}s",
            f"worker-a had delivered {self.mt_handled_by_killed_host} MT messages (its heartbeat) when all its "
            f"{self.killed_pids} processes were killed (kill -9)",
            f"accepted {self.accepted} ({self.accepted_after_kill} after the kill), refused {self.refused}",
            f"reached the SMSC {self.reached_smsc}, lost {self.lost}, SMSC duplicates {self.smsc_duplicates}",
            f"DR callbacks at the client {self.reported}, missing {self.unreported}; all in "
            f"{_seconds(self.all_reported_after_kill_seconds)} after the kill",
            *(f"probe {name}: exit {code}: {text}" for name, (code, text) in self.probes.items()),
        ]


def _seconds(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}s"


def failover(echo: Callable[[str], None] = print, *, rate: float = 30.0, before: float = 1.0, after: float = 3.0,
             wait: float = 40.0) -> FailoverFigures:
    """One message end to end, then ``rate`` messages/s; ``worker-a`` is killed at least
    ``before`` seconds in, once its heartbeat shows it delivering, and the load goes on
    ``after`` seconds more; then up to ``wait`` seconds for every accepted message to be
    reported."""
    begun = time.monotonic()
    with Topology() as topology, Deployment(topology) as gw:
        echo(f"topology up in {time.monotonic() - begun:.1f}s: "
             f"{', '.join(f'{h.role} {h.address}' for h in topology.hosts.values())}")
        started = time.monotonic()
        if gw.submit("first") != "result_code=0":
            raise RuntimeError("the first message was refused")
        _wait("the first message's DR callback", lambda: gw.reported()["first"], timeout=30, interval=0.05)
        first_seconds = time.monotonic() - started
        load = SteadyLoad(gw.url, "topo", rate=rate).start()
        time.sleep(before)
        # Kill it once its heartbeat shows it delivering a share (it beats every 5 s).
        _wait_quietly(lambda: gw.handled("worker-a") > 0, 12, "worker-a's heartbeat showing work")
        handled_by_a = gw.handled("worker-a")
        killed_at = time.time()
        killed = topology.kill_host("worker-a")
        echo(f"killed worker-a ({len(killed)} processes, kill -9)")
        time.sleep(after)
        load.stop()
        accepted = [mid for mid, (_at, outcome) in load.sent.items() if outcome == "result_code=0"]
        _wait_quietly(lambda: set(accepted) <= set(gw.reported()), wait, "every accepted message reported")
        reported = gw.reported()
        received = gw.received("fault ")
        probes = {"worker-b worker --ready": gw.probe("worker-b", "worker", "--ready"),
                  "worker-b beat (none there)": gw.probe("worker-b", "beat")}
        return FailoverFigures(
            first_message_seconds=round(first_seconds, 2),
            accepted=len(accepted),
            accepted_after_kill=sum(load.sent[mid][0] > killed_at for mid in accepted),
            refused=len(load.sent) - len(accepted),
            reached_smsc=sum(mid in received for mid in accepted),
            lost=sum(mid not in received for mid in accepted),
            smsc_duplicates=sum(len(copies) - 1 for copies in received.values()),
            reported=sum(mid in reported for mid in accepted),
            unreported=sum(mid not in reported for mid in accepted),
            all_reported_after_kill_seconds=_all_reported_after(gw, accepted, killed_at),
            killed_pids=len(killed),
            mt_handled_by_killed_host=handled_by_a,
            probes=probes,
        )


def _wait_quietly(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    try:
        _wait(what, predicate, timeout=timeout, interval=0.5)
    except RuntimeError:
        pass  # the figures say what is missing


def _all_reported_after(gw: Deployment, accepted: list[str], killed_at: float) -> float | None:
    first: dict[str, float] = {}
    if gw.callbacks.exists():
        for line in gw.callbacks.read_text(encoding="utf-8").splitlines():
            at, _path, message_id, state = line.split("\t")
            if state == "2":
                first[message_id] = min(float(at), first.get(message_id, float("inf")))
    if not accepted or not all(mid in first for mid in accepted):
        return None
    return round(max(first[mid] for mid in accepted) - killed_at, 1)


# --- the throughput run ----------------------------------------------------------------------------


def throughput(echo: Callable[[str], None] = print, *, count: int = 3000, rounds: int = 2) -> dict:
    """MT messages/s at the SMSC with the MT worker of one host, then of two, ``rounds``
    times in turn (so a drift of the machine's speed shows in both)."""
    one, two = [], []
    with Topology() as topology, Deployment(topology, mt_workers=("worker-a",)) as gw:
        for n in range(rounds):
            one.append(_drain(gw, f"one{n}", count, echo, "1 worker host"))
            gw.start_mt_worker("worker-b")
            gw.wait_for_workers("worker-b")
            two.append(_drain(gw, f"two{n}", count, echo, "2 worker hosts"))
            topology.stop("worker-b", "worker-mt")
    best_one, best_two = max(one), max(two)
    figures = {"benchmark": "topology", "messages_per_round": count, "one_host_msg_per_s": one,
               "two_hosts_msg_per_s": two, "ratio_two_to_one": round(best_two / best_one, 2),
               "ratio_per_round": [round(b / a, 2) for a, b in zip(one, two)]}
    echo(f"MT to the SMSC: 1 worker host {best_one:,.0f} msg/s, 2 worker hosts {best_two:,.0f} msg/s "
         f"(ratio {figures['ratio_two_to_one']}x, best of {rounds} each; round by round "
         f"{', '.join(f'{r}x' for r in figures['ratio_per_round'])}; {count:,} messages a round)")
    return figures


def _drain(gw: Deployment, tag: str, count: int, echo, label: str) -> float:
    gw.push_backlog(tag, count)
    marker = f"topo {tag}-"
    copies = _wait(f"{count} messages of {tag} at the SMSC",
                   lambda: found if len(found := gw.received(marker)) >= count else None, timeout=120, interval=0.5)
    times = sorted(min(at) for at in copies.values())
    rate = round((len(times) - 1) / max(times[-1] - times[0], 0.001), 1)
    echo(f"{label}: {count:,} messages drained to the SMSC at {rate:,.0f} msg/s")
    return rate


def run(echo: Callable[[str], None] = print, *, count: int = 3000, rounds: int = 2) -> dict:
    """``smsagg bench topology``: the failover run, then the throughput run."""
    reason = unavailable_reason()
    if reason:
        raise TopologyUnavailable(reason)
    figures = failover(echo)
    for line in figures.lines():
        echo(line)
    return {"failover": asdict(figures), "throughput": throughput(echo, count=count, rounds=rounds)}
