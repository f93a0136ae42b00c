"""The workers' cached view of carriers and routes, and the connectors built from them.

Like the ingress's directory, it is a snapshot re-read every few seconds, so routing a
message costs no query. Connectors are built once per carrier per process and kept
(SMPP binds are long-lived); a carrier whose settings change gets a new connector.

What a carrier can carry follows from its connector (:func:`carrier_kinds`): SMPP
carries SMS, MM7 carries MMS, HTTP carries SMS and, when its preset passes
attachments on (``genesys``; the ``mms`` setting decides otherwise), MMS. The snapshot
holds one routing table per kind, built from the same routes with only the carriers
that can carry it, so an MMS is routed among MMS-capable carriers (a route whose
carriers cannot carry it is skipped and a shorter prefix tried, as for excluded
carriers: :mod:`app.domain.routing`) while SMS keep their table and their cost.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from sqlalchemy import select

from app.connectors.base import Connector
from app.connectors.http import HttpConnector, carries_mms
from app.connectors.loop import BackgroundLoop
from app.connectors.mm7 import Mm7Connector
from app.connectors.smpp import DeliverHandler, SmppConnector
from app.db.models import Carrier, Route
from app.db.session import session_scope
from app.domain.routing import Route as RouteValue
from app.domain.routing import RoutingTable, WeightedCarrier
from app.services.snapshot import TimedSnapshot


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

    @cached_property
    def kinds(self) -> tuple[str, ...]:
        return carrier_kinds(self.connector, self.settings)

    @property
    def carries_sms(self) -> bool:
        return "sms" in self.kinds

    @property
    def carries_mms(self) -> bool:
        return "mms" in self.kinds


def carrier_kinds(connector: str, settings: dict[str, Any]) -> tuple[str, ...]:
    """What a carrier with this connector and these settings carries: ``sms``, ``mms``."""
    if connector == "mm7":
        return ("mms",)
    if connector == "http" and carries_mms(settings):
        return ("sms", "mms")
    return ("sms",)


@dataclass(frozen=True)
class CarrierSnapshot:
    carriers: dict[int, CarrierInfo]
    table: RoutingTable
    """SMS routes: the carriers that carry SMS."""
    mms_table: RoutingTable
    """MMS routes: the same routes with the carriers that carry MMS."""
    loaded_at: float

    def table_for(self, mms: bool) -> RoutingTable:
        return self.mms_table if mms else self.table


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
    return CarrierSnapshot(carriers, _table(by_prefix, lambda carrier: carrier.carries_sms, carriers),
                           _table(by_prefix, lambda carrier: carrier.carries_mms, carriers), now)


def _table(by_prefix: dict[str, list[tuple[int, int, int]]], can_carry: Callable[[CarrierInfo], bool],
           carriers: dict[int, CarrierInfo]) -> RoutingTable:
    routes = []
    for prefix, entries in by_prefix.items():
        capable = tuple(WeightedCarrier(str(cid), weight) for _, cid, weight in sorted(entries)
                        if can_carry(carriers[cid]))
        if capable:
            routes.append(RouteValue(prefix, capable))
    return RoutingTable.from_routes(routes)


class CarrierDirectory:
    def __init__(self, database_url: str, refresh_seconds: float, clock: Callable[[], float] = time.monotonic):
        self.database_url = database_url
        self.refresh_seconds = refresh_seconds
        self.clock = clock
        self._snapshot = TimedSnapshot(lambda: load_snapshot(self.database_url, self.clock()), refresh_seconds,
                                       clock=clock, name="carriers")
        self._picks = itertools.count()

    def route(self, phone_number: str, *, mms: bool = False) -> int | None:
        """The carrier for a number (an MMS: among the carriers that carry MMS): longest
        prefix, then smooth weighted round robin over that route's carriers (per
        process). "No route" rejects a message for good, so it is only answered from a
        snapshot just read."""
        pick = next(self._picks)
        selected = self.current().table_for(mms).select(phone_number, pick=pick)
        if selected is None:
            selected = self.reload().table_for(mms).select(phone_number, pick=pick)
        return int(selected) if selected is not None else None

    def reload(self) -> CarrierSnapshot:
        return self._snapshot.reload()

    def current(self) -> CarrierSnapshot:
        return self._snapshot.get()


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
        if carrier.connector == "mm7":
            return Mm7Connector(carrier.settings)
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
