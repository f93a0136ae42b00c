"""API keys on SQLite and PostgreSQL: tokens shown once and stored as digests, rotation
with and without a grace period, revocation, and the ingress's key ring (no database
query for a malformed token, changes seen after one refresh interval)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select

from app.api import keys
from app.api.models import ApiKey
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.errors import InvalidValue, NotFound

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=timezone.utc)


class Clocks:
    def __init__(self) -> None:
        self.monotonic = 0.0
        self.wall = NOW.timestamp()


@pytest.fixture
def accounts(database_url):
    with session_scope(database_url) as session:
        for login in ("acme", "other"):
            svc.create_account(session, login, "pw", options=AccountOptions(), default_max_length=160)
    return database_url


@pytest.fixture
def ring(accounts):
    clocks = Clocks()
    return keys.KeyRing(accounts, refresh_seconds=5, clock=lambda: clocks.monotonic,
                        wall_clock=lambda: clocks.wall), clocks


def create(database_url, login="acme", name=None) -> keys.IssuedKey:
    with session_scope(database_url) as session:
        return keys.create_key(session, login, name)


def test_a_token_is_stored_only_as_its_digest(accounts):
    issued = create(accounts, name="crm")
    assert keys.claimed_key_id(issued.token) == issued.key_id and issued.token.startswith("smsagg_")
    with session_scope(accounts) as session:
        row = session.get(ApiKey, issued.key_id)
        assert row.digest == hashlib.sha256(issued.token.encode()).hexdigest()
        stored = [str(value) for value in session.execute(select(ApiKey.__table__)).one()]
    assert not any(issued.token.split("_", 2)[2] in value for value in stored)
    with session_scope(accounts) as session:
        [info] = keys.list_keys(session, "acme")
    assert (info.key_id, info.login, info.name, info.status) == (issued.key_id, "acme", "crm", "active")
    assert info.created_at.tzinfo is not None


def test_keys_are_random_and_distinct(accounts):
    tokens = {create(accounts).token for _ in range(20)}
    assert len(tokens) == 20 and len({keys.claimed_key_id(t) for t in tokens}) == 20


def test_bad_requests_are_clear_errors(accounts):
    with session_scope(accounts) as session:
        with pytest.raises(NotFound):
            keys.create_key(session, "nobody")
        with pytest.raises(InvalidValue):
            keys.create_key(session, "acme", "x" * 65)
        with pytest.raises(NotFound):
            keys.rotate_key(session, "nosuchkey0", now=NOW)
        with pytest.raises(NotFound):
            keys.revoke_key(session, "nosuchkey0", now=NOW)


def test_the_ring_knows_valid_tokens_only(ring, accounts):
    key_ring, _ = ring
    issued = create(accounts)
    holder = key_ring.authenticate(issued.token)
    assert holder.key_id == issued.key_id and holder.account.login == "acme"
    wrong_secret = issued.token[:-4] + ("AAAA" if not issued.token.endswith("AAAA") else "BBBB")
    assert key_ring.authenticate(wrong_secret) is None
    assert key_ring.authenticate(issued.token + "x") is None
    assert key_ring.authenticate("") is None


def test_a_malformed_token_never_reaches_the_database(tmp_path):
    key_ring = keys.KeyRing(f"sqlite:///{tmp_path}/missing/nothing.db", refresh_seconds=5)
    for token in ("", "garbage", "smsagg_x_y", "Bearer smsagg_" + "a" * 10 + "_" + "b" * 43, "smsagg_" + "A" * 10 +
                  "_" + "b" * 43):
        assert key_ring.authenticate(token) is None
    assert not (tmp_path / "missing").exists()


def test_revocation_and_disabling_are_seen_after_one_refresh(ring, accounts):
    key_ring, clocks = ring
    issued, other = create(accounts), create(accounts, "other")
    assert key_ring.authenticate(issued.token) is not None
    with session_scope(accounts) as session:
        assert keys.revoke_key(session, issued.key_id, now=NOW) is True
        assert keys.revoke_key(session, issued.key_id, now=NOW) is False
        svc.update_account(session, "other", enabled=False, options=AccountOptions())
    assert key_ring.authenticate(issued.token) is not None  # within the refresh interval
    clocks.monotonic += 5
    assert key_ring.authenticate(issued.token) is None and key_ring.authenticate(other.token) is None
    with session_scope(accounts) as session:
        with pytest.raises(InvalidValue):
            keys.rotate_key(session, issued.key_id, now=NOW)
        assert [k.status for k in keys.list_keys(session, "acme")] == ["revoked"]


def test_rotation_replaces_the_token_at_once_or_after_a_grace_period(ring, accounts):
    key_ring, clocks = ring
    issued = create(accounts, name="crm")
    with session_scope(accounts) as session:
        rotated = keys.rotate_key(session, issued.key_id, now=NOW)
    clocks.monotonic += 5
    assert rotated.key_id == issued.key_id and rotated.name == "crm" and rotated.token != issued.token
    assert key_ring.authenticate(issued.token) is None and key_ring.authenticate(rotated.token) is not None
    with session_scope(accounts) as session:
        again = keys.rotate_key(session, issued.key_id, grace_seconds=60, now=NOW)
        [info] = keys.list_keys(session, "acme")
    assert info.previous_valid_until == NOW + timedelta(seconds=60)
    clocks.monotonic += 5
    assert key_ring.authenticate(rotated.token) is not None and key_ring.authenticate(again.token) is not None
    clocks.wall += 60
    assert key_ring.authenticate(rotated.token) is None and key_ring.authenticate(again.token) is not None
    with session_scope(accounts) as session:
        keys.revoke_key(session, issued.key_id, now=NOW)
    clocks.monotonic += 5
    clocks.wall -= 60
    assert key_ring.authenticate(rotated.token) is None and key_ring.authenticate(again.token) is None
