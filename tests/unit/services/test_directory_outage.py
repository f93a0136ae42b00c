"""The ingress's directory while the database is away: the last snapshot goes on
serving (so the ingress goes on accepting), and a refresh is tried again soon."""

from __future__ import annotations

import fakeredis
import pytest
from sqlalchemy.exc import OperationalError

from app.db.session import session_scope
from app.services import accounts as svc
from app.services.auth_guard import build_guard
from app.services.directory import AccountPolicy, Directory
from app.settings import Settings


class _NoRules:
    def policy(self, account_id: int) -> AccountPolicy:
        return AccountPolicy()

    def ip_denied(self, client_ip: str | None) -> bool:
        return False

    def price_per_segment(self, destination: str) -> int:
        return 1


NO_RULES = _NoRules()


def _directory(database_url: str, **clock) -> Directory:
    guard = build_guard(fakeredis.FakeRedis(), "t:", Settings())
    return Directory(database_url, guard=guard, credential_ttl=30, credential_cache_size=100, refresh_seconds=5,
                     rules=NO_RULES, **clock)


def test_a_failed_refresh_serves_the_last_snapshot_and_tries_again_soon(database_url, monkeypatch):
    with session_scope(database_url) as session:
        svc.add_sender(session, "77777", login=None)
    now = [1000.0]
    directory = _directory(database_url, clock=lambda: now[0])
    assert directory.sender("77777") is not None
    loads = []

    def database_away():
        loads.append(now[0])
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    monkeypatch.setattr(directory, "_load", database_away)
    now[0] += 6
    assert directory.sender("77777") is not None  # stale, but the ingress keeps accepting
    now[0] += 0.5
    directory.sender("77777")
    assert len(loads) == 1  # not a query per request while it is away
    now[0] += 1
    directory.sender("77777")
    assert len(loads) == 2  # tried again a second later


def test_without_any_snapshot_the_outage_is_the_answer(database_url, monkeypatch):
    directory = _directory(database_url)
    monkeypatch.setattr(directory, "_load", lambda: (_ for _ in ()).throw(OperationalError("SELECT", {}, None)))
    with pytest.raises(OperationalError):
        directory.sender("77777")  # result_code=98 at the ingress
