"""smsagg as the peer of ``smsagg bench peers``, set up the way a new user does it.

Everything goes through the ``smsagg`` command line, in a ``SMSAGG_HOME`` inside the
run's folder (SQLite there; ``--db postgres``: a database of the run's own, dropped at
the end): ``smsagg db upgrade``; ``account create`` (rate and burst 100,000, so the
account's token bucket never throttles the load; with DRs a ``--dr-url`` on the
benchmark's receiver, and ``--dr-mask final`` for a final-only leg); the SMSC as SMPP ``carrier add --id 1`` with smsagg's defaults
(window 10, one bind per worker process); ``route add --default --carrier 1``; then
``smsagg up --no-smsc-sim`` with its embedded Redis, on free ports. ``HOME`` points
into the folder too (gunicorn puts its control socket under ``$HOME``).

The parts of ``smsagg up`` are its descendants, told apart by their command lines
(:func:`part_of`). It stops on SIGTERM (parts first, Redis last); a part that outlives
it is stopped by its pid.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.parse
import urllib.request
import uuid
from collections import defaultdict
from pathlib import Path

from app.bench.peers.procs import Processes, ProcessInfo, descendants

LOGIN, PASSWORD = "bench", "bench-password"
CARRIER = 1
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def part_of(cmdline: str) -> str:
    """Which part of ``smsagg up`` a process is, from its command line."""
    if "redis-server" in cmdline:
        return "redis"
    if re.search(r"app\.cli web\b", cmdline):
        return "web"  # the server process and its workers
    if re.search(r"app\.cli beat\b", cmdline):
        return "beat"
    if re.search(r"app\.cli cometd\b", cmdline):
        return "cometd"  # the GMS long-poll server, idle under this load
    queues = re.search(r"app\.cli worker --queues (\S+)", cmdline)
    if queues:
        first = queues.group(1).split(",")[0]
        return {"mt.interactive": "worker-interactive", "mt.bulk": "worker-bulk", "inbound": "worker-inbound",
                "callbacks": "worker-callbacks"}.get(first, f"worker-{first}")
    return "other"


class PostgresDatabase:
    """A database of the run's own on the local PostgreSQL, dropped by ``drop``."""

    def __init__(self, admin_url: str = POSTGRES_ADMIN_URL):
        try:
            import psycopg
        except ImportError as exc:
            raise RuntimeError("--db postgres needs psycopg: pip install 'smsagg[postgres]'") from exc
        self._psycopg = psycopg
        self.admin_url = admin_url
        self.name = f"smsagg_bench_peers_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'CREATE DATABASE "{self.name}"')
        base = admin_url.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://", 1)
        self.url = f"{base}/{self.name}"

    def backends(self) -> list[int]:
        """The server processes serving the run's database (on this host: 127.0.0.1)."""
        with self._psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            rows = admin.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (self.name,)).fetchall()
        return [pid for (pid,) in rows]

    def drop(self) -> None:
        with self._psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


class SmsaggPeer:
    name = "smsagg"

    def __init__(self, folder: Path, processes: Processes, free_port, *, database: str, receiver_port: int | None,
                 dr_mask: str = "all"):
        self.dr_mask = dr_mask
        self.callbacks_per_message = 1 if dr_mask == "final" else 2  # message_state 6, then the final state
        self.folder = folder
        self.processes = processes
        self.free_port = free_port
        self.receiver_port = receiver_port
        self.home = folder / "home"
        self.home.mkdir()
        (folder / "user-home").mkdir()
        self.postgres = PostgresDatabase() if database == "postgres" else None
        self.database_url = self.postgres.url if self.postgres else f"sqlite:///{self.home / 'smsagg.db'}"
        self.web_port = free_port()
        self.up: subprocess.Popen | None = None
        self.parts: list[ProcessInfo] = []
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
        self.env.update(SMSAGG_HOME=str(self.home), SMSAGG_DATABASE_URL=self.database_url,
                        SMSAGG_WEB_HOST="127.0.0.1", SMSAGG_SMSC_SIM_PORT=str(free_port()),
                        SMSAGG_COMETD_PORT=str(free_port()),
                        HOME=str(folder / "user-home"))
        if receiver_port:
            self.env["SMSAGG_ALLOW_PRIVATE_CALLBACKS"] = "1"  # the receiver is on 127.0.0.1

    def cli(self, *args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=self.env, cwd=self.folder,
                              capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise RuntimeError(f"smsagg {args[0]} {args[1] if len(args) > 1 else ''} failed: "
                               f"{(done.stdout + done.stderr)[-800:]}")
        return done.stdout

    def start(self, smsc_port: int, wait_port) -> None:
        self.cli("db", "upgrade")
        account = ["account", "create", "--login", LOGIN, "--password", PASSWORD, "--sender", "12345",
                   "--rate", "100000", "--burst", "100000"]
        if self.receiver_port:
            account += ["--dr-url", f"http://127.0.0.1:{self.receiver_port}/smsagg", "--dr-mask", self.dr_mask]
        self.cli(*account)
        self.cli("carrier", "add", "--id", str(CARRIER), "--name", "bench-smsc", "--smpp", f"127.0.0.1:{smsc_port}",
                 "--system-id", "smsagg", "--password", "smsagg")
        self.cli("route", "add", "--default", "--carrier", str(CARRIER))
        self.up = self.processes.spawn("smsagg-up", [sys.executable, "-m", "app.cli", "up", "--no-smsc-sim", "--port",
                                                     str(self.web_port), "--redis-port", str(self.free_port())],
                                       env=self.env)
        wait_port(self.web_port, timeout=120)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def probe(self, message_id: str, recipient: str, sender: str) -> bool:
        body = urllib.parse.urlencode({"login": LOGIN, "password": PASSWORD, "phone_number": recipient,
                                       "sender": sender, "message": f"{message_id} probe", "message_id": message_id,
                                       "receipt": "TRUE" if self.receiver_port else "FALSE"}).encode()
        request = urllib.request.Request(self.url + "/httpapi/receiver", data=body)
        try:
            with NO_PROXY.open(request, timeout=10) as reply:
                return reply.read().decode() == "result_code=0"
        except OSError:
            return False

    def lua_arguments(self, recipient: str, sender: str, length: int, tag: str) -> list[str]:
        return ["smsagg", LOGIN, PASSWORD, recipient, sender, str(length), tag,
                "TRUE" if self.receiver_port else "FALSE"]

    def cpu_processes(self) -> dict[str, list[int]]:
        """Each part of ``smsagg up`` (and ``smsagg up`` itself) with its pids; with
        PostgreSQL also the backends serving the run's database (the workers keep
        their pooled connections, so those are the ones the load uses)."""
        self.parts = descendants(self.up.pid)
        groups = defaultdict(list, {"smsagg-up": [self.up.pid]})
        for info in self.parts:
            groups[part_of(info.cmdline)].append(info.pid)
        if self.postgres is not None:
            groups["postgres"] = self.postgres.backends()
        return dict(groups)

    def message_log(self, prefix: str) -> tuple[set[str], int]:
        """The client message ids the message log accepted with ``prefix``, and how many
        segment submissions (rows of ``segment_submits``) they have. Read once the
        gateway has stopped, so it is what the workers left."""
        from sqlalchemy import func, select
        from sqlalchemy.orm import Session

        from app.db.models import Message, SegmentSubmit
        from app.db.session import make_engine

        engine = make_engine(self.database_url, pooled=False)
        try:
            with Session(engine) as session:
                ours = Message.client_message_id.like(f"{prefix}%")
                ids = set(session.scalars(select(Message.client_message_id).where(ours)))
                submits = session.scalar(select(func.count()).select_from(SegmentSubmit)
                                         .join(Message, Message.id == SegmentSubmit.message_id).where(ours))
        finally:
            engine.dispose()
        return ids, submits

    def stop(self) -> None:
        """SIGTERM to ``smsagg up`` alone (it stops its parts, Redis last); any part
        still running afterwards is stopped by its pid."""
        if self.up is not None:
            known = self.parts + (descendants(self.up.pid) if self.up.poll() is None else [])
            self.processes.stop(self.up, timeout=60)
            outlived = self.processes.stop_leftovers(known)
            if outlived:
                raise RuntimeError(f"parts outlived smsagg up: {[part_of(p.cmdline) for p in outlived]}")

    def drop_database(self) -> None:
        if self.postgres is not None:
            self.postgres.drop()
