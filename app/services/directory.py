"""The ingress's read-side view of accounts, senders and carriers, cached in-process.

The hot path must not run the password KDF or query the database per request
(DESIGN.md, "Ingress"). So:

* credentials go through the process's :class:`~app.services.auth_guard.AuthGuard`
  and its :class:`~app.services.auth_guard.CredentialCache`: a verified (login,
  password) is trusted for ``credential_cache_seconds`` under a digest (never the
  password), refusals are kept apart, failures are limited per address and login
  before any KDF runs (docs/security.md);
* senders and carriers are a snapshot re-read every ``directory_refresh_seconds``;
  the account policies, prices and IP denylist the ingress consults are a feature
  slice's rows (:class:`AccountRules`, the bulk area's :mod:`app.bulk.directory`),
  kept the same way by the slice and injected here.

Changes made with the CLI (a new password, a disabled account, a new sender) are
therefore seen by every ingress process within those two intervals. While the
database is away, the last snapshot goes on serving (a refresh is tried every second).
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from app.db.models import Account, Carrier, Sender
from app.db.session import session_scope
from app.domain.auth_limits import Scope
from app.domain.priorities import Priority
from app.services.auth_guard import AuthGuard, CredentialCache, StoredCredential
from app.services.snapshot import TimedSnapshot

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True)
class AccountView:
    """What the ingress needs to know about an account, detached from the database."""

    id: int
    login: str
    default_priority: Priority
    max_message_length: int
    rate: float | None
    burst: int | None
    message_id_optional: bool
    allowed_networks: tuple[IpNetwork, ...]

    def allows_ip(self, client_ip: str | None) -> bool:
        if not self.allowed_networks:
            return True
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return False
        return any(address in network for network in self.allowed_networks)

    @classmethod
    def from_row(cls, account: Account) -> "AccountView":
        return cls(
            id=account.id,
            login=account.login,
            default_priority=Priority.parse(account.default_priority),
            max_message_length=account.max_message_length,
            rate=account.rate,
            burst=account.burst,
            message_id_optional=account.message_id_optional,
            allowed_networks=tuple(ipaddress.ip_network(n, strict=False) for n in account.allowed_ips or ()),
        )


@dataclass(frozen=True)
class SenderRecord:
    account_id: int | None
    enabled: bool


@dataclass(frozen=True)
class AccountPolicy:
    prepaid: bool = False
    templates_only: bool = False



@dataclass(frozen=True)
class _Snapshot:
    senders: dict[str, SenderRecord]
    carriers: frozenset[int]


class AccountRules(Protocol):
    """What the ingress asks of the rules a feature slice keeps per account, address and
    destination (the bulk area's, :class:`app.bulk.directory.BulkDirectory`), injected by
    the composition root so the core never imports the slice."""

    def policy(self, account_id: int) -> AccountPolicy: ...

    def ip_denied(self, client_ip: str | None) -> bool: ...

    def price_per_segment(self, destination: str) -> int: ...


class Directory:
    def __init__(
        self,
        database_url: str,
        *,
        guard: AuthGuard,
        credential_ttl: float,
        credential_cache_size: int,
        refresh_seconds: float,
        rules: AccountRules,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.database_url = database_url
        self.refresh_seconds = refresh_seconds
        self.rules = rules
        self.clock = clock
        self.credentials = CredentialCache(Scope.ACCOUNT, self._stored_credential, guard, ttl=credential_ttl,
                                           size=credential_cache_size, clock=clock)
        self._snapshot = TimedSnapshot(lambda: self._load(), refresh_seconds, clock=clock, outlive_outages=True,
                                       name="directory")

    def authenticate(self, login: str, password: str, client_ip: str | None) -> AccountView | None:
        """The enabled account with these credentials, or ``None`` (same for unknown
        login, wrong password, disabled account and a login or address locked out).
        Raises :class:`~app.services.auth_guard.KdfBusy` when the password check is
        busy."""
        return self.credentials.authenticate(login, password, client_ip)

    def _stored_credential(self, login: str) -> StoredCredential[AccountView] | None:
        with session_scope(self.database_url) as session:
            account = session.scalar(select(Account).where(Account.login == login))
            if account is None:
                return None
            return StoredCredential(AccountView.from_row(account) if account.enabled else None, account.password_hash)

    def sender(self, address: str) -> SenderRecord | None:
        return self._snapshot.get().senders.get(address)

    def carrier_exists(self, carrier_id: int) -> bool:
        return carrier_id in self._snapshot.get().carriers

    def policy(self, account_id: int) -> AccountPolicy:
        return self.rules.policy(account_id)

    def ip_denied(self, client_ip: str | None) -> bool:
        """Whether ``client_ip`` is on the operator's denylist (an unparseable address
        is not: the allowlist, where one is set, refuses it)."""
        return self.rules.ip_denied(client_ip)

    def price_per_segment(self, destination: str) -> int:
        """Credit units one segment to ``destination`` costs."""
        return self.rules.price_per_segment(destination)

    def _load(self) -> _Snapshot:
        with session_scope(self.database_url) as session:
            senders = {
                address: SenderRecord(account_id, enabled)
                for address, account_id, enabled in session.execute(
                    select(Sender.address, Sender.account_id, Sender.enabled)
                )
            }
            carriers = frozenset(session.scalars(select(Carrier.id).where(Carrier.enabled.is_(True))))
        return _Snapshot(senders, carriers)
