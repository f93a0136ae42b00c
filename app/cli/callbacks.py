"""``smsagg callbacks list|show|replay``: the DR/MO callbacks owed to clients."""

from __future__ import annotations

import json

import click

from app.adapters.callback_queue import enqueue_callbacks
from app.adapters.redis_scripts import connect
from app.cli.common import console, database_url, print_table, settings, unit_of_work
from app.services import callbacks as svc

_COLUMNS = ["id", "account", "kind", "message_id", "status", "attempts", "last_error", "next_attempt_at"]


@click.group()
def callbacks() -> None:
    """DR and MO callbacks: list, inspect, replay dead-lettered ones."""


@callbacks.command("list")
@click.option("--failed", is_flag=True, help="Only dead-lettered callbacks (retries exhausted).")
@click.option("--status", type=click.Choice(svc.STATUSES), default=None, help="Only callbacks in this status.")
@click.option("--account", "login", default=None, help="Only this account's callbacks.")
@click.option("--limit", type=int, default=100, show_default=True, help="Newest first, at most this many.")
@click.option("--json", "as_json", is_flag=True)
def callbacks_list(failed, status, login, limit, as_json) -> None:
    """List callbacks, newest first."""
    if failed and status not in (None, "dead"):
        raise click.BadParameter("--failed lists dead callbacks; it cannot be combined with another --status")
    with unit_of_work() as session:
        rows = svc.list_callbacks(session, status="dead" if failed else status, account=login, limit=limit)
    print_table("callbacks", _COLUMNS, [[row[c] for c in _COLUMNS] for row in rows], as_json)


@callbacks.command("show")
@click.argument("callback_id")
@click.option("--json", "as_json", is_flag=True)
def callbacks_show(callback_id, as_json) -> None:
    """One callback with its fields and every attempt."""
    with unit_of_work() as session:
        view = svc.describe_callback(session, callback_id)
    if as_json:
        click.echo(json.dumps(view, default=str, indent=2))
        return
    for key in ("id", "account", "kind", "status", "url", "attempts", "max_retries", "retry_interval",
                "last_error", "created_at", "next_attempt_at", "delivered_at"):
        console.print(f"[bold]{key}[/bold]: {'' if view[key] is None else view[key]}", highlight=False)
    console.print("[bold]fields[/bold]: " + "&".join(f"{name}={value}" for name, value in view["fields"]),
                  highlight=False)
    print_table("attempts", ["at", "status_code", "latency_ms", "error"],
                [[a["at"], a["status_code"], a["latency_ms"], a["error"]] for a in view["attempt_log"]], False)


@callbacks.command("replay")
@click.argument("callback_ids", nargs=-1)
@click.option("--all-failed", is_flag=True, help="Every dead-lettered callback (of --account, if given).")
@click.option("--account", "login", default=None, help="With --all-failed: only this account's.")
@click.option("--keep-url", is_flag=True, help="Send to the URL recorded with the callback, not the account's current one.")
def callbacks_replay(callback_ids, all_failed, login, keep_url) -> None:
    """Send dead-lettered callbacks again (attempts start from zero)."""
    if callback_ids and all_failed:
        raise click.BadParameter("give callback ids or --all-failed, not both")
    config = settings()
    client = connect(config.require_redis_url())
    ids = svc.replay_and_enqueue(database_url(), lambda replayed: enqueue_callbacks(client, replayed),
                                 ids=callback_ids, all_failed=all_failed, account=login, refresh_url=not keep_url)
    skipped = [i for i in callback_ids if i not in set(ids)]
    click.echo(f"{len(ids)} callback(s) queued again")
    if skipped:
        click.echo(f"not dead, left alone: {', '.join(skipped)}")


COMMANDS = (callbacks,)
