"""The workers' cached view of carriers and routes, and the connectors built from them.

Like the ingress's directory, it is a snapshot re-read every few seconds, so routing a
message costs no query. Connectors are built once per carrier per process and kept
(SMPP binds are long-lived); a carrier whose settings change gets a new connector.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select

from app.connectors.base import Connector
from app.connectors.http import HttpConnector
from app.connectors.loop import BackgroundLoop
from app.connectors.smpp import DeliverHandler, SmppConnector
from app.db.models import Carrier, Route
from app.db.session import session_scope
from app.domain.routing import Route as RouteValue
from app.domain.routing import RoutingTable, WeightedCarrier


@dataclass(frozen=True)
class CarrierInfo:
    id: int
    name: str
    connector: str
    settings: dict[str, Any]
    throughput: float | None
    enabled: bool

    @property
    def concat_mode(self) -> str:
        return self.settings.get("concat_mode", "udh")


@dataclass(frozen=True)
class CarrierSnapshot:
    carriers: dict[int, CarrierInfo]
    table: RoutingTable
    loaded_at: float


def load_snapshot(database_url: str, now: float) -> CarrierSnapshot:
    with session_scope(database_url) as session:
        carriers = {
            c.id: CarrierInfo(c.id, c.name, c.connector, dict(c.settings or {}), c.throughput, c.enabled)
            for c in session.scalars(select(Carrier))
        }
        by_prefix: dict[str, list[tuple[int, int, int]]] = defaultdict(list)
        for route in session.scalars(select(Route)):
            if carriers.get(route.carrier_id) and carriers[route.carrier_id].enabled:
                by_prefix[route.prefix].append((route.position, route.carrier_id, route.weight))
    routes = [
        RouteValue(prefix, tuple(WeightedCarrier(str(cid), weight) for _, cid, weight in sorted(entries)))
        for prefix, entries in by_prefix.items()
    ]
    return CarrierSnapshot(carriers, RoutingTable.from_routes(routes), now)


class CarrierDirectory:
    def __init__(self, database_url: str, refresh_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.database_url = database_url
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._snapshot: CarrierSnapshot | None = None
        self._lock = threading.Lock()
        self._picks = itertools.count()

    def route(self, phone_number: str) -> int | None:
        """The carrier for a number: longest prefix, then smooth weighted round robin
        over that route's carriers (per process). "No route" rejects a message for
        good, so it is only answered from a snapshot just read."""
        pick = next(self._picks)
        selected = self.current().table.select(phone_number, pick=pick)
        if selected is None:
            selected = self.reload().table.select(phone_number, pick=pick)
        return int(selected) if selected is not None else None

    def reload(self) -> CarrierSnapshot:
        with self._lock:
            self._snapshot = load_snapshot(self.database_url, self.clock())
            return self._snapshot

    def current(self) -> CarrierSnapshot:
        snapshot = self._snapshot
        if snapshot is not None and self.clock() - snapshot.loaded_at < self.refresh_seconds:
            return snapshot
        with self._lock:
            if self._snapshot is snapshot:
                self._snapshot = load_snapshot(self.database_url, self.clock())
            return self._snapshot


class ConnectorRegistry:
    """One connector per carrier (and settings) per process."""

    def __init__(self, loop: BackgroundLoop, on_deliver: Callable[[int], DeliverHandler] | None = None):
        self._loop = loop
        self._on_deliver = on_deliver
        self._connectors: dict[int, tuple[CarrierInfo, Connector]] = {}
        self._lock = threading.Lock()

    def for_carrier(self, carrier: CarrierInfo) -> Connector:
        with self._lock:
            known = self._connectors.get(carrier.id)
            if known is not None and known[0] == carrier:
                return known[1]
            if known is not None:
                known[1].close()
            connector = self._build(carrier)
            self._connectors[carrier.id] = (carrier, connector)
            return connector

    def _build(self, carrier: CarrierInfo) -> Connector:
        if carrier.connector == "smpp":
            handler = self._on_deliver(carrier.id) if self._on_deliver else None
            return SmppConnector(carrier.settings, self._loop, handler)
        if carrier.connector == "http":
            return HttpConnector(carrier.settings)
        raise ValueError(f"carrier {carrier.id} has an unknown connector {carrier.connector!r}")

    def connect_all(self, carriers: dict[int, CarrierInfo]) -> None:
        """Open the links of every enabled SMPP carrier (worker start-up)."""
        for carrier in carriers.values():
            if carrier.enabled and carrier.connector == "smpp":
                self.for_carrier(carrier).connect()

    def bind_status(self) -> dict[int, tuple[int, int]]:
        """Per SMPP carrier of this process: (binds up, binds configured)."""
        with self._lock:
            connectors = [(carrier_id, connector) for carrier_id, (_, connector) in self._connectors.items()]
        return {carrier_id: connector.bind_status() for carrier_id, connector in connectors
                if isinstance(connector, SmppConnector)}

    def install(self, carrier_id: int, carrier: CarrierInfo, connector: Connector) -> None:
        """Use ``connector`` for this carrier (tests use the in-memory one)."""
        with self._lock:
            self._connectors[carrier_id] = (carrier, connector)

    def close_all(self) -> None:
        with self._lock:
            connectors, self._connectors = list(self._connectors.values()), {}
        for _, connector in connectors:
            connector.close()
