"""The callback endpoints' circuit breakers, shared by every callback worker through
Redis; the decisions are the pure ones of ``app.domain.circuit_breaker``.

Keys (``prefix`` is ``SMSAGG_REDIS_PREFIX``, the endpoint ``scheme://host:port``):

* ``{prefix}callbacks:breaker:{endpoint}``: a hash (``state``, ``failures``, ``until``);
  absent is closed, and a closed breaker with no failures is deleted, so a healthy
  endpoint costs one ``HGETALL`` per batch.
* ``{prefix}callbacks:parked:{endpoint}``: a sorted set of the callback ids parked there,
  scored by when each was first parked (its parked attempts are counted from then).
* ``{prefix}callbacks:breakers-open``: the endpoints not closed, for the probe kicker.

Every change is an optimistic transaction (``WATCH`` the breaker, decide, ``MULTI``) so
concurrent workers agree: one probe per interval, and a breaker that closes takes its
parked set in the same transaction, so a callback parked concurrently is either taken
with it or sees the breaker closed and is sent instead (never parked behind a closed
breaker).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Sequence

import redis

from app.domain.circuit_breaker import (
    CLOSED,
    Admission,
    Breaker,
    BreakerPolicy,
    admit,
    record,
)


class EndpointBreakers:
    def __init__(self, client: redis.Redis, policy: BreakerPolicy, *, prefix: str = "smsagg:",
                 clock: Callable[[], float] = time.time) -> None:
        self.client, self.policy, self.prefix, self.clock = client, policy, prefix, clock
        self.open_set = f"{prefix}callbacks:breakers-open"

    def _key(self, endpoint: str) -> str:
        return f"{self.prefix}callbacks:breaker:{endpoint}"

    def parked_key(self, endpoint: str) -> str:
        return f"{self.prefix}callbacks:parked:{endpoint}"

    def state(self, endpoint: str) -> Breaker:
        return _parse(self.client.hgetall(self._key(endpoint)))

    def admit(self, endpoint: str) -> tuple[Admission, bool]:
        """SEND (closed), PROBE (this caller sends the one probe) or PARK; and whether the
        breaker was closed with no failures (then `record` of a batch without failures
        has nothing to do)."""
        breaker = self.state(endpoint)
        if breaker.is_closed:  # the common case: one read, no transaction
            return Admission.SEND, breaker.failures == 0

        def decide(breaker: Breaker):
            admission, after = admit(breaker, self.clock(), self.policy)
            return admission, after, ()

        return self._change(endpoint, decide), False

    def record(self, endpoint: str, *, successes: int, failures: int, probe: bool) -> list[tuple[str, float]]:
        """Note a batch's answers. If that closes a breaker that was not closed, returns
        its parked callbacks (id, parked at), taken off the parked set: release them."""

        def decide(breaker: Breaker):
            after = record(breaker, successes=successes, failures=failures, probe=probe, now=self.clock(),
                           policy=self.policy)
            released = not breaker.is_closed and after.is_closed
            return released, after, ((self.parked_key(endpoint),) if released else ())

        released, taken = self._change(endpoint, decide, with_parked=True)
        if not released:
            return []
        return [(_text(member), float(score)) for member, score in taken]

    def park(self, endpoint: str, callback_ids: Collection[str]) -> bool:
        """Add these to the endpoint's parked set (keeping an earlier parked time), unless
        the breaker is closed by now: then False, and the caller sends them."""
        if not callback_ids:
            return True
        key = self._key(endpoint)
        now = self.clock()
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    if _parse(pipe.hgetall(key)).is_closed:
                        pipe.reset()
                        return False
                    pipe.multi()
                    pipe.zadd(self.parked_key(endpoint), {i: now for i in callback_ids}, nx=True)
                    pipe.execute()
                    return True
                except redis.WatchError:
                    continue

    def parked_since(self, endpoint: str, callback_ids: Sequence[str]) -> list[float | None]:
        """When each was first parked (None: not parked)."""
        if not callback_ids:
            return []
        return [None if score is None else float(score)
                for score in self.client.zmscore(self.parked_key(endpoint), list(callback_ids))]

    def unpark(self, endpoint: str, callback_ids: Collection[str]) -> None:
        """Forget these (sent anyway: their last attempt)."""
        if callback_ids:
            self.client.zrem(self.parked_key(endpoint), *callback_ids)

    def open_endpoints(self) -> list[str]:
        return sorted(_text(member) for member in self.client.smembers(self.open_set))

    def take_for_probe(self, endpoint: str) -> tuple[str, float] | None:
        """One parked callback of an endpoint whose probe is due, to be sent as the probe
        (nothing else arrives to carry it); None if none is due or none is parked. An
        endpoint with a closed breaker leaves the open set here."""
        breaker = self.state(endpoint)
        if breaker.is_closed:
            self.client.srem(self.open_set, endpoint)
            return None
        if self.clock() < breaker.until:
            return None
        popped = self.client.zpopmin(self.parked_key(endpoint), 1)
        return (_text(popped[0][0]), float(popped[0][1])) if popped else None

    def _change(self, endpoint: str, decide, *, with_parked: bool = False):
        """``decide(breaker) -> (answer, new breaker, sets to take)`` under WATCH;
        writes the new breaker (and takes the sets) in one transaction if it changed."""
        key = self._key(endpoint)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(key)
                    before = _parse(pipe.hgetall(key))
                    answer, after, take = decide(before)
                    if after == before:
                        pipe.reset()
                        return (answer, []) if with_parked else answer
                    pipe.multi()
                    self._write(pipe, endpoint, key, after)
                    for taken in take:
                        pipe.zrange(taken, 0, -1, withscores=True)
                        pipe.delete(taken)
                    results = pipe.execute()
                    taken_members = results[-2] if take else []
                    return (answer, taken_members) if with_parked else answer
                except redis.WatchError:
                    continue

    def _write(self, pipe, endpoint: str, key: str, breaker: Breaker) -> None:
        if breaker.is_closed and breaker.failures == 0:
            pipe.delete(key)
        else:
            pipe.hset(key, mapping={"state": breaker.state, "failures": breaker.failures, "until": breaker.until})
        if breaker.is_closed:
            pipe.srem(self.open_set, endpoint)
        else:
            pipe.sadd(self.open_set, endpoint)


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _parse(raw: dict) -> Breaker:
    if not raw:
        return Breaker()
    fields = {_text(k): _text(v) for k, v in raw.items()}
    return Breaker(fields.get("state", CLOSED), int(fields.get("failures", 0)), float(fields.get("until", 0.0)))
