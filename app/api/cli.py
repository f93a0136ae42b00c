"""``smsagg apikey``: the REST API's account keys (a stable contract: extend, never rename).

* ``smsagg apikey create --account L [--name N] [--json]``: prints the token, once
* ``smsagg apikey rotate KEY_ID [--grace SECONDS] [--json]``: a new token for the key;
  the old one works ``--grace`` seconds longer (default 0: stops at once)
* ``smsagg apikey revoke KEY_ID``
* ``smsagg apikey list [--account L] [--json]``: key ids, names, status; never a token

Running ingress processes see a change within ``SMSAGG_DIRECTORY_REFRESH_SECONDS``.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone

import click

from app.api import keys
from app.cli import common


def _print_issued(issued: keys.IssuedKey, as_json: bool, verb: str) -> None:
    if as_json:
        click.echo(json.dumps({"key_id": issued.key_id, "account": issued.login, "name": issued.name,
                               "token": issued.token}))
        return
    click.echo(f"API key {issued.key_id} {verb} for {issued.login}. The token is shown once; store it now:")
    click.echo(issued.token)


@click.group("apikey")
def apikey() -> None:
    """REST API keys of accounts (Authorization: Bearer <token>)."""


@apikey.command("create")
@click.option("--account", "login", required=True, help="The account's login.")
@click.option("--name", default=None, help="What the key is for (shown by list).")
@click.option("--json", "as_json", is_flag=True)
def create(login, name, as_json) -> None:
    """Create a key and print its token (only now)."""
    with common.unit_of_work() as session:
        issued = keys.create_key(session, login, name)
    _print_issued(issued, as_json, "created")


@apikey.command("rotate")
@click.argument("key_id")
@click.option("--grace", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seconds the previous token keeps working.")
@click.option("--json", "as_json", is_flag=True)
def rotate(key_id, grace, as_json) -> None:
    """Give a key a new token (its id and name stay)."""
    with common.unit_of_work() as session:
        issued = keys.rotate_key(session, key_id, grace_seconds=grace, now=datetime.now(timezone.utc))
    _print_issued(issued, as_json, "rotated")


@apikey.command("revoke")
@click.argument("key_id")
def revoke(key_id) -> None:
    """Revoke a key for good."""
    with common.unit_of_work() as session:
        done = keys.revoke_key(session, key_id, now=datetime.now(timezone.utc))
    click.echo(f"API key {key_id} revoked" if done else f"API key {key_id} was already revoked")


@apikey.command("list")
@click.option("--account", "login", default=None, help="Only this account's keys.")
@click.option("--json", "as_json", is_flag=True)
def list_(login, as_json) -> None:
    """Every key (ids and names, never tokens)."""
    with common.unit_of_work() as session:
        rows = [[k.key_id, k.login, k.name, k.status, k.created_at, k.rotated_at, k.revoked_at,
                 k.previous_valid_until] for k in keys.list_keys(session, login)]
    common.print_table("API keys", ["key_id", "account", "name", "status", "created", "rotated", "revoked",
                                       "previous token until"], rows, as_json)
