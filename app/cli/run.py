"""``smsagg up|web|worker|beat``: running the gateway, whole or in parts."""

from __future__ import annotations

import os
import sys

import click

from app.cli.common import settings
from app.settings import Settings
from app.domain.priorities import ALL_QUEUES


@click.command()
@click.option("--host", default=None, help="Address to listen on (default SMSAGG_WEB_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default SMSAGG_WEB_PORT, 8080).")
@click.option("--workers", type=int, default=None, help="Ingress processes (default SMSAGG_WEB_WORKERS, 2).")
@click.option("--threads", type=int, default=None, help="Threads per process (default SMSAGG_WEB_THREADS: 4 under granian, 8 under gunicorn).")
def web(host, port, workers, threads) -> None:
    """Run the HTTP ingress under granian (or gunicorn: SMSAGG_WEB_SERVER)."""
    from app.web.server import serve

    config = settings()
    config.require_redis_url()
    serve(host or config.web_host, port or config.web_port, server=config.web_server,
          workers=workers or config.web_workers, threads=threads or config.web_threads,
          max_request_line=config.max_request_line)


def _parse_queues(value: str) -> list[str]:
    queues = [q.strip() for q in value.split(",") if q.strip()]
    unknown = sorted(set(queues) - set(ALL_QUEUES))
    if not queues or unknown:
        raise click.BadParameter(f"unknown queue(s) {unknown}; choose from {', '.join(ALL_QUEUES)}")
    return queues


@click.command()
@click.option("--queues", required=True, help=f"Comma-separated, in priority order: {','.join(ALL_QUEUES)}")
@click.option("--concurrency", type=int, default=1, show_default=True)
@click.option("--pool", type=click.Choice(["solo", "prefork", "threads"]), default="solo", show_default=True)
@click.option("--name", default=None, help="Worker node name (default: smsagg-<first queue>@%h).")
def worker(queues, concurrency, pool, name) -> None:
    """Run a Celery worker consuming the given queues."""
    queue_list = _parse_queues(queues)
    settings().require_redis_url()
    from workers.celery_app import celery

    node = name or f"smsagg-{queue_list[0]}-{os.getpid()}@%h"
    celery.worker_main(
        ["worker", "-Q", ",".join(queue_list), "-c", str(concurrency), "-P", pool, "-n", node,
         "-l", settings().log_level, "--without-gossip", "--without-mingle"]
    )


@click.command()
def beat() -> None:
    """Run Celery beat (releases scheduled work)."""
    settings().require_redis_url()
    from workers.celery_app import celery

    schedule_file = settings().home / "celerybeat-schedule"
    settings().home.mkdir(parents=True, exist_ok=True)
    celery.start(["beat", "-l", settings().log_level, "-s", str(schedule_file)])


@click.command()
@click.option("--port", type=int, default=None, help="Ingress port (default SMSAGG_WEB_PORT, 8080).")
@click.option("--redis-port", type=int, default=None, help="Port of the embedded Redis (default: a free port).")
@click.option("--no-smsc-sim", is_flag=True, help="Do not run the SMSC simulator as the default carrier.")
def up(port, redis_port, no_smsc_sim) -> None:
    """Run the whole gateway in the foreground on embedded defaults, restarting a part
    that dies. Commands typed in another terminal with the same SMSAGG_HOME find it
    through its run file. Ctrl-C stops it."""
    from app.supervisor import run_gateway

    # The environment alone: a run file in the home is what this command writes.
    sys.exit(run_gateway(Settings.from_env(), web_port=port, redis_port=redis_port, smsc_sim=not no_smsc_sim))


COMMANDS = (up, web, worker, beat)
