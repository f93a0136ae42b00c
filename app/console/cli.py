"""``smsagg operator add|password|disable|enable|list`` (console logins) and
``smsagg status`` (what runs and what waits, the console's status page in a terminal).
A stable contract: extend, never rename."""

from __future__ import annotations

import json

import click

from app.console import operators as svc
from app.cli import common


def _password_option(function):
    return click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True,
                        help=f"At least {svc.MIN_PASSWORD_LENGTH} characters (asked for when not given).")(function)


@click.group()
def operator() -> None:
    """Operators of the web console (/console): logins of their own, not API accounts."""


@operator.command("add")
@click.argument("login")
@_password_option
def operator_add(login, password) -> None:
    with common.unit_of_work() as session:
        svc.add_operator(session, login, password)
    click.echo(f"operator {login} added")


@operator.command("password")
@click.argument("login")
@_password_option
def operator_password(login, password) -> None:
    """Set a new password; the operator's open sessions end."""
    with common.unit_of_work() as session:
        svc.set_password(session, login, password)
    click.echo(f"operator {login}: password changed")


@operator.command("disable")
@click.argument("login")
def operator_disable(login) -> None:
    """Refuse the operator's logins; open sessions end at their next request."""
    with common.unit_of_work() as session:
        svc.set_enabled(session, login, False)
    click.echo(f"operator {login} disabled")


@operator.command("enable")
@click.argument("login")
def operator_enable(login) -> None:
    with common.unit_of_work() as session:
        svc.set_enabled(session, login, True)
    click.echo(f"operator {login} enabled")


@operator.command("list")
@click.option("--json", "as_json", is_flag=True)
def operator_list(as_json) -> None:
    with common.unit_of_work() as session:
        rows = [[o.login, o.enabled, o.created_at, o.last_login_at] for o in svc.list_operators(session)]
    common.print_table("operators", ["login", "enabled", "created_at", "last_login_at"], rows, as_json)


@click.command()
@click.option("--json", "as_json", is_flag=True)
def status(as_json) -> None:
    """Parts up (with their SMPP binds), backlog and throughput per stage, alerts."""
    from app.adapters.redis_scripts import connect
    from app.services.status import gateway_status

    import redis

    config = common.settings()
    try:
        summary = gateway_status(connect(config.require_redis_url()), config.key_prefix)
    except redis.RedisError as exc:
        raise click.ClickException(f"Redis unavailable: {exc}") from exc
    if as_json:
        click.echo(json.dumps(summary.as_dict()))
        return
    print_table = common.print_table
    print_table("parts", ["part", "host", "pid", "up_s", "queues", "binds", "per_s"],
                [[p.part, p.host, p.pid, p.up_seconds, ",".join(p.queues),
                  " ".join(f"{c}:{up}/{total}" for c, (up, total) in p.binds.items()), p.per_second]
                 for p in summary.parts], False)
    print_table("stages", ["queue", "waiting", "claimed", "task_messages", "per_s", "workers"],
                [[q.queue, q.waiting, q.claimed, q.task_messages, q.per_second, q.consumers] for q in summary.queues],
                False)
    for alert in summary.alerts:
        click.echo(f"! {alert}")


COMMANDS = (operator, status)


def attach(main: click.Group) -> None:
    for command in COMMANDS:
        main.add_command(command)
