"""Errors classified as data (app.services.failures): which errors mean "a backing
service is away" (retry) and which mean "this item cannot be done" (set it aside)."""

from __future__ import annotations

import pytest
import redis
from kombu.exceptions import OperationalError as BrokerUnavailable
from sqlalchemy import exc as sa

from app.services.failures import handle_isolating, is_outage

OUTAGES = [
    redis.ConnectionError("refused"),
    redis.exceptions.BusyLoadingError("Redis is loading the dataset in memory"),
    redis.TimeoutError("timed out"),
    redis.exceptions.ReadOnlyError("READONLY You can't write against a read only replica."),
    redis.ResponseError("MISCONF Redis is configured to save RDB snapshots, but it's currently unable to persist"),
    BrokerUnavailable("Error 111 connecting to 127.0.0.1:6379"),
    sa.OperationalError("SELECT 1", {}, Exception("server closed the connection unexpectedly")),
    sa.DisconnectionError("gone"),
    sa.TimeoutError("QueuePool limit reached"),
    ConnectionResetError(104, "reset"),
    TimeoutError("no answer"),
]
POISON = [KeyError("sender"), ValueError("not a number"), TypeError("bad type"), AttributeError("x"),
          sa.IntegrityError("INSERT", {}, Exception("duplicate key")), sa.DataError("INSERT", {}, Exception("too long")),
          redis.ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value")]


@pytest.mark.parametrize("error", OUTAGES, ids=lambda e: type(e).__name__)
def test_backing_services_away_are_outages(error):
    assert is_outage(error)


@pytest.mark.parametrize("error", POISON, ids=lambda e: type(e).__name__)
def test_anything_else_is_bad_work(error):
    assert not is_outage(error)


def test_an_invalidated_database_connection_is_an_outage():
    error = sa.DBAPIError("SELECT 1", {}, Exception("terminating connection"), connection_invalidated=True)
    assert is_outage(error)


def test_one_poison_item_is_set_aside_and_the_rest_of_its_batch_goes_on():
    handled, set_aside = [], []

    def handle(items):
        if "poison" in items:
            raise KeyError("poison")
        handled.extend(items)
        return len(items)

    results = handle_isolating(["a", "poison", "b"], handle, lambda item, error: set_aside.append((item, error)))
    assert handled == ["a", "b"] and results == [1, 1]
    assert [(item, type(error)) for item, error in set_aside] == [("poison", KeyError)]


def test_a_batch_that_works_is_handled_once_as_a_whole():
    calls = []
    assert handle_isolating([1, 2, 3], lambda items: calls.append(list(items)) or "ok", lambda *_: None) == ["ok"]
    assert calls == [[1, 2, 3]]


@pytest.mark.parametrize("fails_on", ["whole batch", "one item"])
def test_an_outage_is_never_taken_for_poison(fails_on):
    def handle(items):
        if fails_on == "whole batch" or items == ["b"]:
            raise redis.ConnectionError("Redis went away")
        if len(items) > 1:
            raise ValueError("batch-level bug")

    with pytest.raises(redis.ConnectionError):
        handle_isolating(["a", "b"], handle, lambda *_: pytest.fail("an outage set something aside"))
