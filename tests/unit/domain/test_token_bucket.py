"""Token-bucket arithmetic, and the Redis Lua that must implement exactly it."""

import fakeredis
import pytest

from app.adapters.redis_scripts import Admission, RedisStore
from app.domain.token_bucket import BucketState, take


def test_a_new_bucket_is_full():
    result = take(None, now=100.0, rate=10, burst=3)
    assert result.allowed and result.state.tokens == 2


def test_burst_then_refusal_with_the_exact_wait():
    state = None
    for _ in range(3):
        result = take(state, now=0.0, rate=2, burst=3)
        assert result.allowed
        state = result.state
    refused = take(state, now=0.0, rate=2, burst=3)
    assert not refused.allowed
    assert refused.wait_seconds == pytest.approx(0.5)


def test_refill_is_capped_at_burst():
    state = BucketState(tokens=0, updated_at=0)
    assert take(state, now=1000, rate=5, burst=4).state.tokens == pytest.approx(3)


def test_clock_going_backwards_refills_nothing():
    state = BucketState(tokens=0.5, updated_at=10)
    result = take(state, now=5, rate=1, burst=1)
    assert not result.allowed and result.wait_seconds == pytest.approx(0.5)


def test_rate_must_be_positive():
    with pytest.raises(ValueError):
        take(None, now=0, rate=0, burst=1)


def store() -> RedisStore:
    return RedisStore(fakeredis.FakeRedis(), "t:")


def admit(s: RedisStore, client_id: str | None, *, rate=None, burst=None, message_id="m"):
    return s.admit(account_id=1, client_message_id=client_id, message_id=message_id, claim_ttl_seconds=60,
                   rate=rate, burst=burst, queue="q", item="payload", drain="drain")


def queued(s: RedisStore) -> int:
    return s.client.llen(s.keys.stage_pending("q"))


def test_lua_admits_burst_then_throttles_like_the_python():
    s = store()
    outcomes = [admit(s, f"id{i}", rate=1, burst=3).outcome for i in range(4)]
    assert outcomes == [Admission.QUEUED] * 3 + [Admission.THROTTLED]
    assert queued(s) == 3


def test_lua_throttled_request_leaves_no_claim():
    s = store()
    admit(s, "a", rate=1, burst=1)
    refused = admit(s, "b", rate=1, burst=1)
    assert refused.outcome is Admission.THROTTLED and 0 < refused.wait_seconds <= 1
    assert s.client.get(s.keys.idempotency(1, "b")) is None


def test_lua_duplicate_spends_no_token_and_queues_nothing():
    s = store()
    admit(s, "a", rate=1, burst=2, message_id="first")
    duplicate = admit(s, "a", rate=1, burst=2, message_id="second")
    assert duplicate.outcome is Admission.DUPLICATE and duplicate.existing_message_id == "first"
    assert admit(s, "b", rate=1, burst=2).outcome is Admission.QUEUED  # the second token was still there
    assert queued(s) == 2


def test_lua_without_message_id_claims_nothing():
    s = store()
    assert admit(s, None).outcome is Admission.QUEUED
    assert admit(s, None).outcome is Admission.QUEUED
    assert not list(s.client.scan_iter("t:idem:*"))


def test_unlimited_account_keeps_no_bucket():
    s = store()
    for i in range(50):
        assert admit(s, f"x{i}").outcome is Admission.QUEUED
    assert not list(s.client.scan_iter("t:bucket:*"))


def test_carrier_token_wait():
    s = store()
    assert s.take_carrier_token(7, rate=1, burst=1) == 0
    assert 0 < s.take_carrier_token(7, rate=1, burst=1) <= 1


def test_reserve_keeps_tokens_for_others():
    state = BucketState(tokens=3, updated_at=0)
    assert take(state, now=0, rate=1, burst=3, reserve=2).allowed
    refused = take(BucketState(tokens=2, updated_at=0), now=0, rate=1, burst=3, reserve=2)
    assert not refused.allowed and refused.wait_seconds == pytest.approx(1)
    assert take(BucketState(tokens=2, updated_at=0), now=0, rate=1, burst=3).allowed


def test_lua_carrier_reserve_matches_the_python():
    s = store()
    assert s.take_carrier_token(9, rate=1, burst=3, reserve=1) == 0
    assert s.take_carrier_token(9, rate=1, burst=3, reserve=1) == 0
    assert s.take_carrier_token(9, rate=1, burst=3, reserve=1) > 0  # bulk must leave one
    assert s.take_carrier_token(9, rate=1, burst=3) == 0  # interactive takes the last one


def test_lua_takes_for_as_many_messages_as_the_bucket_holds_in_order():
    s = store()
    taken, wait = s.take_carrier_tokens(5, rate=2, burst=5, costs=[1, 3, 2, 1])
    assert taken == 2  # 1 + 3 of 5; the third (2) does not fit, the fourth must not jump the queue
    assert 0.4 < wait <= 0.5  # (2 - 1) / 2 tokens per second


def test_lua_take_many_respects_the_reserve_and_takes_all_when_it_can():
    s = store()
    assert s.take_carrier_tokens(6, rate=1, burst=4, costs=[1, 1, 1, 1], reserve=1)[0] == 3
    assert s.take_carrier_tokens(7, rate=1, burst=4, costs=[1, 1]) == (2, 0)
    assert s.take_carrier_tokens(8, rate=0, burst=4, costs=[9, 9]) == (2, 0)  # no limit
