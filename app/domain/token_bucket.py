"""Token-bucket arithmetic, the single definition both Redis scripts follow.

A bucket holds at most ``burst`` tokens and refills at ``rate`` tokens per second.
Taking ``cost`` tokens either succeeds now or tells how long until it would: the
ingress answers ``result_code=6`` at once, the egress retries with that countdown.
The Lua in :mod:`app.adapters.redis_scripts` implements exactly :func:`take`; the
tests check the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BucketState:
    tokens: float
    updated_at: float  # seconds


@dataclass(frozen=True)
class Take:
    allowed: bool
    state: BucketState
    wait_seconds: float


def take(
    state: BucketState | None, *, now: float, rate: float, burst: float, cost: float = 1.0, reserve: float = 0.0
) -> Take:
    """Refill ``state`` up to ``now`` and try to take ``cost`` tokens, leaving at least
    ``reserve`` tokens behind (how bulk traffic leaves room for interactive traffic).

    A missing state is a full bucket. Time running backwards (clock skew between
    hosts) refills nothing rather than draining the bucket.
    """
    if rate <= 0 or burst <= 0:
        raise ValueError("rate and burst must be positive")
    if state is None:
        state = BucketState(tokens=burst, updated_at=now)
    elapsed = max(0.0, now - state.updated_at)
    tokens = min(burst, state.tokens + elapsed * rate)
    if tokens - cost >= reserve:
        return Take(True, BucketState(tokens - cost, now), 0.0)
    return Take(False, BucketState(tokens, now), (cost + reserve - tokens) / rate)
