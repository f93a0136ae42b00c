"""The bulk area's rows the ingress consults, cached in-process: account policies
(prepaid, templates only), prices and the route table they depend on, spam rules,
templates, the IP denylist.

A snapshot re-read every ``directory_refresh_seconds``, like the core's senders and
carriers (:mod:`app.services.directory`), which it serves as :class:`AccountRules`:
the app factory injects it there. While the database is away, the last snapshot goes
on serving. The DND registry and opt-outs can be large and change per MO: they are
Redis sets, checked inside the admission scripts, not held here.
"""

from __future__ import annotations

import ipaddress
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy import select

from app.bulk import rules
from app.bulk.models import BulkAccountPolicy, DeniedNetwork, Price, SpamRule, Template
from app.db.models import Route
from app.db.session import session_scope
from app.services.directory import AccountPolicy, IpNetwork
from app.services.snapshot import TimedSnapshot

_NO_POLICY = AccountPolicy()


@dataclass(frozen=True)
class _Snapshot:
    policies: Mapping[int, AccountPolicy] = field(default_factory=dict)
    templates: Mapping[int, tuple[re.Pattern[str], ...]] = field(default_factory=dict)
    spam_rules: tuple[re.Pattern[str], ...] = ()
    denied_networks: tuple[IpNetwork, ...] = ()
    prices: rules.PriceTable | None = None
    routes: rules.RouteIndex | None = None


class BulkDirectory:
    def __init__(self, database_url: str, *, refresh_seconds: float, default_price_units: int,
                 clock: Callable[[], float] = time.monotonic):
        self.database_url = database_url
        self.default_price_units = default_price_units
        self._snapshot = TimedSnapshot(lambda: self._load(), refresh_seconds, clock=clock, outlive_outages=True,
                                       name="bulk directory")

    def policy(self, account_id: int) -> AccountPolicy:
        return self._snapshot.get().policies.get(account_id, _NO_POLICY)

    def templates(self, account_id: int) -> tuple[re.Pattern[str], ...]:
        return self._snapshot.get().templates.get(account_id, ())

    def spam_rules(self) -> tuple[re.Pattern[str], ...]:
        return self._snapshot.get().spam_rules

    def ip_denied(self, client_ip: str | None) -> bool:
        """Whether ``client_ip`` is on the operator's denylist (an unparseable address
        is not: the allowlist, where one is set, refuses it)."""
        networks = self._snapshot.get().denied_networks
        if not networks:
            return False
        try:
            address = ipaddress.ip_address(client_ip or "")
        except ValueError:
            return False
        return any(address in network for network in networks)

    def price_per_segment(self, destination: str) -> int:
        """Credit units one segment to ``destination`` costs (see ``rules.PriceTable``)."""
        snapshot = self._snapshot.get()
        route = snapshot.routes.route(destination) if snapshot.routes else None
        if snapshot.prices is None:
            return self.default_price_units
        return snapshot.prices.price(destination, route)

    def _load(self) -> _Snapshot:
        with session_scope(self.database_url) as session:
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
        return _Snapshot(policies=policies, templates={k: tuple(v) for k, v in templates.items()}, spam_rules=spam,
                         denied_networks=denied, prices=prices, routes=routes)
