"""``smsagg gms ...`` commands: mobile-services apps, agents and resource groups.

A stable contract (extend, never rename):

* ``smsagg gms app add --name APP --password P``
* ``smsagg gms group add --name GROUP --numbers N1,N2,... [--strategy random|round-robin]
  [--booking-timeout SECONDS]``
* ``smsagg gms group show GROUP``: each number with its live reservation, if any.
"""

from __future__ import annotations

import click

from app.cli import common
from app.gms import registry
from app.gms.config import ConfigError, load_config


def _config():
    try:
        return load_config(common.settings().home)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from exc


@click.group()
def gms() -> None:
    """Mobile services: apps, agents, resource groups."""


@gms.group("app")
def app_group() -> None:
    """Applications allowed to use the GMS API (HTTP Basic credentials)."""


@app_group.command("add")
@click.option("--name", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True)
def app_add(name, password) -> None:
    """Register an application."""
    with common.unit_of_work() as session:
        registry.add_app(session, name, password)
    click.echo(f"app {name} added")


@app_group.command("password")
@click.argument("name")
@click.option("--password", required=True, prompt=True, hide_input=True)
def app_password(name, password) -> None:
    """Set an application's password."""
    with common.unit_of_work() as session:
        registry.set_app_password(session, name, password)
    click.echo(f"app {name} updated")


@app_group.command("disable")
@click.argument("name")
def app_disable(name) -> None:
    """Refuse the application's requests from now on (within the credential cache time)."""
    with common.unit_of_work() as session:
        registry.set_app_enabled(session, name, False)
    click.echo(f"app {name} disabled")


@app_group.command("enable")
@click.argument("name")
def app_enable(name) -> None:
    with common.unit_of_work() as session:
        registry.set_app_enabled(session, name, True)
    click.echo(f"app {name} enabled")


@app_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def app_list(as_json) -> None:
    with common.unit_of_work() as session:
        rows = [[a.name, a.enabled, a.created_at] for a in registry.list_apps(session)]
    common.print_table("GMS apps", ["name", "enabled", "created_at"], rows, as_json)


@gms.group("agent")
def agent_group() -> None:
    """Contact-center agents who answer chats (agent page: /genesys/agent/)."""


@agent_group.command("add")
@click.option("--name", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True)
@click.option("--nickname", help="Name shown to customers (default: the agent's name).")
def agent_add(name, password, nickname) -> None:
    with common.unit_of_work() as session:
        registry.add_agent(session, name, password, nickname)
    click.echo(f"agent {name} added")


@agent_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def agent_list(as_json) -> None:
    with common.unit_of_work() as session:
        rows = [[a.name, a.nickname, a.enabled] for a in registry.list_agents(session)]
    common.print_table("GMS agents", ["name", "nickname", "enabled"], rows, as_json)


@gms.group("group")
def group_group() -> None:
    """Resource groups: pools of access numbers (DNIS)."""


@group_group.command("add")
@click.option("--name", required=True)
@click.option("--numbers", required=True, help="Access numbers, comma separated.")
@click.option("--strategy", type=click.Choice(["random", "round-robin"]), default="random", show_default=True)
@click.option("--booking-timeout", type=int, help="Seconds a number stays reserved (default: gms.ini's).")
def group_add(name, numbers, strategy, booking_timeout) -> None:
    """Create a resource group."""
    config = _config()
    with common.unit_of_work() as session:
        group = registry.add_group(session, name, numbers, strategy=strategy, booking_timeout=booking_timeout,
                                   config=config)
        count = len(group.numbers)
    click.echo(f"resource group {name} added with {count} number(s)")


@group_group.command("remove")
@click.argument("name")
def group_remove(name) -> None:
    with common.unit_of_work() as session:
        registry.remove_group(session, name)
    click.echo(f"resource group {name} removed")


@group_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def group_list(as_json) -> None:
    config = _config()
    with common.unit_of_work() as session:
        groups = registry.all_groups(session, config)
    rows = [[g.name, g.source, g.strategy.value, g.booking_timeout or "", len(g.numbers)] for g in groups.values()]
    common.print_table("GMS resource groups", ["name", "source", "strategy", "booking_timeout", "numbers"], rows, as_json)


@group_group.command("show")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True)
def group_show(name, as_json) -> None:
    """Each number of GROUP with its live reservation, if any."""
    config = _config()
    with common.unit_of_work() as session:
        group = registry.all_groups(session, config).get(name)
    if group is None:
        raise click.ClickException(f"no resource group named {name}")
    reservations, now_ms = {}, 0
    current = common.settings()
    if current.redis_url:
        from app.adapters.redis_scripts import connect
        from app.gms.store import GmsStore

        store = GmsStore(connect(current.redis_url), current.key_prefix)
        reservations = store.reservations(list(group.numbers))
        now_ms = store.redis_time_ms()
    elif not as_json:
        click.echo("SMSAGG_REDIS_URL is not set: reservations are not shown", err=True)
    rows = []
    for number in group.numbers:
        r = reservations.get(number)
        rows.append([
            number,
            "reserved" if r else "free",
            r.service_id if r else None,
            r.app if r else None,
            r.phone if r else None,
            "yes" if r and r.code else ("no" if r else None),
            round((r.expires_ms - now_ms) / 1000, 1) if r else None,
        ])
    columns = ["number", "state", "service", "app", "phone", "code", "expires_in_s"]
    if as_json:
        common.print_table(group.name, columns, rows, True)
        return
    booking = f"{group.booking_timeout} s" if group.booking_timeout else "default"
    click.echo(f"resource group {group.name}: {group.strategy.value}, booking {booking}, from the {group.source}")
    for row in rows:
        details = "  ".join(f"{k}={v}" for k, v in zip(columns[2:], row[2:]) if v is not None)
        click.echo(f"  {row[0]:<16} {row[1]:<9} {details}".rstrip())


@gms.group("config")
def config_group() -> None:
    """The gms.ini file under SMSAGG_HOME."""


@config_group.command("check")
def config_check() -> None:
    """Parse gms.ini and report what it defines (exit 1 on an error)."""
    config = _config()
    click.echo(f"services: {', '.join(sorted(config.services)) or '(none)'}")
    click.echo(f"resource groups: {', '.join(sorted(config.groups)) or '(none)'}")
    endpoints = [f"{name} ({', '.join(sorted(agents))})" for name, agents in sorted(config.endpoints.items())]
    click.echo(f"chat endpoints: {', '.join(endpoints) or '(none)'}; request-chat default: "
               f"{config.options.chat_endpoint}")
    allowed = config.options.match_apps
    click.echo(f"match-interaction: {'any app' if allowed is None else ', '.join(sorted(allowed))}")


@click.command("cometd")
@click.option("--host", default=None, help="Address to listen on (default SMSAGG_WEB_HOST, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default SMSAGG_COMETD_PORT, 8081).")
def cometd(host, port) -> None:
    """Serve the GMS CometD long-polls (/genesys/cometd) off the ingress (asyncio)."""
    from app.gms.cometd_server import serve

    config = common.settings()
    config.require_redis_url()
    _config()  # a malformed gms.ini stops the start with its section and option named
    serve(config, host or config.web_host, port or config.cometd_port)
