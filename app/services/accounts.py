"""Managing accounts, senders, carriers and routes (what the ``smsagg`` CLI drives).

Each function takes an open SQLAlchemy session and leaves the commit to the caller's
unit of work. Passwords are hashed here and never returned or logged.
"""

from __future__ import annotations

import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

import phonenumbers
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Account, Carrier, Message, Route, Sender
from app.domain.carrier_codes import InvalidCodeTable, ResultCodeTable
from app.domain.mt_request import classify_sender
from app.domain.priorities import DEFAULT_PRIORITY, Priority
from app.domain.states import DrMask
from app.services.errors import AlreadyExists, InvalidValue, NotFound
from app.services.passwords import hash_password


@dataclass(frozen=True)
class AccountOptions:
    """Optional account settings; ``None`` means "leave as is" (or the default on create)."""

    rate: float | None = None
    burst: int | None = None
    max_length: int | None = None
    priority: str | None = None
    dr_url: str | None = None
    mo_url: str | None = None
    message_id_optional: bool | None = None
    allowed_ips: tuple[str, ...] | None = None
    callback_retry_interval: int | None = None
    callback_max_retries: int | None = None
    dr_mask: str | None = None


MAX_CALLBACK_INTERVAL_SECONDS = 15 * 60
"""Callback retries are Celery countdowns, which must stay well under the broker's
visibility timeout (celeryconfig: one hour)."""


def _valid_priority(value: str) -> str:
    try:
        return Priority.parse(value).value
    except ValueError as exc:
        raise InvalidValue(f"priority must be one of {', '.join(p.value for p in Priority)}") from exc


def _valid_networks(values: tuple[str, ...]) -> list[str]:
    try:
        return [str(ipaddress.ip_network(value, strict=False)) for value in values]
    except ValueError as exc:
        raise InvalidValue(f"not an IP address or CIDR: {exc}") from exc


def _valid_url(value: str) -> str | None:
    if value == "":
        return None
    if not value.startswith(("http://", "https://")):
        raise InvalidValue(f"callback URL must be http:// or https://: {value!r}")
    return value


def get_account(session: Session, login: str) -> Account:
    account = session.scalar(select(Account).where(Account.login == login))
    if account is None:
        raise NotFound(f"no account with login {login!r}")
    return account


def create_account(
    session: Session, login: str, password: str, *, senders: tuple[str, ...] = (), options: AccountOptions, default_max_length: int
) -> Account:
    if not login or len(login) > 64:
        raise InvalidValue("login must be 1 to 64 characters")
    if not password:
        raise InvalidValue("password must not be empty")
    if session.scalar(select(Account.id).where(Account.login == login)) is not None:
        raise AlreadyExists(f"account {login!r} already exists")
    account = Account(
        login=login,
        password_hash=hash_password(password),
        enabled=True,
        default_priority=DEFAULT_PRIORITY.value,
        max_message_length=default_max_length,
        callback_secret=secrets.token_hex(32),
        message_id_optional=False,
        allowed_ips=[],
        callback_retry_interval=600,
        callback_max_retries=25,
        dr_mask=DrMask.ALL.value,
    )
    session.add(account)
    _apply_options(account, options)
    session.flush()
    for address in senders:
        add_sender(session, address, login=login)
    return account


def update_account(session: Session, login: str, *, password: str | None = None, enabled: bool | None = None, options: AccountOptions) -> Account:
    account = get_account(session, login)
    if password is not None:
        if not password:
            raise InvalidValue("password must not be empty")
        account.password_hash = hash_password(password)
    if enabled is not None:
        account.enabled = enabled
    _apply_options(account, options)
    return account


def rotate_callback_secret(session: Session, login: str) -> str:
    account = get_account(session, login)
    account.callback_secret = secrets.token_hex(32)
    return account.callback_secret


def _apply_options(account: Account, options: AccountOptions) -> None:
    if options.rate is not None:
        if options.rate < 0:
            raise InvalidValue("rate must not be negative")
        account.rate = options.rate or None
    if options.burst is not None:
        if options.burst < 1:
            raise InvalidValue("burst must be at least 1")
        account.burst = options.burst
    if options.max_length is not None:
        if options.max_length < 1:
            raise InvalidValue("max length must be at least 1")
        account.max_message_length = options.max_length
    if options.priority is not None:
        account.default_priority = _valid_priority(options.priority)
    if options.dr_url is not None:
        account.dr_url = _valid_url(options.dr_url)
    if options.mo_url is not None:
        account.mo_url = _valid_url(options.mo_url)
    if options.message_id_optional is not None:
        account.message_id_optional = options.message_id_optional
    if options.allowed_ips is not None:
        account.allowed_ips = _valid_networks(options.allowed_ips)
    if options.callback_retry_interval is not None:
        if not 1 <= options.callback_retry_interval <= MAX_CALLBACK_INTERVAL_SECONDS:
            raise InvalidValue(f"callback retry interval must be 1 to {MAX_CALLBACK_INTERVAL_SECONDS} seconds")
        account.callback_retry_interval = options.callback_retry_interval
    if options.callback_max_retries is not None:
        if not 0 <= options.callback_max_retries <= 1000:
            raise InvalidValue("callback retries must be 0 to 1000")
        account.callback_max_retries = options.callback_max_retries
    if options.dr_mask is not None:
        try:
            account.dr_mask = DrMask.parse(options.dr_mask).value
        except ValueError as exc:
            raise InvalidValue(str(exc)) from exc


def list_accounts(session: Session) -> list[Account]:
    return list(session.scalars(select(Account).order_by(Account.login)))


def describe_account(account: Account) -> dict[str, Any]:
    """Everything an operator may see; never the password hash."""
    return {
        "login": account.login,
        "enabled": account.enabled,
        "senders": sorted(s.address for s in account.senders if s.enabled),
        "default_priority": account.default_priority,
        "max_message_length": account.max_message_length,
        "rate": account.rate,
        "burst": account.burst,
        "dr_url": account.dr_url,
        "mo_url": account.mo_url,
        "message_id_optional": account.message_id_optional,
        "allowed_ips": list(account.allowed_ips or []),
        "callback_retry_interval": account.callback_retry_interval,
        "callback_max_retries": account.callback_max_retries,
        "dr_mask": account.dr_mask,
        "callback_secret": account.callback_secret,
    }


def add_sender(session: Session, address: str, *, login: str | None) -> Sender:
    kind = classify_sender(address)
    if kind is None:
        raise InvalidValue(f"{address!r} is not a shortcode, long number or alphanumeric sender id")
    account = get_account(session, login) if login else None
    sender = session.scalar(select(Sender).where(Sender.address == address))
    if sender is not None and sender.account_id not in (None, account.id if account else None):
        raise AlreadyExists(f"sender {address!r} already belongs to another account")
    if sender is None:
        sender = Sender(address=address, kind=kind.value)
        session.add(sender)
    sender.account = account
    sender.enabled = True
    session.flush()
    return sender


def remove_sender(session: Session, address: str) -> None:
    sender = session.scalar(select(Sender).where(Sender.address == address))
    if sender is None:
        raise NotFound(f"no sender {address!r}")
    session.delete(sender)


def list_senders(session: Session) -> list[Sender]:
    return list(session.scalars(select(Sender).order_by(Sender.address)))


MM7_REQUIRED_SETTINGS = ("url", "vasp_id", "vas_id", "webhook_token")
"""An MM7 carrier's MMSC, who smsagg is there, and the token the MMSC must present
when it POSTs delivery reports and MO to ``/carriers/<id>/mm7``."""


def new_webhook_token() -> str:
    return secrets.token_urlsafe(24)


def add_carrier(
    session: Session, carrier_id: int, name: str, *, connector: str, settings: dict[str, Any], throughput: float | None
) -> Carrier:
    if carrier_id <= 0:
        raise InvalidValue("carrier id must be a positive integer")
    if connector not in ("smpp", "http", "mm7"):
        raise InvalidValue("connector must be smpp, http or mm7")
    missing = [key for key in MM7_REQUIRED_SETTINGS if connector == "mm7" and not settings.get(key)]
    if missing:
        raise InvalidValue(f"an MM7 carrier needs {', '.join(missing)}")
    if session.get(Carrier, carrier_id) is not None:
        raise AlreadyExists(f"carrier {carrier_id} already exists")
    if session.scalar(select(Carrier.id).where(Carrier.name == name)) is not None:
        raise AlreadyExists(f"a carrier named {name!r} already exists")
    if throughput is not None and throughput <= 0:
        raise InvalidValue("throughput must be positive")
    carrier = Carrier(id=carrier_id, name=name, connector=connector, settings=settings, throughput=throughput, enabled=True)
    session.add(carrier)
    session.flush()
    return carrier


def list_carriers(session: Session) -> list[Carrier]:
    return list(session.scalars(select(Carrier).order_by(Carrier.id)))


def remove_carrier(session: Session, carrier_id: int) -> bool:
    """Remove a carrier and its routes. A carrier that messages went through is kept,
    disabled, so the message log stays whole; returns whether it was deleted."""
    carrier = session.get(Carrier, carrier_id)
    if carrier is None:
        raise NotFound(f"no carrier {carrier_id}")
    for route in session.scalars(select(Route).where(Route.carrier_id == carrier_id)):
        session.delete(route)
    session.flush()
    if session.scalar(select(Message.id).where(Message.carrier_id == carrier_id).limit(1)) is not None:
        carrier.enabled = False
        return False
    session.delete(carrier)
    return True


def set_carrier_result_codes(session: Session, carrier_id: int, table: dict[str, Any] | None) -> Carrier:
    """Give a carrier its own result-code table (:mod:`app.domain.carrier_codes`), or
    take it away (``None``); a table that does not parse is refused, never stored."""
    carrier = session.get(Carrier, carrier_id)
    if carrier is None:
        raise NotFound(f"no carrier {carrier_id}")
    try:
        ResultCodeTable.parse(table)
    except InvalidCodeTable as exc:
        raise InvalidValue(f"result codes: {exc}") from exc
    settings = {key: value for key, value in (carrier.settings or {}).items() if key != "result_codes"}
    carrier.settings = settings | ({"result_codes": table} if table else {})
    session.flush()
    return carrier


DEFAULT_ROUTE_PREFIX = ""
"""The catch-all route: the empty prefix matches every number, and loses to any other."""


def validate_prefix(prefix: str) -> str:
    """A route prefix is E.164 digits that begin with a real country code (or the
    empty catch-all prefix)."""
    if prefix == DEFAULT_ROUTE_PREFIX:
        return prefix
    digits = prefix.lstrip("+")
    if not digits.isascii() or not digits.isdigit() or len(digits) > 15:
        raise InvalidValue(f"route prefix must be digits: {prefix!r}")
    if not any(int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for n in (1, 2, 3) if len(digits) >= n):
        raise InvalidValue(f"route prefix {prefix!r} does not start with a country code")
    return digits


def add_route(session: Session, prefix: str, carrier_id: int, *, weight: int = 1, position: int = 0) -> Route:
    digits = validate_prefix(prefix)
    if session.get(Carrier, carrier_id) is None:
        raise NotFound(f"no carrier {carrier_id}")
    if weight < 1:
        raise InvalidValue("weight must be at least 1")
    existing = session.scalar(select(Route).where(Route.prefix == digits, Route.carrier_id == carrier_id))
    if existing is not None:
        raise AlreadyExists(f"route {digits} -> {carrier_id} already exists")
    route = Route(prefix=digits, carrier_id=carrier_id, weight=weight, position=position)
    session.add(route)
    session.flush()
    return route


def remove_route(session: Session, prefix: str, carrier_id: int) -> None:
    route = session.scalar(select(Route).where(Route.prefix == prefix.lstrip("+"), Route.carrier_id == carrier_id))
    if route is None:
        raise NotFound(f"no route {prefix} -> {carrier_id}")
    session.delete(route)


def list_routes(session: Session) -> list[Route]:
    return list(session.scalars(select(Route).order_by(Route.prefix, Route.position, Route.carrier_id)))


SIMULATOR_CARRIER_ID = 1
SIMULATOR_SYSTEM_ID = SIMULATOR_PASSWORD = "smsagg"
MMSC_SIMULATOR_CARRIER_ID = 2
MMSC_SIMULATOR_NAME = "mmsc-sim"


def ensure_simulator_carrier(session: Session, port: int, *, mmsc_port: int | None = None) -> bool:
    """On a gateway with no carriers yet, make the SMSC simulator carrier 1 (and, given
    ``mmsc_port``, the MMSC simulator carrier 2) and route every number to them
    (``smsagg up``'s first run): SMS go to the SMSC, MMS to the MMSC, since each routing
    table holds only the carriers that carry its kind. Returns whether it did."""
    if session.scalar(select(Carrier.id).limit(1)) is not None:
        return False
    add_carrier(session, SIMULATOR_CARRIER_ID, "smsc-sim", connector="smpp", throughput=None, settings={
        "host": "127.0.0.1", "port": port, "system_id": SIMULATOR_SYSTEM_ID, "password": SIMULATOR_PASSWORD,
        "system_type": ""})
    if mmsc_port is not None:
        add_carrier(session, MMSC_SIMULATOR_CARRIER_ID, MMSC_SIMULATOR_NAME, connector="mm7", throughput=None,
                    settings={"url": f"http://127.0.0.1:{mmsc_port}/mm7", "vasp_id": SIMULATOR_SYSTEM_ID,
                              "vas_id": SIMULATOR_SYSTEM_ID, "webhook_token": new_webhook_token()})
    if session.scalar(select(Route.id).limit(1)) is None:
        add_route(session, DEFAULT_ROUTE_PREFIX, SIMULATOR_CARRIER_ID)
        if mmsc_port is not None:
            add_route(session, DEFAULT_ROUTE_PREFIX, MMSC_SIMULATOR_CARRIER_ID)
    return True


def mmsc_simulator_options(session: Session, *, port: int, web_port: int) -> list[str] | None:
    """The ``smsagg mmsc-sim`` options that make the simulator the gateway's MMSC
    simulator carrier (listening on ``port``, reporting to the ingress's
    ``/carriers/<id>/mm7`` on ``web_port`` with that carrier's token); None when the
    gateway has no such carrier."""
    carrier = session.scalar(select(Carrier).where(Carrier.name == MMSC_SIMULATOR_NAME, Carrier.connector == "mm7",
                                                   Carrier.enabled.is_(True)))
    if carrier is None or not carrier.settings.get("webhook_token"):
        return None
    return ["--port", str(port), "--vasp-url", f"http://127.0.0.1:{web_port}/carriers/{carrier.id}/mm7",
            "--vasp-user", str(carrier.id), "--vasp-password", carrier.settings["webhook_token"]]
