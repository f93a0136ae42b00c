"""The ingress's read-side view of accounts, senders and carriers, cached in-process.

The hot path must not run the password KDF or query the database per request
(DESIGN.md, "Ingress"). So:

* a verified credential is cached for ``credential_cache_seconds`` under a SHA-256
  digest of (login, password) — never the password itself; failed attempts are
  cached too, so a flood of bad passwords costs one KDF per distinct password; and
  when an entry expires, one thread runs the KDF while the others asking for the same
  credentials wait for its answer (the KDF costs ~100-200 ms of CPU: every thread of
  every ingress process running it at once, every 30 s, cost more CPU than the
  submits themselves in ``smsagg bench peers``);
* senders and carriers are a snapshot re-read every ``directory_refresh_seconds``;
  the account policies, prices and IP denylist the ingress consults are a feature
  slice's rows (:class:`AccountRules`, the bulk area's :mod:`app.bulk.directory`),
  kept the same way by the slice and injected here.

Changes made with the CLI (a new password, a disabled account, a new sender) are
therefore seen by every ingress process within those two intervals. While the
database is away, the last snapshot goes on serving (a refresh is tried every second).
"""

from __future__ import annotations

import hashlib
import ipaddress
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import select

from app.db.models import Account, Carrier, Sender
from app.db.session import session_scope
from app.domain.priorities import Priority
from app.services.passwords import dummy_hash, verify_password
from app.services.snapshot import TimedSnapshot

_MAX_CACHED_CREDENTIALS = 10_000
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
        credential_ttl: float,
        refresh_seconds: float,
        rules: AccountRules,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.database_url = database_url
        self.credential_ttl = credential_ttl
        self.refresh_seconds = refresh_seconds
        self.rules = rules
        self.clock = clock
        self._credentials: dict[bytes, tuple[AccountView | None, float]] = {}
        self._verifications: dict[bytes, threading.Lock] = {}  # the keys being verified now
        self._verifications_lock = threading.Lock()
        self._snapshot = TimedSnapshot(lambda: self._load(), refresh_seconds, clock=clock, outlive_outages=True,
                                       name="directory")

    def authenticate(self, login: str, password: str) -> AccountView | None:
        """The enabled account with these credentials, or ``None`` (same for unknown
        login, wrong password and disabled account)."""
        key = hashlib.sha256(login.encode() + b"\0" + password.encode()).digest()
        cached = self._credentials.get(key)
        if cached is not None and cached[1] > self.clock():
            return cached[0]
        with self._verifications_lock:
            verification = self._verifications.setdefault(key, threading.Lock())
        with verification:  # one KDF per key at a time; the others take its answer
            cached = self._credentials.get(key)
            now = self.clock()
            if cached is not None and cached[1] > now:
                return cached[0]
            try:
                view = self._verify(login, password)
                if len(self._credentials) >= _MAX_CACHED_CREDENTIALS:
                    self._credentials.clear()
                self._credentials[key] = (view, now + self.credential_ttl)
            finally:  # after the answer is cached: a thread arriving now finds it
                with self._verifications_lock:
                    self._verifications.pop(key, None)
            return view

    def _verify(self, login: str, password: str) -> AccountView | None:
        with session_scope(self.database_url) as session:
            account = session.scalar(select(Account).where(Account.login == login))
            stored = account.password_hash if account is not None else dummy_hash()
            if not verify_password(password, stored) or account is None or not account.enabled:
                return None
            return AccountView.from_row(account)

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
