"""Pure rules of the bulk area: prices, spam rules, templates, MO stop keywords.

No I/O, no clock: the directory snapshot holds the rows, these functions decide.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

# --- prices --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PriceTable:
    """Prices per segment in credit units.

    A price row names a destination prefix, a carrier, or both (exactly one route).
    For a destination the route table would send to ``carrier`` through the route of
    ``route_prefix``, the first that applies wins:

    1. the route's own price (``route_prefix`` + ``carrier``),
    2. the longest destination-prefix price (any carrier),
    3. the carrier's price,
    4. ``default``.
    """

    by_route: Mapping[tuple[str, int], int]
    by_prefix: Mapping[str, int]
    by_carrier: Mapping[int, int]
    default: int

    def price(self, destination: str, route: tuple[str, int] | None) -> int:
        if route is not None and route in self.by_route:
            return self.by_route[route]
        for length in range(len(destination), 0, -1):
            price = self.by_prefix.get(destination[:length])
            if price is not None:
                return price
        if route is not None and route[1] in self.by_carrier:
            return self.by_carrier[route[1]]
        return self.default


def price_table(rows: Iterable[tuple[str | None, int | None, int]], default: int) -> PriceTable:
    by_route, by_prefix, by_carrier = {}, {}, {}
    for prefix, carrier_id, price in rows:
        if prefix is not None and carrier_id is not None:
            by_route[(prefix, carrier_id)] = price
        elif prefix is not None:
            by_prefix[prefix] = price
        elif carrier_id is not None:
            by_carrier[carrier_id] = price
    return PriceTable(by_route, by_prefix, by_carrier, default)


@dataclass(frozen=True)
class RouteIndex:
    """Longest-prefix route lookup (the intake's rule: longest prefix, then position)."""

    by_prefix: Mapping[str, int]
    longest: int

    def route(self, destination: str) -> tuple[str, int] | None:
        for length in range(min(len(destination), self.longest), -1, -1):
            carrier = self.by_prefix.get(destination[:length])
            if carrier is not None:
                return destination[:length], carrier
        return None


def route_index(rows: Sequence[tuple[str, int, int, int]]) -> RouteIndex:
    """``rows`` are (prefix, carrier_id, position, id); the first by (position, id) wins."""
    by_prefix: dict[str, int] = {}
    for prefix, carrier_id, _position, _id in sorted(rows, key=lambda r: (r[2], r[3])):
        by_prefix.setdefault(prefix, carrier_id)
    return RouteIndex(by_prefix, max((len(p) for p in by_prefix), default=0))


# --- spam rules and templates ---------------------------------------------------------------

MAX_TEMPLATE_VARIABLE = 30
_VARIABLE = "{#var#}"


class InvalidRule(ValueError):
    pass


def compile_spam_rule(pattern: str, is_regex: bool) -> re.Pattern[str]:
    """A phrase matches case-insensitively anywhere in the text; a regex is searched."""
    try:
        return re.compile(pattern if is_regex else re.escape(pattern), re.IGNORECASE | re.DOTALL)
    except re.error as exc:
        raise InvalidRule(f"not a regular expression: {exc}") from exc


def matches_spam(text: str, rules: Iterable[re.Pattern[str]]) -> bool:
    return any(rule.search(text) for rule in rules)


def compile_template(body: str) -> re.Pattern[str]:
    """Literal text in which each ``{#var#}`` stands for 1 to 30 characters (the DLT
    convention); the whole message must match, whitespace runs compare as one."""
    if not body.strip():
        raise InvalidRule("a template may not be blank")
    pieces = [re.sub(r"\\\s+|\s+", r"\\s+", re.escape(piece)) for piece in body.split(_VARIABLE)]
    return re.compile(f"(?:.{{1,{MAX_TEMPLATE_VARIABLE}}})".join(pieces), re.DOTALL)


def matches_template(text: str, templates: Iterable[re.Pattern[str]]) -> bool:
    stripped = text.strip()
    return any(template.fullmatch(stripped) for template in templates)


# --- MO keywords -----------------------------------------------------------------------------

STOP_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"})
START_KEYWORDS = frozenset({"START"})


def stop_keyword_action(text: str) -> Literal["stop", "start"] | None:
    """``"stop"`` / ``"start"`` when the whole MO text is a keyword (any case, surrounding
    whitespace and trailing punctuation ignored: ``" Stop. "``), else ``None``: a
    sentence that merely contains STOP is not an opt-out."""
    word = text.strip().rstrip(".!").strip().upper()
    if word in STOP_KEYWORDS:
        return "stop"
    if word in START_KEYWORDS:
        return "start"
    return None
