"""What the mobile services know from the database and gms.ini: applications and
agents (credentials), resource groups. Management functions (used by the CLI) take a
``Session``; :class:`Registry` is the cached read side used per request.

Credentials go through the ingress's own guard and credential cache
(:mod:`app.services.auth_guard`, one scope for apps and one for agents): a verified
(name, password) is trusted in-process for ``credential_ttl`` seconds, keyed by a digest
of the pair (never the password), so the scrypt KDF does not run per request, and failed
logins are limited per address and per name before it runs (docs/security.md). Resource
groups are a :class:`~app.services.snapshot.TimedSnapshot` re-read every
``refresh_seconds``.

A resource group may come from the database (``smsagg gms group add``) or from
gms.ini; a name defined in gms.ini cannot also be added to the database.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.session import session_scope
from app.gms.config import GmsConfig, parse_numbers
from app.gms.domain import GmsError, ResourceGroup, Strategy, validate_name
from app.gms.models import GmsAccessNumber, GmsAgent, GmsApp, GmsResourceGroup
from app.domain.auth_limits import Scope
from app.services.auth_guard import AuthGuard, CredentialCache, StoredCredential
from app.services.errors import AlreadyExists, InvalidValue, NotFound
from app.services.passwords import hash_password
from app.services.snapshot import TimedSnapshot


def _valid(name: str, what: str) -> str:
    try:
        return validate_name(name, what, "name")
    except GmsError as exc:
        raise InvalidValue(exc.message) from None


def _password(password: str) -> str:
    if not password or len(password) < 8:
        raise InvalidValue("a password needs at least 8 characters")
    return hash_password(password)


# --- management (CLI) ----------------------------------------------------------------


def add_app(session: Session, name: str, password: str) -> GmsApp:
    _valid(name, "app")
    if session.scalar(select(GmsApp).where(GmsApp.name == name)):
        raise AlreadyExists(f"app {name} exists already")
    app = GmsApp(name=name, password_hash=_password(password), enabled=True)
    session.add(app)
    session.flush()
    return app


def set_app_password(session: Session, name: str, password: str) -> None:
    app = session.scalar(select(GmsApp).where(GmsApp.name == name))
    if app is None:
        raise NotFound(f"no app named {name}")
    app.password_hash = _password(password)


def set_app_enabled(session: Session, name: str, enabled: bool) -> None:
    app = session.scalar(select(GmsApp).where(GmsApp.name == name))
    if app is None:
        raise NotFound(f"no app named {name}")
    app.enabled = enabled


def list_apps(session: Session) -> list[GmsApp]:
    return list(session.scalars(select(GmsApp).order_by(GmsApp.name)))


def add_agent(session: Session, name: str, password: str, nickname: str | None = None) -> GmsAgent:
    _valid(name, "agent")
    if session.scalar(select(GmsAgent).where(GmsAgent.name == name)):
        raise AlreadyExists(f"agent {name} exists already")
    agent = GmsAgent(name=name, nickname=(nickname or name)[:64], password_hash=_password(password), enabled=True)
    session.add(agent)
    session.flush()
    return agent


def list_agents(session: Session) -> list[GmsAgent]:
    return list(session.scalars(select(GmsAgent).order_by(GmsAgent.name)))


def add_group(
    session: Session,
    name: str,
    numbers: str,
    *,
    strategy: str = "random",
    booking_timeout: int | None = None,
    config: GmsConfig | None = None,
) -> GmsResourceGroup:
    _valid(name, "resource group")
    if config is not None and name in config.groups:
        raise AlreadyExists(f"resource group {name} is defined in gms.ini")
    if session.scalar(select(GmsResourceGroup).where(GmsResourceGroup.name == name)):
        raise AlreadyExists(f"resource group {name} exists already")
    try:
        parsed = parse_numbers(numbers)
        chosen = Strategy.parse(strategy)
    except GmsError as exc:
        raise InvalidValue(exc.message) from None
    if booking_timeout is not None and not 1 <= booking_timeout <= 86400:
        raise InvalidValue("--booking-timeout must be within 1..86400 seconds")
    group = GmsResourceGroup(name=name, strategy=chosen.value, booking_timeout=booking_timeout)
    group.numbers = [GmsAccessNumber(number=n, position=i) for i, n in enumerate(parsed)]
    session.add(group)
    session.flush()
    return group


def remove_group(session: Session, name: str) -> None:
    group = session.scalar(select(GmsResourceGroup).where(GmsResourceGroup.name == name))
    if group is None:
        raise NotFound(f"no resource group named {name} in the database")
    session.delete(group)


def database_groups(session: Session) -> dict[str, ResourceGroup]:
    groups = {}
    for row in session.scalars(select(GmsResourceGroup).order_by(GmsResourceGroup.name)):
        groups[row.name] = ResourceGroup(
            name=row.name,
            numbers=tuple(n.number for n in row.numbers),
            strategy=Strategy.parse(row.strategy),
            booking_timeout=row.booking_timeout,
            source="database",
        )
    return groups


def all_groups(session: Session, config: GmsConfig) -> dict[str, ResourceGroup]:
    """Every group: gms.ini's, then the database's for names gms.ini does not use."""
    groups = dict(config.groups)
    for name, group in database_groups(session).items():
        groups.setdefault(name, group)
    return groups


# --- read side (per request) -------------------------------------------------------------


@dataclass(frozen=True)
class Principal:
    kind: str  # "app" or "agent"
    name: str
    nickname: str


class Registry:
    """Cached credentials and resource groups for the web layer."""

    def __init__(self, database_url: str, config: GmsConfig, *, guard: AuthGuard, credential_ttl: float,
                 credential_cache_size: int, refresh_seconds: float):
        self.database_url = database_url
        self.config = config
        self._credentials = {
            kind: CredentialCache(scope, partial(self._stored, kind, model), guard, ttl=credential_ttl,
                                  size=credential_cache_size)
            for kind, scope, model in (("app", Scope.GMS_APP, GmsApp), ("agent", Scope.GMS_AGENT, GmsAgent))
        }
        self._groups = TimedSnapshot(self._load_groups, refresh_seconds, outlive_outages=True,
                                    name="GMS resource groups")

    def authenticate(self, kind: str, name: str, password: str, address: str | None) -> Principal | None:
        """The enabled app or agent (``kind``), or ``None``. Raises
        :class:`~app.services.auth_guard.KdfBusy` when the password check is busy."""
        return self._credentials[kind].authenticate(name, password, address)

    def _stored(self, kind: str, model: type, name: str) -> StoredCredential[Principal] | None:
        with session_scope(self.database_url) as session:
            row = session.scalar(select(model).where(model.name == name))
            if row is None:
                return None
            principal = Principal(kind, name, getattr(row, "nickname", name)) if row.enabled else None
            return StoredCredential(principal, row.password_hash)

    def group(self, name: str) -> ResourceGroup | None:
        return self._groups.get().get(name)

    def _load_groups(self) -> dict[str, ResourceGroup]:
        with session_scope(self.database_url) as session:
            return all_groups(session, self.config)
