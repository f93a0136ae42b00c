"""Routing tables: which carrier takes a message, as pure value objects.

A `Route` pairs a digit prefix of the E.164 number (without '+'; the empty prefix is the
default route) with weighted carriers. `RoutingTable.select` promises:

* The longest prefix that matches the number's digits wins.
* Among the route's carriers the choice is weighted and deterministic given `pick`:
  an ``int`` is a counter (the message's sequence number, say) into the route's smooth
  weighted round robin schedule (nginx's algorithm: weights 5, 1, 1 give
  a a b a c a a, not a a a a a b c); a callable receives the total weight of the
  carriers still eligible and returns a number in ``[0, total)``, so
  ``lambda total: random.randrange(total)`` gives a weighted random choice.
* `exclude` names carriers that must not be used (down, or already failed for this
  message). They are skipped; when every carrier of the matching route is excluded, the
  next shorter matching prefix is tried, down to the default route, so a less specific
  route is the backup of a more specific one. An operator who does not want that for a
  destination lists no default route or no shorter prefix. None when nothing is left.

`resolve_carrier` puts the Genesys rule in front of the table (seed 000, ``carrier``: "If
a Carrier ID is supplied, Genesys will trust it"): a requested carrier that exists is used
as it is, without consulting the table; one that does not exist is `NoRoute` with result
code 3 (Carrier ID Invalid). A trusted carrier is never swapped for another, so when it is
excluded (down or already failed) the answer is `NoRoute` too.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from enum import Enum
from functools import lru_cache
from math import gcd

from app.domain.smpp_status import DrResultCode

Pick = int | Callable[[int], float]


class InvalidRoute(ValueError):
    """A route or routing table that cannot be used as given."""


@dataclass(frozen=True)
class WeightedCarrier:
    carrier_id: str
    weight: int = 1

    def __post_init__(self) -> None:
        if self.weight < 1:
            raise InvalidRoute(f"carrier {self.carrier_id!r}: weight must be >= 1")


@dataclass(frozen=True)
class Route:
    prefix: str
    carriers: tuple[WeightedCarrier, ...]

    def __post_init__(self) -> None:
        if self.prefix and not _is_ascii_digits(self.prefix):
            raise InvalidRoute(f"route prefix must be digits only: {self.prefix!r}")
        if not self.carriers:
            raise InvalidRoute(f"route {self.prefix!r} has no carriers")
        ids = [carrier.carrier_id for carrier in self.carriers]
        if len(set(ids)) != len(ids):
            raise InvalidRoute(f"route {self.prefix!r} lists a carrier twice: {ids}")


class NoRouteReason(Enum):
    UNKNOWN_CARRIER = "unknown_carrier"
    NO_ROUTE = "no_route"
    ALL_EXCLUDED = "all_excluded"


@dataclass(frozen=True)
class NoRoute:
    """No carrier can take the message; `result_code` is what the client is told.

    An unknown carrier and a number no route covers are 3 (Carrier ID Invalid, "no mapping
    for this carrier"); when every candidate is excluded, the carriers have refused or
    failed it: 1 (rejected by the upstream provider).
    """

    reason: NoRouteReason

    @property
    def result_code(self) -> DrResultCode:
        if self.reason is NoRouteReason.ALL_EXCLUDED:
            return DrResultCode.REJECTED_UPSTREAM
        return DrResultCode.CARRIER_INVALID


@dataclass(frozen=True)
class RoutingTable:
    routes: tuple[Route, ...]

    @classmethod
    def from_routes(cls, routes: Iterable[Route]) -> RoutingTable:
        """A table of `routes`, longest prefix first; one route per prefix."""
        ordered = tuple(sorted(routes, key=lambda route: len(route.prefix), reverse=True))
        prefixes = [route.prefix for route in ordered]
        if len(set(prefixes)) != len(prefixes):
            raise InvalidRoute(f"two routes for one prefix: {sorted(prefixes)}")
        return cls(ordered)

    def matching_routes(self, msisdn: str) -> tuple[Route, ...]:
        """Routes whose prefix the number starts with, most specific first."""
        digits = msisdn_digits(msisdn)
        return tuple(route for route in self.routes if digits.startswith(route.prefix))

    def select(
        self, msisdn: str, *, exclude: Collection[str] = frozenset(), pick: Pick = 0
    ) -> str | None:
        """The carrier for `msisdn` (see module docstring), or None."""
        for route in self.matching_routes(msisdn):
            eligible = tuple(c for c in route.carriers if c.carrier_id not in exclude)
            if eligible:
                return _pick_carrier(eligible, pick)
        return None


def msisdn_digits(msisdn: str) -> str:
    """The E.164 digits of `msisdn`, one leading '+' removed."""
    digits = msisdn.removeprefix("+")
    if not _is_ascii_digits(digits):
        raise ValueError(f"not an E.164 number: {msisdn!r}")
    return digits


def resolve_carrier(
    requested_carrier: str | None,
    msisdn: str,
    table: RoutingTable,
    known_carriers: Collection[str],
    *,
    exclude: Collection[str] = frozenset(),
    pick: Pick = 0,
) -> str | NoRoute:
    """The carrier for a message: the trusted requested one, else the table's choice."""
    if requested_carrier:
        if requested_carrier not in known_carriers:
            return NoRoute(NoRouteReason.UNKNOWN_CARRIER)
        if requested_carrier in exclude:
            return NoRoute(NoRouteReason.ALL_EXCLUDED)
        return requested_carrier
    if not table.matching_routes(msisdn):
        return NoRoute(NoRouteReason.NO_ROUTE)
    selected = table.select(msisdn, exclude=exclude, pick=pick)
    return selected if selected is not None else NoRoute(NoRouteReason.ALL_EXCLUDED)


def smooth_weighted_schedule(weights: Sequence[int]) -> tuple[int, ...]:
    """One period of nginx's smooth weighted round robin, as indexes into `weights`."""
    divisor = gcd(*weights)
    return _schedule(tuple(weight // divisor for weight in weights))


def _is_ascii_digits(text: str) -> bool:
    return text.isascii() and text.isdigit()


def _pick_carrier(carriers: tuple[WeightedCarrier, ...], pick: Pick) -> str:
    weights = [carrier.weight for carrier in carriers]
    if isinstance(pick, int):
        schedule = smooth_weighted_schedule(weights)
        return carriers[schedule[pick % len(schedule)]].carrier_id
    total = sum(weights)
    point = pick(total)
    if not 0 <= point < total:
        raise ValueError(f"pick returned {point}, outside [0, {total})")
    for carrier in carriers[:-1]:
        if point < carrier.weight:
            return carrier.carrier_id
        point -= carrier.weight
    return carriers[-1].carrier_id


@lru_cache(maxsize=1024)
def _schedule(weights: tuple[int, ...]) -> tuple[int, ...]:
    total = sum(weights)
    current = [0] * len(weights)
    order = []
    for _ in range(total):
        current = [value + weight for value, weight in zip(current, weights, strict=True)]
        chosen = max(range(len(weights)), key=lambda index: (current[index], -index))
        current[chosen] -= total
        order.append(chosen)
    return tuple(order)
