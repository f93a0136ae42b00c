"""Probes: is this part of the gateway alive, and ready for work?

The ingress answers for itself over HTTP (:mod:`app.web.health`). Workers and beat
serve no HTTP, so a probe asks the heartbeats (:mod:`app.adapters.heartbeats`) instead:
``smsagg health --part worker`` (also ``python -m app.health --part worker``: the same
command, importing only click, redis and the settings, about a tenth of the CPU of the
whole ``smsagg`` CLI, which matters for a probe that runs every few seconds on every
pod) looks for a live heartbeat of that part *from this host* (``socket.gethostname()``:
a pod's name under Kubernetes, a container's id under Compose).

What each check says, and its exit status (0 yes, 1 no; a line on stdout says why):

* **alive** (the default; kubelet's liveness and startup probes): a heartbeat of the
  part from this host is there, or Redis does not answer, or refuses writes (then no
  heartbeat can be written). A Redis that is away is not this part's fault, and every
  part rides it out on its own (``docs/delivery.md``): restarting workers because Redis
  blinked would only add a thundering herd to the outage. A part that is gone or stopped
  beating (its key expires three beats after the last, 15 s) while Redis answers and
  takes writes is not alive.
* **ready** (``--ready``; readiness probes, rollouts waiting for new pods): Redis
  answers, a heartbeat of the part from this host is there, and the database answers
  ``SELECT 1``.

``--queue Q`` narrows "a heartbeat of the part" to a worker consuming ``Q`` (several
worker processes on one host, as the systemd units run them). ``--host`` asks about
another host, for an operator.
"""

from __future__ import annotations

import functools
import socket
from dataclasses import dataclass
from typing import Any

import click
import redis

from app.adapters.heartbeats import read_parts
from app.settings import SettingsError, get_settings

PARTS = ("ingress", "worker", "beat")
PROBE_TIMEOUT_SECONDS = 2.0
"""A probe gives Redis and the database this long each (within the timeouts the
manifests give kubelet: 5 s for the ingress, 10 s for an exec probe)."""


@dataclass(frozen=True)
class Verdict:
    ok: bool
    reason: str


def own_beats(records: list[dict[str, Any]], part: str, host: str, queue: str | None = None) -> list[dict[str, Any]]:
    """The heartbeat records of ``part`` on ``host`` (consuming ``queue``, when given)."""
    return [record for record in records if record.get("part") == part and record.get("host") == host
            and (queue is None or queue in record.get("queues", ()))]


def judge(beats: list[dict[str, Any]] | None, *, part: str, host: str, ready: bool,
          database_error: str | None = None) -> Verdict:
    """The verdict from this host's records of the part (``None``: Redis did not
    answer, or took no writes) and, for readiness, the database's error (``None``: it answered)."""
    what = f"{part} on {host}"
    if beats is None:
        if ready:
            return Verdict(False, f"{what}: not ready, Redis does not answer (or takes no writes)")
        return Verdict(True, f"{what}: alive as far as can be told (Redis does not answer or takes no writes; "
                             "the part rides it out)")
    if not beats:
        return Verdict(False, f"{what}: no heartbeat (the part is not running, or stopped beating)")
    pids = ", ".join(str(beat.get("pid")) for beat in beats)
    if ready and database_error is not None:
        return Verdict(False, f"{what}: not ready, the database does not answer ({database_error})")
    return Verdict(True, f"{what}: {'ready' if ready else 'alive'} (process {pids} beating)")


def redis_error(client: redis.Redis) -> str | None:
    """Why Redis does not answer a ``PING``, or ``None``."""
    try:
        client.ping()
    except (redis.RedisError, OSError) as exc:
        return str(exc) or type(exc).__name__
    return None


@functools.cache
def _probe_engine(database_url: str):
    """One connection at most, with short timeouts: a database that hangs (its host gone)
    holds at most one probe, and every other probe fails after ``PROBE_TIMEOUT_SECONDS``
    instead of piling up in the ingress's threads."""
    import sqlalchemy

    timeout = int(PROBE_TIMEOUT_SECONDS)
    connect_args = {"connect_timeout": timeout} if database_url.startswith("postgresql") else {"timeout": timeout}
    return sqlalchemy.create_engine(database_url, pool_size=1, max_overflow=0, pool_timeout=PROBE_TIMEOUT_SECONDS,
                                    pool_pre_ping=True, connect_args=connect_args)


def takes_writes(client: redis.Redis, key_prefix: str, host: str) -> bool:
    """Whether Redis accepts a write (a key of this probe's, expiring at once): one that
    answers reads but refuses writes (``OOM`` under ``noeviction``, ``READONLY`` on a
    replica) lets no heartbeat through, so a missing one proves nothing."""
    try:
        client.set(f"{key_prefix}probe:{host}", "1", px=1000)
    except redis.ResponseError:
        return False
    return True


def database_error(database_url: str) -> str | None:
    """Why the database does not answer ``SELECT 1``, or ``None``."""
    import sqlalchemy

    try:
        with _probe_engine(database_url).connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        return " ".join(str(getattr(exc, "orig", None) or exc).split())
    return None


def probe(part: str, *, ready: bool, host: str, queue: str | None = None) -> Verdict:
    """Run the check against this process's settings (Redis, key prefix, database)."""
    settings = get_settings()
    client = redis.Redis.from_url(settings.require_redis_url(), socket_connect_timeout=PROBE_TIMEOUT_SECONDS,
                                  socket_timeout=PROBE_TIMEOUT_SECONDS)
    try:
        beats = own_beats(read_parts(client, settings.key_prefix), part, host, queue)
        if not beats and not takes_writes(client, settings.key_prefix, host):
            beats = None  # no part can beat now (Redis full, or a read-only replica): not this part's fault
    except (redis.RedisError, OSError):
        beats = None
    finally:
        client.close()
    db_error = database_error(settings.database_url) if ready and beats else None
    return judge(beats, part=part, host=host, ready=ready, database_error=db_error)


@click.command("health")
@click.option("--part", type=click.Choice(PARTS), required=True, help="The part to check.")
@click.option("--ready", is_flag=True, help="Readiness (Redis, database, a heartbeat) instead of liveness.")
@click.option("--queue", default=None, help="Only a worker consuming this queue counts.")
@click.option("--host", default=None, help="The host whose part to check (default: this one).")
def health(part, ready, queue, host) -> None:
    """Probe a part on this host: exit 0 if alive (--ready: ready), 1 if not."""
    try:
        verdict = probe(part, ready=ready, host=host or socket.gethostname(), queue=queue)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(verdict.reason)
    raise SystemExit(0 if verdict.ok else 1)


if __name__ == "__main__":
    health(prog_name="python -m app.health")
