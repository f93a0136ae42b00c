"""``smsagg up``: every part of the gateway as child processes of one foreground
command, on embedded defaults.

Parts: an embedded Redis (unless ``SMSAGG_REDIS_URL`` is set), the SQLite schema
brought up to date, the SMSC and MMSC simulators (unless ``--no-smsc-sim``; on a
fresh gateway: carriers 1 and 2 with a catch-all route, so a first SMS and MMS go
out and their receipts come back), the ingress, one worker for the interactive queues,
one for the bulk queues, one for inbound, two for callbacks (sending and
recording callbacks is the busiest stage), and beat. If any part dies the others
are stopped too (a half-running gateway is worse than a stopped one). Ctrl-C or
SIGTERM stops everything, Redis last so it can flush its append-only file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

from rich.console import Console

from app.db import migrate
from app.db.session import session_scope
from app.services.accounts import ensure_simulator_carrier, mmsc_simulator_options
from app.domain.priorities import BULK_QUEUES, CALLBACK_QUEUE, INBOUND_QUEUE, INTERACTIVE_QUEUES
from app.embedded_redis import start_embedded_redis
from app.settings import Settings

console = Console()
STOP_TIMEOUT_SECONDS = 15


@dataclass
class Part:
    name: str
    process: subprocess.Popen


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
    )
    return env


def _stop(parts: list[Part]) -> None:
    for part in parts:
        if part.process.poll() is None:
            part.process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT_SECONDS
    for part in parts:
        try:
            part.process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            part.process.kill()
            part.process.wait()


def _banner(settings: Settings, redis_url: str, web_port: int, embedded: bool) -> None:
    console.print("[bold green]smsagg is up[/]")
    console.print(f"  ingress   http://127.0.0.1:{web_port}/httpapi/receiver")
    console.print(f"  redis     {redis_url}{' (embedded, data in ' + str(settings.home / 'redis') + ')' if embedded else ''}")
    console.print(f"  database  {settings.database_url}")
    console.print(f"  workers   {','.join(INTERACTIVE_QUEUES)} | {','.join(BULK_QUEUES)} | {INBOUND_QUEUE},{CALLBACK_QUEUE}")
    console.print("  first account:  smsagg account create --login demo --password secret --sender 12345")
    console.print("  send one:       curl 'http://127.0.0.1:%d/httpapi/receiver?login=demo&password=secret"
                  "&phone_number=12025550100&sender=12345&message=Hello&message_id=1'" % web_port)
    console.print("[dim]Ctrl-C stops everything.[/]")


def run_gateway(settings: Settings, *, web_port: int | None, redis_port: int, smsc_sim: bool) -> int:
    settings.home.mkdir(parents=True, exist_ok=True)
    web_port = web_port or settings.web_port
    redis_parts: list[Part] = []
    redis_url = settings.redis_url
    if redis_url is None:
        redis_parts.append(Part("redis", start_embedded_redis(settings.home / "redis", redis_port)))
        redis_url = f"redis://127.0.0.1:{redis_port}/0"
    migrate.upgrade(settings.database_url)
    env = _child_environment(settings, redis_url)
    commands = {}
    if smsc_sim:
        commands["smsc-sim"] = _cli("smsc-sim", "--port", str(settings.smsc_sim_port))
        with session_scope(settings.database_url) as session:
            if ensure_simulator_carrier(session, settings.smsc_sim_port, mmsc_port=settings.mmsc_sim_port):
                console.print("carriers 1 and 2 are the SMSC and MMSC simulators: every SMS routes to 1, every MMS to 2")
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
    parts = [Part(name, subprocess.Popen(command, env=env)) for name, command in commands.items()]
    _banner(settings, redis_url, web_port, embedded=bool(redis_parts))
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    exit_code = 0
    try:
        while True:
            dead = [part for part in parts if part.process.poll() is not None]
            if dead:
                console.print(f"[red]{dead[0].name} exited with {dead[0].process.returncode}; stopping[/]")
                exit_code = 1
                break
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping ...")
    finally:
        _stop(parts)
        _stop(redis_parts)
    return exit_code
