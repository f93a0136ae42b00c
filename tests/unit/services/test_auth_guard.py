"""The guard and the credential cache, with fakeredis and a counted stand-in for the KDF:
what runs the KDF, what is answered without it, and what is kept."""

from __future__ import annotations

import threading

import fakeredis
import pytest
import redis

from app.adapters.auth_limits import RedisFailureCounter
from app.domain.auth_limits import AuthLimits, Lockout, Scope
from app.services import auth_guard
from app.services.auth_guard import AuthGuard, CredentialCache, KdfBusy, LockedOut, StoredCredential

TTL = 30.0


class Kdf:
    """Stands in for scrypt: a stored hash is ``plain:<password>``; every call is counted."""

    def __init__(self):
        self.calls = 0

    def __call__(self, password: str, stored: str) -> bool:
        self.calls += 1
        return stored == f"plain:{password}"


class Accounts:
    """What the database holds: login -> (password, enabled); loads are counted."""

    def __init__(self, **accounts):
        self.rows = {login: (password, True) for login, password in accounts.items()}
        self.loads = 0

    def load(self, login: str) -> StoredCredential[str] | None:
        self.loads += 1
        if login not in self.rows:
            return None
        password, enabled = self.rows[login]
        return StoredCredential(login if enabled else None, f"plain:{password}")


@pytest.fixture
def kdf(monkeypatch):
    counted = Kdf()
    monkeypatch.setattr(auth_guard, "verify_password", counted)
    monkeypatch.setattr(auth_guard, "dummy_hash", lambda: "plain:\0never")
    return counted


@pytest.fixture
def client():
    return fakeredis.FakeRedis()


@pytest.fixture
def clock():
    return [1000.0]


def make_cache(client, clock, accounts, *, size=100, limits=AuthLimits(), concurrency=1):
    guard = AuthGuard(RedisFailureCounter(client, "t:", window_seconds=limits.window_seconds), limits,
                      kdf_concurrency=concurrency)
    return CredentialCache(Scope.ACCOUNT, accounts.load, guard, ttl=TTL, size=size, clock=lambda: clock[0])


def test_a_verified_pair_is_served_from_the_cache(kdf, client, clock):
    accounts = Accounts(acme="right")
    cache = make_cache(client, clock, accounts)
    assert [cache.authenticate("acme", "right", "10.0.0.1") for _ in range(5)] == ["acme"] * 5
    assert kdf.calls == 1 and accounts.loads == 1


def test_past_its_ttl_a_pair_is_rechecked_with_one_query_and_no_kdf(kdf, client, clock):
    accounts = Accounts(acme="right")
    cache = make_cache(client, clock, accounts)
    cache.authenticate("acme", "right", "10.0.0.1")
    clock[0] += TTL + 1
    assert cache.authenticate("acme", "right", "10.0.0.1") == "acme"
    assert kdf.calls == 1 and accounts.loads == 2
    accounts.rows["acme"] = ("right", False)  # disabled
    clock[0] += TTL + 1
    assert cache.authenticate("acme", "right", "10.0.0.1") is None
    assert kdf.calls == 1


def test_a_changed_password_ends_a_cached_pair(kdf, client, clock):
    accounts = Accounts(acme="old")
    cache = make_cache(client, clock, accounts)
    cache.authenticate("acme", "old", "10.0.0.1")
    accounts.rows["acme"] = ("new", True)
    clock[0] += TTL + 1
    assert cache.authenticate("acme", "old", "10.0.0.1") is None
    assert cache.authenticate("acme", "new", "10.0.0.1") == "acme"


def test_the_database_away_a_known_pair_is_served_as_it_was(kdf, client, clock):
    from sqlalchemy.exc import OperationalError

    accounts = Accounts(acme="right")
    cache = make_cache(client, clock, accounts)
    cache.authenticate("acme", "right", "10.0.0.1")
    clock[0] += TTL + 1

    def away(login):
        raise OperationalError("SELECT", {}, Exception("connection refused"))

    cache.load = away
    assert cache.authenticate("acme", "right", "10.0.0.1") == "acme"


def test_a_repeated_wrong_password_runs_the_kdf_once_and_counts_each_time(kdf, client, clock):
    cache = make_cache(client, clock, Accounts(acme="right"))
    assert cache.authenticate("acme", "wrong", "10.0.0.1") is None
    assert cache.authenticate("acme", "wrong", "10.0.0.1") is None
    assert kdf.calls == 1
    assert int(client.get("t:auth:addr:10.0.0.1")) == 2


def test_after_the_address_limit_nothing_is_checked_and_other_addresses_still_log_in(kdf, client, clock):
    accounts = Accounts(acme="right")
    cache = make_cache(client, clock, accounts, limits=AuthLimits(address_failures=5, login_failures=10))
    for n in range(5):
        assert cache.authenticate("acme", f"guess-{n}", "203.0.113.9") is None
    calls, loads = kdf.calls, accounts.loads
    assert cache.authenticate("acme", "guess-5", "203.0.113.9") is None
    assert cache.authenticate("acme", "right", "203.0.113.9") is None  # locked, even with the right one
    assert (kdf.calls, accounts.loads) == (calls, loads)  # no KDF, no query
    assert cache.authenticate("acme", "right", "198.51.100.1") == "acme"


def test_an_ipv6_attacker_counts_as_its_64(kdf, client, clock):
    cache = make_cache(client, clock, Accounts(acme="right"), limits=AuthLimits(address_failures=3))
    for n in range(3):
        cache.authenticate("acme", f"guess-{n}", f"2001:db8:1:2::{n + 1:x}")
    calls = kdf.calls
    assert cache.authenticate("acme", "guess-9", "2001:db8:1:2:ffff::1") is None
    assert kdf.calls == calls


def test_a_locked_login_still_serves_a_client_who_logged_in_before(kdf, client, clock):
    accounts = Accounts(acme="right")
    cache = make_cache(client, clock, accounts, limits=AuthLimits(address_failures=0, login_failures=3))
    assert cache.authenticate("acme", "right", "198.51.100.1") == "acme"
    for n in range(3):  # an attacker from many addresses
        cache.authenticate("acme", f"guess-{n}", f"203.0.113.{n}")
    calls = kdf.calls
    assert cache.authenticate("acme", "guess-9", "203.0.113.99") is None and kdf.calls == calls
    assert cache.authenticate("acme", "right", "198.51.100.1") == "acme"
    clock[0] += TTL + 1  # past the TTL too: re-checked without the limits or the KDF
    assert cache.authenticate("acme", "right", "198.51.100.1") == "acme" and kdf.calls == calls


def test_the_window_lapses(kdf, client, clock):
    cache = make_cache(client, clock, Accounts(acme="right"), limits=AuthLimits(address_failures=2, window_seconds=60))
    cache.authenticate("acme", "a", "10.0.0.1")
    cache.authenticate("acme", "b", "10.0.0.1")
    assert 0 < client.ttl("t:auth:addr:10.0.0.1") <= 60
    client.delete("t:auth:addr:10.0.0.1")  # what Redis does when the window ends
    assert cache.authenticate("acme", "right", "10.0.0.1") == "acme"


def test_refusals_never_evict_a_verified_pair(kdf, client, clock):
    accounts = Accounts(acme="right", other="pw")
    cache = make_cache(client, clock, accounts, size=4, limits=AuthLimits(address_failures=0, login_failures=0))
    cache.authenticate("acme", "right", "10.0.0.1")
    cache.authenticate("other", "pw", "10.0.0.1")
    for n in range(100):
        cache.authenticate("acme", f"wrong-{n}", "10.0.0.1")
    calls = kdf.calls
    assert cache.authenticate("acme", "right", "10.0.0.1") == "acme"
    assert cache.authenticate("other", "pw", "10.0.0.1") == "other"
    assert kdf.calls == calls


def test_a_full_cache_drops_its_least_recently_used_pair_only(kdf, client, clock):
    accounts = Accounts(**{f"user{n}": "pw" for n in range(4)})
    cache = make_cache(client, clock, accounts, size=3)
    for n in range(3):
        cache.authenticate(f"user{n}", "pw", "10.0.0.1")
    cache.authenticate("user0", "pw", "10.0.0.1")  # user1 is now the least recently used
    cache.authenticate("user3", "pw", "10.0.0.1")
    calls = kdf.calls
    for n in (0, 2, 3):
        assert cache.authenticate(f"user{n}", "pw", "10.0.0.1") == f"user{n}"
    assert kdf.calls == calls
    assert cache.authenticate("user1", "pw", "10.0.0.1") == "user1" and kdf.calls == calls + 1


class BlockingKdf(Kdf):
    """A KDF that holds its slot until released."""

    def __init__(self):
        super().__init__()
        self.entered = threading.Event()
        self.release = threading.Event()

    def __call__(self, password: str, stored: str) -> bool:
        self.entered.set()
        assert self.release.wait(10)
        return super().__call__(password, stored)


def test_with_every_slot_busy_another_check_is_refused_at_once_and_a_twin_shares_the_answer(monkeypatch, client,
                                                                                           clock):
    kdf = BlockingKdf()
    monkeypatch.setattr(auth_guard, "verify_password", kdf)
    cache = make_cache(client, clock, Accounts(acme="right", other="pw"), concurrency=1)
    answers = []
    threads = [threading.Thread(target=lambda: answers.append(cache.authenticate("acme", "right", "10.0.0.1")))
               for _ in range(3)]
    threads[0].start()
    assert kdf.entered.wait(10)
    for thread in threads[1:]:
        thread.start()
    with pytest.raises(KdfBusy):
        cache.authenticate("other", "pw", "10.0.0.2")
    kdf.release.set()
    for thread in threads:
        thread.join(10)
    assert answers == ["acme"] * 3 and kdf.calls == 1
    assert cache.authenticate("other", "pw", "10.0.0.2") == "other"


def test_redis_away_a_cached_pair_is_served_and_an_unknown_one_is_not_checked(kdf, clock):
    broken = redis.Redis(port=1, socket_connect_timeout=0.2)
    working = fakeredis.FakeRedis()
    cache = make_cache(working, clock, Accounts(acme="right"))
    cache.authenticate("acme", "right", "10.0.0.1")
    cache.guard.counter.client = broken
    assert cache.authenticate("acme", "right", "10.0.0.1") == "acme"
    calls = kdf.calls
    with pytest.raises(redis.ConnectionError):
        cache.authenticate("acme", "other", "10.0.0.1")
    assert kdf.calls == calls


def test_without_limits_redis_is_never_asked(kdf, clock):
    cache = make_cache(redis.Redis(port=1, socket_connect_timeout=0.2), clock, Accounts(acme="right"),
                       limits=AuthLimits(address_failures=0, login_failures=0))
    assert cache.authenticate("acme", "wrong", "10.0.0.1") is None
    assert cache.authenticate("acme", "right", "10.0.0.1") == "acme"


def test_attempt_limits_a_path_without_a_cache(client):
    guard = AuthGuard(RedisFailureCounter(client, "t:", window_seconds=60), AuthLimits(address_failures=2),
                      kdf_concurrency=1)
    verified = []

    def check(ok: bool):
        return lambda: verified.append(ok) or ("op" if ok else None)

    assert guard.attempt(Scope.OPERATOR, "op", "10.0.0.1", check(False)) is None
    assert guard.attempt(Scope.OPERATOR, "op", "10.0.0.1", check(False)) is None
    with pytest.raises(LockedOut) as locked:
        guard.attempt(Scope.OPERATOR, "op", "10.0.0.1", check(True))
    assert locked.value.lockout is Lockout.ADDRESS and verified == [False, False]
    assert guard.attempt(Scope.OPERATOR, "op", "10.0.0.2", check(True)) == "op"


def test_reading_the_counts_creates_no_keys(client):
    counter = RedisFailureCounter(client, "t:", window_seconds=60)
    assert counter.read("10.0.0.1", "account:x").address == 0
    assert client.keys("t:*") == []
    counts = counter.record_failure("10.0.0.1", "account:x")
    assert (counts.address, counts.login) == (1, 1)
    assert client.ttl("t:auth:login:account:x") == 60
