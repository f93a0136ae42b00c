"""``smsagg`` commands of the bulk area (a stable contract: extend, never rename).

* ``smsagg account credit show|add|deduct|postpaid|history LOGIN [AMOUNT]``
* ``smsagg price set --price P [--prefix DIGITS] [--carrier N]`` ; ``price list|remove``
* ``smsagg dnd add|remove NUMBER... ; dnd import FILE ; dnd list|check``
* ``smsagg optout add|remove --account L NUMBER ; optout list --account L``
* ``smsagg spam add PATTERN [--regex] ; spam list|remove ID``
* ``smsagg template add --account L BODY ; template list|remove ; template enforce L [--off]``
* ``smsagg ip deny CIDR [--note N] ; ip undeny CIDR ; ip list``
* ``smsagg schedule list [--account L] [--json] ; schedule cancel BATCH_ID``
* ``smsagg batch status BATCH_ID [--once] [--json]`` (a live progress bar by default)
* ``smsagg bulk resync``: rebuild Redis (schedule index, DND/opt-out sets, balances)
  from the database
"""

from __future__ import annotations

import json
import time
from datetime import datetime, timezone

import click
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from app.bulk import batches, compliance, credit
from app.bulk.models import Price
from app.bulk.resync import resync
from app.bulk.runtime import default_store
from app.bulk.settings import credits_to_units, units_to_credits
from app.cli import common
from app.services import accounts as accounts_svc
from app.services.errors import NotFound


def _store():
    common.settings().require_redis_url()
    return default_store()


def _units(amount: str) -> int:
    try:
        return credits_to_units(amount)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


def _account_id(session, login: str) -> int:
    return accounts_svc.get_account(session, login).id


# --- account credit ----------------------------------------------------------------------------

@click.group("credit")
def credit_group() -> None:
    """Prepaid credit (amounts in credits, up to four decimals)."""


@credit_group.command("show")
@click.argument("login")
@click.option("--json", "as_json", is_flag=True)
def credit_show(login, as_json) -> None:
    """Balance (live, from Redis) and the ledger's sum."""
    store = _store()
    with common.unit_of_work() as session:
        account_id = _account_id(session, login)
        credit.drain_journal(session, store)
        prepaid = credit.policy(session, account_id).prepaid
        live, ledger = credit.balance(store, account_id), credit.ledger_balance(session, account_id)
    figures = {"login": login, "prepaid": prepaid,
               "balance": str(units_to_credits(live)) if live is not None else None,
               "ledger": str(units_to_credits(ledger))}
    if as_json:
        click.echo(json.dumps(figures))
    else:
        click.echo(" ".join(f"{k}={v}" for k, v in figures.items()))


def _adjust(login: str, units: int) -> None:
    store = _store()
    with common.unit_of_work() as session:
        new_balance = credit.adjust(session, store, _account_id(session, login), units,
                                    kind="topup" if units >= 0 else "adjust")
    click.echo(f"account {login} balance {units_to_credits(new_balance)}")


@credit_group.command("add")
@click.argument("login")
@click.argument("amount")
def credit_add(login, amount) -> None:
    """Add credit (makes the account prepaid)."""
    _adjust(login, _units(amount))


@credit_group.command("deduct")
@click.argument("login")
@click.argument("amount")
def credit_deduct(login, amount) -> None:
    """Take credit away (a correction)."""
    _adjust(login, -_units(amount))


@credit_group.command("postpaid")
@click.argument("login")
def credit_postpaid(login) -> None:
    """Stop enforcing a balance for this account (its ledger is kept)."""
    store = _store()
    with common.unit_of_work() as session:
        credit.set_prepaid(session, store, _account_id(session, login), False)
    click.echo(f"account {login} is postpaid")


@credit_group.command("history")
@click.argument("login")
@click.option("--limit", type=int, default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def credit_history(login, limit, as_json) -> None:
    store = _store()
    with common.unit_of_work() as session:
        credit.drain_journal(session, store)
        rows = [[e.at, e.kind, str(units_to_credits(e.amount)), e.reference]
                for e in credit.history(session, _account_id(session, login), limit)]
    common.print_table(f"credit of {login}", ["at", "kind", "amount", "reference"], rows, as_json)


# --- prices ------------------------------------------------------------------------------------

@click.group()
def price() -> None:
    """Prices per segment: by destination prefix, carrier, or both (one route)."""


@price.command("set")
@click.option("--price", "amount", required=True, help="Credits per segment.")
@click.option("--prefix", default=None, help="Destination prefix (E.164 digits).")
@click.option("--carrier", type=int, default=None, help="Carrier ID.")
def price_set(amount, prefix, carrier) -> None:
    if prefix is None and carrier is None:
        raise click.UsageError("give --prefix, --carrier or both")
    units = _units(amount)
    if units < 0:
        raise click.BadParameter("a price may not be negative")
    with common.unit_of_work() as session:
        digits = accounts_svc.validate_prefix(prefix) if prefix is not None else None
        from sqlalchemy import select

        row = session.scalar(select(Price).where(Price.prefix.is_(digits) if digits is None else Price.prefix == digits,
                                                 Price.carrier_id.is_(carrier) if carrier is None
                                                 else Price.carrier_id == carrier))
        if row is None:
            session.add(Price(prefix=digits, carrier_id=carrier, price=units))
        else:
            row.price = units
    click.echo(f"price {units_to_credits(units)} per segment for prefix={prefix} carrier={carrier}")


@price.command("remove")
@click.option("--prefix", default=None)
@click.option("--carrier", type=int, default=None)
def price_remove(prefix, carrier) -> None:
    from sqlalchemy import select

    with common.unit_of_work() as session:
        row = session.scalar(select(Price).where(Price.prefix.is_(None) if prefix is None else Price.prefix == prefix,
                                                 Price.carrier_id.is_(None) if carrier is None
                                                 else Price.carrier_id == carrier))
        if row is None:
            raise NotFound("no such price")
        session.delete(row)
    click.echo("price removed")


@price.command("list")
@click.option("--json", "as_json", is_flag=True)
def price_list(as_json) -> None:
    from sqlalchemy import select

    with common.unit_of_work() as session:
        rows = [[p.prefix, p.carrier_id, str(units_to_credits(p.price))]
                for p in session.scalars(select(Price).order_by(Price.prefix, Price.carrier_id))]
    common.print_table("prices per segment", ["prefix", "carrier", "price"], rows, as_json)


# --- DND registry, opt-outs ----------------------------------------------------------------

@click.group()
def dnd() -> None:
    """The operator's do-not-disturb registry (bulk API: 1732)."""


@dnd.command("add")
@click.argument("numbers", nargs=-1, required=True)
def dnd_add(numbers) -> None:
    store = _store()
    with common.unit_of_work() as session:
        added = compliance.dnd_add(session, store, numbers)
    click.echo(f"{added} number(s) added")


@dnd.command("import")
@click.argument("path", type=click.File("r"))
def dnd_import(path) -> None:
    """Add every number of a file (one per line; blank lines and # comments skipped)."""
    numbers = [line.strip() for line in path if line.strip() and not line.lstrip().startswith("#")]
    store = _store()
    with common.unit_of_work() as session:
        added = compliance.dnd_add(session, store, numbers)
    click.echo(f"{added} number(s) added of {len(numbers)}")


@dnd.command("remove")
@click.argument("numbers", nargs=-1, required=True)
def dnd_remove(numbers) -> None:
    store = _store()
    with common.unit_of_work() as session:
        removed = compliance.dnd_remove(session, store, numbers)
    click.echo(f"{removed} number(s) removed")


@dnd.command("check")
@click.argument("number")
def dnd_check(number) -> None:
    with common.unit_of_work() as session:
        listed = compliance.dnd_contains(session, number.lstrip("+"))
    click.echo(f"{number} {'is' if listed else 'is not'} on the DND registry")


@dnd.command("list")
@click.option("--limit", type=int, default=None)
def dnd_list(limit) -> None:
    with common.unit_of_work() as session:
        for number in compliance.dnd_list(session, limit):
            click.echo(number)


@click.group()
def optout() -> None:
    """Destinations opted out of an account (bulk API: 1042; Genesys API: 99)."""


@optout.command("add")
@click.option("--account", "login", required=True)
@click.argument("number")
def optout_add(login, number) -> None:
    store = _store()
    with common.unit_of_work() as session:
        compliance.opt_out(session, store, _account_id(session, login), number, source="operator")
    click.echo(f"{number} opted out of {login}")


@optout.command("remove")
@click.option("--account", "login", required=True)
@click.argument("number")
def optout_remove(login, number) -> None:
    store = _store()
    with common.unit_of_work() as session:
        if not compliance.opt_in(session, store, _account_id(session, login), number):
            raise NotFound(f"{number} had not opted out of {login}")
    click.echo(f"{number} opted back in to {login}")


@optout.command("list")
@click.option("--account", "login", required=True)
@click.option("--json", "as_json", is_flag=True)
def optout_list(login, as_json) -> None:
    with common.unit_of_work() as session:
        rows = [[o.phone_number, o.source, o.at] for o in compliance.optouts_of(session, _account_id(session, login))]
    common.print_table(f"opt-outs of {login}", ["number", "source", "at"], rows, as_json)


# --- spam rules, templates, IP denylist ------------------------------------------------------

@click.group()
def spam() -> None:
    """Spam rules (bulk API: 1028): phrases (any case) or regular expressions."""


@spam.command("add")
@click.argument("pattern")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression.")
def spam_add(pattern, regex) -> None:
    with common.unit_of_work() as session:
        rule = compliance.spam_add(session, pattern, is_regex=regex)
        rule_id = rule.id
    click.echo(f"spam rule {rule_id} added")


@spam.command("remove")
@click.argument("rule_id", type=int)
def spam_remove(rule_id) -> None:
    with common.unit_of_work() as session:
        compliance.spam_remove(session, rule_id)
    click.echo(f"spam rule {rule_id} removed")


@spam.command("list")
@click.option("--json", "as_json", is_flag=True)
def spam_list(as_json) -> None:
    with common.unit_of_work() as session:
        rows = [[r.id, r.pattern, r.is_regex] for r in compliance.spam_list(session)]
    common.print_table("spam rules", ["id", "pattern", "regex"], rows, as_json)


@click.group()
def template() -> None:
    """Registered templates ({#var#} = 1 to 30 characters; bulk API: 1033)."""


@template.command("add")
@click.option("--account", "login", required=True)
@click.argument("body")
def template_add(login, body) -> None:
    with common.unit_of_work() as session:
        row = compliance.template_add(session, _account_id(session, login), body)
        template_id = row.id
    click.echo(f"template {template_id} added")


@template.command("remove")
@click.argument("template_id", type=int)
def template_remove(template_id) -> None:
    with common.unit_of_work() as session:
        compliance.template_remove(session, template_id)
    click.echo(f"template {template_id} removed")


@template.command("list")
@click.option("--account", "login", default=None)
@click.option("--json", "as_json", is_flag=True)
def template_list(login, as_json) -> None:
    with common.unit_of_work() as session:
        account_id = _account_id(session, login) if login else None
        rows = [[t.id, t.account_id, t.body] for t in compliance.templates_of(session, account_id)]
    common.print_table("templates", ["id", "account", "body"], rows, as_json)


@template.command("enforce")
@click.argument("login")
@click.option("--off", is_flag=True, help="Let the account send any text again.")
def template_enforce(login, off) -> None:
    """Make the account send only texts matching its templates."""
    with common.unit_of_work() as session:
        credit.policy(session, _account_id(session, login)).templates_only = not off
    click.echo(f"account {login} {'may send any text' if off else 'sends only registered templates'}")


@click.group()
def ip() -> None:
    """The client IP denylist (bulk API: 16, Genesys API: 2). Allowlists: account --allow-ip (18)."""


@ip.command("deny")
@click.argument("network")
@click.option("--note", default=None)
def ip_deny(network, note) -> None:
    with common.unit_of_work() as session:
        canonical = compliance.deny_ip(session, network, note).network
    click.echo(f"{canonical} denied")


@ip.command("undeny")
@click.argument("network")
def ip_undeny(network) -> None:
    with common.unit_of_work() as session:
        compliance.undeny_ip(session, network)
    click.echo(f"{network} no longer denied")


@ip.command("list")
@click.option("--json", "as_json", is_flag=True)
def ip_list(as_json) -> None:
    with common.unit_of_work() as session:
        rows = [[n.network, n.note] for n in compliance.denied_networks(session)]
    common.print_table("denied networks", ["network", "note"], rows, as_json)


# --- schedules and batches --------------------------------------------------------------------

@click.group()
def schedule() -> None:
    """Scheduled sends (/bulksms/schedulemsg)."""


@schedule.command("list")
@click.option("--account", "login", default=None)
@click.option("--json", "as_json", is_flag=True)
def schedule_list(login, as_json) -> None:
    store = _store()
    account_id = None
    if login:
        with common.unit_of_work() as session:
            account_id = _account_id(session, login)
    rows = [[s.batch_id, s.account_id, datetime.fromtimestamp(s.due, tz=timezone.utc).isoformat(),
             s.destinations, s.message[:40]] for s in batches.list_scheduled(store, account_id)]
    common.print_table("scheduled", ["batch", "account", "due (UTC)", "destinations", "message"], rows, as_json)


@schedule.command("cancel")
@click.argument("batch_id")
def schedule_cancel(batch_id) -> None:
    """Withdraw a scheduled batch (a prepaid account gets its credit back)."""
    store = _store()
    with common.unit_of_work() as session:
        done, state = batches.cancel(session, store, batch_id[:24])
    if not done:
        raise click.ClickException(f"batch {batch_id[:24]} not cancelled: {state}")
    click.echo(f"batch {batch_id[:24]} cancelled")


@click.group()
def batch() -> None:
    """Campaign progress."""


def _progress(batch_id: str):
    store = _store()
    with common.unit_of_work() as session:
        figures = batches.progress(session, store, batch_id[:24])
    if figures is None:
        raise NotFound(f"no batch {batch_id[:24]}")
    return figures


@batch.command("status")
@click.argument("batch_id")
@click.option("--once", is_flag=True, help="Print one snapshot and exit.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object (implies --once).")
@click.option("--interval", type=float, default=0.5, show_default=True)
def batch_status(batch_id, once, as_json, interval) -> None:
    """Queued / submitted / delivered / failed, live until the batch is finished (Ctrl-C stops)."""
    figures = _progress(batch_id)
    if as_json:
        click.echo(json.dumps(figures.as_dict()))
        return
    if once:
        click.echo(_line(figures))
        return
    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    with Progress(*columns, console=common.console) as bar:
        task = bar.add_task(_line(figures), total=max(figures.total, 1), completed=figures.done)
        try:
            while not figures.finished:
                time.sleep(interval)
                figures = _progress(batch_id)
                bar.update(task, completed=figures.done, description=_line(figures))
        except KeyboardInterrupt:
            pass
    click.echo(_line(figures))


def _line(p) -> str:
    return (f"batch {p.batch_id} {p.status}: queued {p.queued}, submitted {p.submitted}, "
            f"delivered {p.delivered}, failed {p.failed} of {p.total}")


@click.group()
def bulk() -> None:
    """Bulk API maintenance."""


@bulk.command("resync")
def bulk_resync() -> None:
    """Rebuild Redis (schedule index, DND/opt-out sets, missing balances) from the database."""
    common.settings().require_redis_url()
    common.database_url()
    click.echo(json.dumps(resync()))


COMMANDS = (price, dnd, optout, spam, template, ip, schedule, batch, bulk)


def attach(main: click.Group) -> None:
    """Add the bulk commands to ``smsagg`` (and ``credit`` under ``smsagg account``)."""
    for command in COMMANDS:
        main.add_command(command)
    main.commands["account"].add_command(credit_group)

