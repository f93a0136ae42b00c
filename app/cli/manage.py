"""``smsagg account|sender|carrier|route|db``: managing what the gateway knows."""

from __future__ import annotations

import json

import click

from app.cli.common import print_table, settings, unit_of_work
from app.db import migrate
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.domain.states import DrMask
from app.services.carriers import carrier_kinds


def _account_options(
    rate, burst, max_length, priority, dr_url, mo_url, message_id_optional, allow_ip, callback_interval,
    callback_retries, dr_mask,
) -> AccountOptions:
    return AccountOptions(
        rate=rate,
        burst=burst,
        max_length=max_length,
        priority=priority,
        dr_url=dr_url,
        mo_url=mo_url,
        message_id_optional=message_id_optional,
        allowed_ips=tuple(allow_ip) if allow_ip else None,
        callback_retry_interval=callback_interval,
        callback_max_retries=callback_retries,
        dr_mask=dr_mask,
    )


def account_option_flags(function):
    options = [
        click.option("--rate", type=float, help="Submissions per second (0 = unlimited)."),
        click.option("--burst", type=int, help="Token-bucket size: submissions allowed at once."),
        click.option("--max-length", type=int, help="Longest message text, in characters."),
        click.option("--priority", help="Default priority: INTERACTIVE, INTERACTIVE_LOW, BULK, BULK_LOW."),
        click.option("--dr-url", help="Where delivery receipts are POSTed ('' to clear)."),
        click.option("--mo-url", help="Where mobile-originated messages are POSTed ('' to clear)."),
        click.option("--message-id-optional/--message-id-required", default=None,
                     help="Whether requests may omit message_id."),
        click.option("--allow-ip", multiple=True, help="Client IP or CIDR allowed to submit (repeatable)."),
        click.option("--callback-interval", type=int, help="Seconds between DR/MO callback retries (default 600)."),
        click.option("--callback-retries", type=int, help="DR/MO callback retries before dead-lettering (default 25)."),
        click.option("--dr-mask", type=click.Choice([m.value for m in DrMask], case_sensitive=False),
                     help="Which states DR callbacks report: all (6, then the final one; default) or final."),
    ]
    for option in reversed(options):
        function = option(function)
    return function


@click.group()
def account() -> None:
    """Client accounts."""


@account.command("create")
@click.option("--login", required=True)
@click.option("--password", required=True, prompt=True, hide_input=True)
@click.option("--sender", "senders", multiple=True, help="Sender to register to this account (repeatable).")
@account_option_flags
def account_create(login, password, senders, **flags) -> None:
    """Create an account (and register its senders)."""
    with unit_of_work() as session:
        svc.create_account(session, login, password, senders=tuple(senders), options=_account_options(**flags),
                           default_max_length=settings().default_max_message_length)
    click.echo(f"account {login} created")


@account.command("update")
@click.argument("login")
@click.option("--password", help="Set a new password.")
@account_option_flags
def account_update(login, password, **flags) -> None:
    """Change an account's settings."""
    with unit_of_work() as session:
        svc.update_account(session, login, password=password, options=_account_options(**flags))
    click.echo(f"account {login} updated")


@account.command("disable")
@click.argument("login")
def account_disable(login) -> None:
    """Refuse every request of this account (result_code=2) from now on."""
    with unit_of_work() as session:
        svc.update_account(session, login, enabled=False, options=AccountOptions())
    click.echo(f"account {login} disabled")


@account.command("enable")
@click.argument("login")
def account_enable(login) -> None:
    with unit_of_work() as session:
        svc.update_account(session, login, enabled=True, options=AccountOptions())
    click.echo(f"account {login} enabled")


@account.command("show")
@click.argument("login")
def account_show(login) -> None:
    """Print an account as JSON (never its password)."""
    with unit_of_work() as session:
        click.echo(json.dumps(svc.describe_account(svc.get_account(session, login)), indent=2))


@account.command("list")
@click.option("--json", "as_json", is_flag=True)
def account_list(as_json) -> None:
    with unit_of_work() as session:
        rows = [
            [a.login, a.enabled, a.default_priority, a.rate, a.burst, a.max_message_length, a.dr_mask,
             ",".join(sorted(s.address for s in a.senders))]
            for a in svc.list_accounts(session)
        ]
    print_table("accounts", ["login", "enabled", "priority", "rate", "burst", "max_length", "dr_mask", "senders"],
                rows, as_json)


@click.group()
def sender() -> None:
    """Source addresses: shortcodes, long numbers, alphanumeric ids."""


@sender.command("add")
@click.argument("address")
@click.option("--account", "login", help="Account that may send from it.")
def sender_add(address, login) -> None:
    with unit_of_work() as session:
        added = svc.add_sender(session, address, login=login)
        kind = added.kind
    click.echo(f"sender {address} ({kind}) {'registered to ' + login if login else 'provisioned'}")


@sender.command("remove")
@click.argument("address")
def sender_remove(address) -> None:
    with unit_of_work() as session:
        svc.remove_sender(session, address)
    click.echo(f"sender {address} removed")


@sender.command("list")
@click.option("--json", "as_json", is_flag=True)
def sender_list(as_json) -> None:
    with unit_of_work() as session:
        rows = [[s.address, s.kind, s.account.login if s.account else None, s.enabled] for s in svc.list_senders(session)]
    print_table("senders", ["address", "kind", "account", "enabled"], rows, as_json)


SECRET_SETTINGS = frozenset({"password", "webhook_token"})


@click.group()
def carrier() -> None:
    """Upstream carriers (SMPP, HTTP or MM7)."""


@carrier.command("add")
@click.option("--id", "carrier_id", type=int, required=True, help="Numeric Carrier ID (the Reach list's).")
@click.option("--name", required=True)
@click.option("--smpp", "smpp_address", metavar="HOST:PORT", help="SMSC address for an SMPP 3.4 carrier.")
@click.option("--system-id", help="SMPP system_id.")
@click.option("--password", "smpp_password", help="SMPP password (with --mm7: the HTTP Basic password).")
@click.option("--system-type", default="", help="SMPP system_type.")
@click.option("--http", "http_url", metavar="URL", help="URL of an HTTP carrier API.")
@click.option("--mm7", "mm7_url", metavar="URL", help="MM7 endpoint of an MMSC (an MMS carrier).")
@click.option("--vasp-id", help="MM7 VASPID: who this gateway is at the MMSC.")
@click.option("--vas-id", help="MM7 VASID: the service.")
@click.option("--service-code", help="MM7 ServiceCode (optional).")
@click.option("--username", help="MM7 HTTP Basic user name (optional; the password is --password).")
@click.option("--webhook-token", help="Token the carrier presents when it reports to /carriers/<id>/... "
                                      "(default for --mm7: a random one, printed).")
@click.option("--throughput", type=float, help="Messages per second this carrier accepts.")
def carrier_add(carrier_id, name, smpp_address, system_id, smpp_password, system_type, http_url, mm7_url, vasp_id,
                vas_id, service_code, username, webhook_token, throughput) -> None:
    """Add a carrier: --smpp HOST:PORT --system-id X --password Y, --http URL, or
    --mm7 URL --vasp-id X --vas-id Y."""
    if sum(map(bool, (smpp_address, http_url, mm7_url))) != 1:
        raise click.UsageError("give exactly one of --smpp HOST:PORT, --http URL or --mm7 URL")
    if mm7_url:
        if not vasp_id or not vas_id:
            raise click.UsageError("--mm7 needs --vasp-id and --vas-id")
        connector = "mm7"
        webhook_token = webhook_token or svc.new_webhook_token()
        config = {"url": mm7_url, "vasp_id": vasp_id, "vas_id": vas_id, "webhook_token": webhook_token}
        config |= {key: value for key, value in (("service_code", service_code), ("username", username),
                                                  ("password", smpp_password)) if value is not None}
    elif smpp_address:
        host, _, port = smpp_address.rpartition(":")
        if not host or not port.isdigit() or not system_id or smpp_password is None:
            raise click.UsageError("--smpp needs HOST:PORT, --system-id and --password")
        connector = "smpp"
        config = {"host": host, "port": int(port), "system_id": system_id, "password": smpp_password,
                  "system_type": system_type}
    else:
        connector, config = "http", {"url": http_url}
    if webhook_token and connector != "mm7":
        config["webhook_token"] = webhook_token
    with unit_of_work() as session:
        svc.add_carrier(session, carrier_id, name, connector=connector, settings=config, throughput=throughput)
    click.echo(f"carrier {carrier_id} ({name}, {connector}) added")
    if connector == "mm7":
        click.echo(f"the MMSC reports to POST /carriers/{carrier_id}/mm7 with HTTP Basic {carrier_id}:{webhook_token}")


@carrier.command("remove")
@click.argument("carrier_id", type=int)
def carrier_remove(carrier_id) -> None:
    with unit_of_work() as session:
        deleted = svc.remove_carrier(session, carrier_id)
    click.echo(f"carrier {carrier_id} {'removed' if deleted else 'disabled (messages went through it)'}")


@carrier.command("result-codes")
@click.argument("carrier_id", type=int)
@click.argument("table_file", type=click.File("r"), required=False)
@click.option("--clear", is_flag=True, help="Drop the carrier's table: the default one applies.")
def carrier_result_codes(carrier_id, table_file, clear) -> None:
    """Set the carrier's DR result-code table from a JSON file ('-': stdin), or --clear
    it; without either, print it (docs/delivery.md, "Result codes")."""
    if table_file is not None and clear:
        raise click.UsageError("give a table file or --clear, not both")
    if table_file is None and not clear:
        with unit_of_work() as session:
            found = {c.id: c for c in svc.list_carriers(session)}.get(carrier_id)
            table = (found.settings or {}).get("result_codes") if found else None
        if found is None:
            raise click.ClickException(f"no carrier {carrier_id}")
        click.echo(json.dumps(table or {}, indent=2, sort_keys=True))
        return
    try:
        table = None if clear else json.load(table_file)
    except json.JSONDecodeError as exc:
        raise click.ClickException(f"{table_file.name}: not JSON ({exc})") from exc
    with unit_of_work() as session:
        svc.set_carrier_result_codes(session, carrier_id, table)
    click.echo(f"carrier {carrier_id}: {'default result codes' if clear else 'result-code table set'}")


@carrier.command("list")
@click.option("--json", "as_json", is_flag=True)
def carrier_list(as_json) -> None:
    with unit_of_work() as session:
        rows = [[c.id, c.name, c.connector, ",".join(carrier_kinds(c.connector, c.settings)), c.throughput, c.enabled,
                 json.dumps({k: v for k, v in c.settings.items() if k not in SECRET_SETTINGS})]
                for c in svc.list_carriers(session)]
    print_table("carriers", ["id", "name", "connector", "carries", "throughput", "enabled", "settings"], rows,
                as_json)


@click.group()
def route() -> None:
    """Routes: E.164 prefix -> carrier; the longest prefix wins."""


@route.command("add")
@click.option("--prefix", help="Digits of an E.164 prefix, starting with a country code.")
@click.option("--default", "catch_all", is_flag=True, help="The catch-all route, for numbers no prefix matches.")
@click.option("--carrier", "carrier_id", type=int, required=True)
@click.option("--weight", type=int, default=1, show_default=True, help="Share among carriers of one prefix.")
@click.option("--position", type=int, default=0, show_default=True,
              help="Order among the prefix's carriers (the weighted round robin walks them in this order).")
def route_add(prefix, catch_all, carrier_id, weight, position) -> None:
    if bool(prefix) == catch_all:
        raise click.UsageError("give exactly one of --prefix DIGITS or --default")
    prefix = svc.DEFAULT_ROUTE_PREFIX if catch_all else prefix
    with unit_of_work() as session:
        added = svc.add_route(session, prefix, carrier_id, weight=weight, position=position)
        digits = added.prefix or "(default)"
    click.echo(f"route {digits} -> carrier {carrier_id} added")


@route.command("remove")
@click.option("--prefix")
@click.option("--default", "catch_all", is_flag=True, help="The catch-all route.")
@click.option("--carrier", "carrier_id", type=int, required=True)
def route_remove(prefix, catch_all, carrier_id) -> None:
    if bool(prefix) == catch_all:
        raise click.UsageError("give exactly one of --prefix DIGITS or --default")
    prefix = svc.DEFAULT_ROUTE_PREFIX if catch_all else prefix
    with unit_of_work() as session:
        svc.remove_route(session, prefix, carrier_id)
    click.echo(f"route {prefix} -> carrier {carrier_id} removed")


@route.command("list")
@click.option("--json", "as_json", is_flag=True)
def route_list(as_json) -> None:
    with unit_of_work() as session:
        rows = [[r.prefix, r.carrier_id, r.weight, r.position] for r in svc.list_routes(session)]
    print_table("routes", ["prefix", "carrier", "weight", "position"], rows, as_json)


@click.group()
def db() -> None:
    """The database schema."""


@db.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""
    migrate.upgrade(settings().database_url)
    click.echo("database is up to date")


COMMANDS = (account, sender, carrier, route, db)
