"""Routing tables and carrier resolution (app.domain.routing)."""

from collections import Counter

import pytest

from app.domain.routing import (
    InvalidRoute,
    NoRoute,
    NoRouteReason,
    Route,
    RoutingTable,
    WeightedCarrier,
    msisdn_digits,
    resolve_carrier,
    smooth_weighted_schedule,
)


def route(prefix, *carriers):
    """route('44', 'a', ('b', 3)) -> Route('44', (a weight 1, b weight 3))."""
    weighted = tuple(
        WeightedCarrier(*c) if isinstance(c, tuple) else WeightedCarrier(c) for c in carriers
    )
    return Route(prefix, weighted)


TABLE = RoutingTable.from_routes(
    [
        route("", "global"),
        route("44", ("uk-a", 3), ("uk-b", 1)),
        route("447", "uk-mobile"),
        route("1", "us"),
    ]
)


@pytest.mark.parametrize(
    ("msisdn", "carrier"),
    [
        ("447700900000", "uk-mobile"),
        ("+447700900000", "uk-mobile"),
        ("442071234567", "uk-a"),
        ("12025550100", "us"),
        ("33612345678", "global"),
    ],
)
def test_longest_prefix_wins(msisdn, carrier):
    assert TABLE.select(msisdn) == carrier


def test_without_default_route_an_uncovered_number_has_no_carrier():
    table = RoutingTable.from_routes([route("44", "uk")])
    assert table.select("33612345678") is None


def test_weighted_round_robin_follows_the_weights_over_a_period():
    picks = Counter(TABLE.select("442071234567", pick=n) for n in range(400))
    assert picks == {"uk-a": 300, "uk-b": 100}


def test_weighted_round_robin_is_smooth_and_deterministic():
    """nginx's example: weights 5, 1, 1 give a a b a c a a."""
    table = RoutingTable.from_routes([route("", ("a", 5), ("b", 1), ("c", 1))])
    assert "".join(table.select("1", pick=n) for n in range(7)) == "aabacaa"
    assert [table.select("1", pick=n) for n in range(7, 14)] == list("aabacaa")


def test_schedule_reduces_weights_by_their_common_divisor():
    assert smooth_weighted_schedule([50, 10, 10]) == smooth_weighted_schedule([5, 1, 1])
    assert len(smooth_weighted_schedule([300, 100])) == 4


@pytest.mark.parametrize(("point", "carrier"), [(0, "uk-a"), (2.99, "uk-a"), (3, "uk-b")])
def test_callable_pick_chooses_by_cumulative_weight(point, carrier):
    totals = []

    def pick(total):
        totals.append(total)
        return point

    assert TABLE.select("442071234567", pick=pick) == carrier
    assert totals == [4]


def test_callable_pick_sees_the_total_of_eligible_carriers_only():
    totals = []
    TABLE.select("442071234567", exclude={"uk-a"}, pick=lambda total: totals.append(total) or 0)
    assert totals == [1]


@pytest.mark.parametrize("point", [-1, 4, 10])
def test_callable_pick_outside_the_range_is_an_error(point):
    with pytest.raises(ValueError):
        TABLE.select("442071234567", pick=lambda total: point)


def test_exclude_fails_over_to_the_next_carrier_of_the_same_route():
    assert TABLE.select("442071234567", exclude={"uk-a"}) == "uk-b"
    assert {TABLE.select("442071234567", exclude={"uk-a"}, pick=n) for n in range(8)} == {"uk-b"}


def test_exclude_falls_back_to_shorter_prefixes_then_the_default():
    assert TABLE.select("447700900000", exclude={"uk-mobile"}) == "uk-a"
    assert TABLE.select("447700900000", exclude={"uk-mobile", "uk-a", "uk-b"}) == "global"
    assert TABLE.select("447700900000", exclude={"uk-mobile", "uk-a", "uk-b", "global"}) is None


@pytest.mark.parametrize("msisdn", ["", "+", "44 7700", "+44-77", "++447700", "٤٤٧٧"])
def test_only_e164_digits_are_routed(msisdn):
    with pytest.raises(ValueError):
        TABLE.select(msisdn)


def test_msisdn_digits_strips_one_plus():
    assert msisdn_digits("+447700900000") == "447700900000"


@pytest.mark.parametrize(
    "make",
    [
        lambda: route("+44", "a"),
        lambda: route("4a", "a"),
        lambda: Route("44", ()),
        lambda: route("44", "a", "a"),
        lambda: route("44", ("a", 0)),
        lambda: RoutingTable.from_routes([route("44", "a"), route("44", "b")]),
    ],
)
def test_invalid_routes_are_refused(make):
    with pytest.raises(InvalidRoute):
        make()


KNOWN = {"uk-a", "uk-b", "uk-mobile", "us", "global", "direct"}


def test_a_trusted_carrier_bypasses_the_table():
    """Seed 000, MT parameters, `carrier`: "If a Carrier ID is supplied, Genesys will trust it"."""
    assert resolve_carrier("direct", "447700900000", TABLE, KNOWN) == "direct"


def test_an_unknown_requested_carrier_is_result_code_3():
    """Seed 000, result code 3: "no mapping for this carrier ID"."""
    outcome = resolve_carrier("99901", "447700900000", TABLE, KNOWN)
    assert outcome == NoRoute(NoRouteReason.UNKNOWN_CARRIER)
    assert outcome.result_code == 3


def test_an_excluded_trusted_carrier_is_not_swapped():
    outcome = resolve_carrier("direct", "447700900000", TABLE, KNOWN, exclude={"direct"})
    assert outcome == NoRoute(NoRouteReason.ALL_EXCLUDED)
    assert outcome.result_code == 1


@pytest.mark.parametrize("requested", [None, ""])
def test_without_a_requested_carrier_the_table_decides(requested):
    assert resolve_carrier(requested, "447700900000", TABLE, KNOWN) == "uk-mobile"
    assert resolve_carrier(requested, "442071234567", TABLE, KNOWN, pick=2) == "uk-b"


def test_a_number_no_route_covers_is_result_code_3():
    table = RoutingTable.from_routes([route("44", "uk-a")])
    outcome = resolve_carrier(None, "33612345678", table, KNOWN)
    assert outcome == NoRoute(NoRouteReason.NO_ROUTE)
    assert outcome.result_code == 3


def test_every_candidate_excluded_is_result_code_1():
    outcome = resolve_carrier(None, "12025550100", TABLE, KNOWN, exclude={"us", "global"})
    assert outcome == NoRoute(NoRouteReason.ALL_EXCLUDED)
    assert outcome.result_code == 1
