"""The ingress's read-side view of accounts, senders and carriers, cached in-process.

The hot path must not run the password KDF or query the database per request
(DESIGN.md, "Ingress"). So:

* a verified credential is cached for ``credential_cache_seconds`` under a SHA-256
  digest of (login, password) — never the password itself; failed attempts are
  cached too, so a flood of bad passwords costs one KDF per distinct password;
* senders and carriers are a snapshot re-read every ``directory_refresh_seconds``;
  so are the bulk area's rows the ingress consults (account policies, prices and the
  route table they depend on, spam rules, templates, the IP denylist). The DND registry
  and opt-outs can be large and change per MO: they are Redis sets, checked inside the
  admission script, not held here.

Changes made with the CLI (a new password, a disabled account, a new sender) are
therefore seen by every ingress process within those two intervals. While the
database is away, the last snapshot goes on serving (a refresh is tried every second).
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

from sqlalchemy import select

from app.bulk import rules
from app.bulk.models import BulkAccountPolicy, DeniedNetwork, Price, SpamRule, Template
from app.db.models import Account, Carrier, Route, Sender
from app.db.session import session_scope
from app.domain.priorities import Priority
from app.services.failures import is_outage
from app.services.passwords import dummy_hash, verify_password

log = logging.getLogger(__name__)

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


_NO_POLICY = AccountPolicy()


@dataclass(frozen=True)
class _Snapshot:
    senders: dict[str, SenderRecord]
    carriers: frozenset[int]
    loaded_at: float
    policies: Mapping[int, AccountPolicy] = field(default_factory=dict)
    templates: Mapping[int, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    spam_rules: tuple[re.Pattern[str], ...] = ()
    denied_networks: tuple[IpNetwork, ...] = ()
    prices: rules.PriceTable | None = None
    routes: rules.RouteIndex | None = None


class Directory:
    def __init__(
        self,
        database_url: str,
        *,
        credential_ttl: float,
        refresh_seconds: float,
        clock: Callable[[], float] = time.monotonic,
        default_price_units: int | None = None,
    ):
        if default_price_units is None:
            from app.bulk.settings import get_bulk_settings

            default_price_units = get_bulk_settings().default_price_units
        self.default_price_units = default_price_units
        self.database_url = database_url
        self.credential_ttl = credential_ttl
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._credentials: dict[bytes, tuple[AccountView | None, float]] = {}
        self._snapshot: _Snapshot | None = None
        self._refresh_lock = threading.Lock()

    def authenticate(self, login: str, password: str) -> AccountView | None:
        """The enabled account with these credentials, or ``None`` (same for unknown
        login, wrong password and disabled account)."""
        key = hashlib.sha256(login.encode() + b"\0" + password.encode()).digest()
        now = self.clock()
        cached = self._credentials.get(key)
        if cached is not None and cached[1] > now:
            return cached[0]
        view = self._verify(login, password)
        if len(self._credentials) >= _MAX_CACHED_CREDENTIALS:
            self._credentials.clear()
        self._credentials[key] = (view, now + self.credential_ttl)
        return view

    def _verify(self, login: str, password: str) -> AccountView | None:
        with session_scope(self.database_url) as session:
            account = session.scalar(select(Account).where(Account.login == login))
            stored = account.password_hash if account is not None else dummy_hash()
            if not verify_password(password, stored) or account is None or not account.enabled:
                return None
            return AccountView.from_row(account)

    def sender(self, address: str) -> SenderRecord | None:
        return self._current().senders.get(address)

    def carrier_exists(self, carrier_id: int) -> bool:
        return carrier_id in self._current().carriers

    def policy(self, account_id: int) -> AccountPolicy:
        return self._current().policies.get(account_id, _NO_POLICY)

    def templates(self, account_id: int) -> tuple[re.Pattern[str], ...]:
        return self._current().templates.get(account_id, ())

    def spam_rules(self) -> tuple[re.Pattern[str], ...]:
        return self._current().spam_rules

    def ip_denied(self, client_ip: str | None) -> bool:
        """Whether ``client_ip`` is on the operator's denylist (an unparseable address
        is not: the allowlist, where one is set, refuses it)."""
        networks = self._current().denied_networks
        if not networks:
            return False
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return False
        return any(address in network for network in networks)

    def price_per_segment(self, destination: str) -> int:
        """Credit units one segment to ``destination`` costs (see ``rules.PriceTable``)."""
        snapshot = self._current()
        route = snapshot.routes.route(destination) if snapshot.routes else None
        if snapshot.prices is None:
            return self.default_price_units
        return snapshot.prices.price(destination, route)

    def _current(self) -> _Snapshot:
        snapshot = self._snapshot
        if snapshot is not None and self.clock() - snapshot.loaded_at < self.refresh_seconds:
            return snapshot
        with self._refresh_lock:
            if self._snapshot is snapshot:
                try:
                    self._snapshot = self._load()
                except Exception as error:
                    if snapshot is None or not is_outage(error):
                        raise
                    # The database is away: the last snapshot goes on serving (tried
                    # again in a second), so the ingress keeps accepting meanwhile.
                    log.warning("directory refresh failed (%s); serving the snapshot of %.0fs ago", error,
                                self.clock() - snapshot.loaded_at)
                    self._snapshot = replace(snapshot, loaded_at=self.clock() - self.refresh_seconds + 1.0)
            return self._snapshot

    def _load(self) -> _Snapshot:
        with session_scope(self.database_url) as session:
            senders = {
                address: SenderRecord(account_id, enabled)
                for address, account_id, enabled in session.execute(
                    select(Sender.address, Sender.account_id, Sender.enabled)
                )
            }
            carriers = frozenset(session.scalars(select(Carrier.id).where(Carrier.enabled.is_(True))))
            policies = {
                row.account_id: AccountPolicy(prepaid=row.prepaid, templates_only=row.templates_only)
                for row in session.scalars(select(BulkAccountPolicy))
            }
            templates: dict[int, list[re.Pattern[str]]] = {}
            for account_id, body in session.execute(select(Template.account_id, Template.body).order_by(Template.id)):
                templates.setdefault(account_id, []).append(rules.compile_template(body))
            spam = tuple(rules.compile_spam_rule(pattern, is_regex)
                         for pattern, is_regex in session.execute(select(SpamRule.pattern, SpamRule.is_regex)))
            denied = tuple(ipaddress.ip_network(n, strict=False)
                           for n in session.scalars(select(DeniedNetwork.network)))
            prices = rules.price_table(session.execute(select(Price.prefix, Price.carrier_id, Price.price)).all(),
                                       self.default_price_units)
            routes = rules.route_index(
                session.execute(select(Route.prefix, Route.carrier_id, Route.position, Route.id)).all()
            )
        return _Snapshot(
            senders, carriers, self.clock(), policies=policies,
            templates={k: tuple(v) for k, v in templates.items()}, spam_rules=spam, denied_networks=denied,
            prices=prices, routes=routes,
        )
