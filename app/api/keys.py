"""Account API keys for the REST API: issued, rotated, revoked, and checked per request.

A token is ``smsagg_<key id>_<secret>``: the key id (10 base32 characters) is public,
printed by ``smsagg apikey list`` and written in logs; the secret is 32 random bytes
(``secrets.token_urlsafe``). The token is shown once, when it is created or rotated;
the database keeps only ``SHA-256(token)``. A slow KDF protects guessable passwords;
a 256-bit random secret cannot be guessed, so one SHA-256 suffices and keeps a request
with a bad key as cheap as possible (DESIGN.md: "cheap for us, expensive for an
attacker").

:class:`KeyRing` is the ingress's view: every usable key's digest with its account,
re-read from the database every ``refresh_seconds`` (like senders and carriers in
:mod:`app.services.directory`). Checking a token is a format match, one SHA-256 and a
dictionary lookup: no database query, whatever the token. A revoked or rotated key,
or a disabled account, therefore stops working in every ingress process within
``refresh_seconds``.

Rotation keeps the key id and replaces the secret; with a grace period the previous
token keeps working until it lapses, so a client can deploy the new one first.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.models import ApiKey
from app.db.models import Account
from app.db.session import session_scope
from app.services.accounts import get_account
from app.services.directory import AccountView
from app.services.errors import InvalidValue, NotFound
from app.services.snapshot import TimedSnapshot

TOKEN_PREFIX = "smsagg"
_TOKEN = re.compile(rf"{TOKEN_PREFIX}_([a-z2-7]{{10}})_[A-Za-z0-9_-]{{43}}")
MAX_NAME_LENGTH = 64


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def claimed_key_id(token: str) -> str | None:
    """The key id a well-formed token names (for logs), or ``None``."""
    match = _TOKEN.fullmatch(token)
    return match.group(1) if match else None


def _new_key_id() -> str:
    return base64.b32encode(secrets.token_bytes(10)).decode("ascii").lower()[:10]


def _new_token(key_id: str) -> str:
    return f"{TOKEN_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"


@dataclass(frozen=True)
class IssuedKey:
    """A key just created or rotated: the only time its token is known."""

    key_id: str
    login: str
    name: str | None
    token: str


@dataclass(frozen=True)
class KeyInfo:
    key_id: str
    login: str
    name: str | None
    status: str  # active | revoked
    created_at: datetime
    rotated_at: datetime | None
    revoked_at: datetime | None
    previous_valid_until: datetime | None


def _utc(moment: datetime | None) -> datetime | None:
    """SQLite hands back naive UTC datetimes; PostgreSQL aware ones."""
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=timezone.utc)


def create_key(session: Session, login: str, name: str | None = None) -> IssuedKey:
    if name is not None and not 1 <= len(name) <= MAX_NAME_LENGTH:
        raise InvalidValue(f"a key name is 1 to {MAX_NAME_LENGTH} characters")
    account = get_account(session, login)
    key_id = _new_key_id()
    token = _new_token(key_id)
    session.add(ApiKey(id=key_id, account_id=account.id, name=name, digest=token_digest(token)))
    session.flush()
    return IssuedKey(key_id, login, name, token)


def _key(session: Session, key_id: str) -> tuple[ApiKey, Account]:
    row = session.execute(
        select(ApiKey, Account).join(Account, Account.id == ApiKey.account_id).where(ApiKey.id == key_id)
    ).first()
    if row is None:
        raise NotFound(f"no API key {key_id!r}")
    return row[0], row[1]


def rotate_key(session: Session, key_id: str, *, grace_seconds: int = 0, now: datetime) -> IssuedKey:
    """A new secret for ``key_id``; the previous token works ``grace_seconds`` longer."""
    key, account = _key(session, key_id)
    if key.revoked_at is not None:
        raise InvalidValue(f"API key {key_id!r} is revoked; create a new one")
    if grace_seconds < 0:
        raise InvalidValue("the grace period cannot be negative")
    token = _new_token(key.id)
    key.previous_digest = key.digest if grace_seconds else None
    key.previous_expires_at = now + timedelta(seconds=grace_seconds) if grace_seconds else None
    key.digest = token_digest(token)
    key.rotated_at = now
    session.flush()
    return IssuedKey(key.id, account.login, key.name, token)


def revoke_key(session: Session, key_id: str, *, now: datetime) -> bool:
    """Revoke ``key_id`` (and any previous token in its grace period); ``False`` if it
    already was."""
    key, _ = _key(session, key_id)
    if key.revoked_at is not None:
        return False
    key.revoked_at = now
    key.previous_digest = None
    key.previous_expires_at = None
    return True


def list_keys(session: Session, login: str | None = None) -> list[KeyInfo]:
    query = select(ApiKey, Account.login).join(Account, Account.id == ApiKey.account_id)
    if login is not None:
        query = query.where(ApiKey.account_id == get_account(session, login).id)
    return [
        KeyInfo(key.id, account_login, key.name, "revoked" if key.revoked_at else "active", _utc(key.created_at),
                _utc(key.rotated_at), _utc(key.revoked_at), _utc(key.previous_expires_at))
        for key, account_login in session.execute(query.order_by(Account.login, ApiKey.created_at, ApiKey.id))
    ]


@dataclass(frozen=True)
class KeyHolder:
    """Who a valid token belongs to; ``valid_until`` (epoch) bounds a previous token."""

    key_id: str
    account: AccountView
    valid_until: float | None = None


class KeyRing:
    """The usable keys, by token digest, refreshed every ``refresh_seconds``."""

    def __init__(self, database_url: str, *, refresh_seconds: float,
                 clock: Callable[[], float] = time.monotonic, wall_clock: Callable[[], float] = time.time):
        self.database_url = database_url
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self.wall_clock = wall_clock
        self._holders = TimedSnapshot(lambda: self._load(), refresh_seconds, clock=clock, name="API keys")

    def authenticate(self, token: str) -> KeyHolder | None:
        if not _TOKEN.fullmatch(token):
            return None
        holder = self._holders.get().get(token_digest(token))
        if holder is None or (holder.valid_until is not None and self.wall_clock() >= holder.valid_until):
            return None
        return holder

    def _load(self) -> dict[str, KeyHolder]:
        holders: dict[str, KeyHolder] = {}
        with session_scope(self.database_url) as session:
            rows = session.execute(
                select(ApiKey, Account).join(Account, Account.id == ApiKey.account_id)
                .where(ApiKey.revoked_at.is_(None), Account.enabled.is_(True))
            )
            for key, account in rows:
                view = AccountView.from_row(account)
                holders[key.digest] = KeyHolder(key.id, view)
                if key.previous_digest and key.previous_expires_at is not None:
                    holders[key.previous_digest] = KeyHolder(key.id, view, _utc(key.previous_expires_at).timestamp())
        return holders
