"""The gateway's Redis boundary: atomic Lua scripts and the keys they touch.

Redis round trips are the ingress's cost unit (DESIGN.md), so admitting an MT is one
``EVALSHA`` that, atomically:

1. refuses a ``message_id`` this account already had accepted (``result_code=7``),
2. takes a token from the account's bucket, or refuses with the wait (``6``),
3. claims the ``message_id`` (``SET NX`` with a long TTL),
4. ``LPUSH``-es the Celery task message onto its priority queue.

A refusal leaves nothing behind: no claim, no token spent, nothing queued. The token
bucket follows :func:`app.domain.token_bucket.take` exactly, timed by Redis's own
clock so every ingress and worker host shares one notion of "now".
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis

_BUCKET_LUA = """
local function take_token(key, rate, burst, cost, reserve)
  if rate <= 0 then return 0 end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(saved[1])
  local at = tonumber(saved[2])
  if tokens == nil or at == nil then tokens = burst; at = now end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  tokens = math.min(burst, tokens + elapsed * rate)
  if tokens - cost < reserve then
    return math.max(1, math.ceil((cost + reserve - tokens) / rate * 1000))
  end
  redis.call('HSET', key, 'tokens', tostring(tokens - cost), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
  return 0
end
"""

ADMIT_LUA = _BUCKET_LUA + """
-- KEYS: idempotency key, bucket key, queue key
-- ARGV: message id ('' = no claim), claim ttl s, rate, burst, cost, task message
if ARGV[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {7, existing} end
end
local wait_ms = take_token(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), 0)
if wait_ms > 0 then return {6, tostring(wait_ms)} end
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
end
redis.call('LPUSH', KEYS[3], ARGV[6])
return {0, ''}
"""

TAKE_LUA = _BUCKET_LUA + """
-- KEYS: bucket key; ARGV: rate, burst, cost, reserve. Returns the wait in ms (0 = taken).
return take_token(KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4]))
"""


class Admission(enum.IntEnum):
    QUEUED = 0
    THROTTLED = 6
    DUPLICATE = 7


@dataclass(frozen=True)
class AdmitResult:
    outcome: Admission
    wait_seconds: float = 0.0
    existing_message_id: str | None = None


class _Script:
    """A Lua script called with ``EVALSHA``, loaded again if Redis lost it."""

    def __init__(self, source: str):
        self.source = source
        self.sha: str | None = None

    def __call__(self, client: redis.Redis, keys: list[str], args: list) -> object:
        if self.sha is None:
            self.sha = client.script_load(self.source)
        try:
            return client.evalsha(self.sha, len(keys), *keys, *args)
        except redis.exceptions.NoScriptError:
            self.sha = client.script_load(self.source)
            return client.evalsha(self.sha, len(keys), *keys, *args)


class RedisKeys:
    """Every key name the gateway uses, derived from one prefix."""

    def __init__(self, prefix: str):
        self.prefix = prefix

    def idempotency(self, account_id: int, client_message_id: str) -> str:
        return f"{self.prefix}idem:{account_id}:{client_message_id}"

    def account_bucket(self, account_id: int) -> str:
        return f"{self.prefix}bucket:account:{account_id}"

    def carrier_bucket(self, carrier_id: int) -> str:
        return f"{self.prefix}bucket:carrier:{carrier_id}"


class RedisStore:
    """The Redis operations of the ingress and the workers."""

    def __init__(self, client: redis.Redis, key_prefix: str):
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self._admit = _Script(ADMIT_LUA)
        self._take = _Script(TAKE_LUA)

    def admit(
        self,
        *,
        account_id: int,
        client_message_id: str | None,
        message_id: str,
        claim_ttl_seconds: int,
        rate: float | None,
        burst: int | None,
        queue: str,
        task_message: str,
    ) -> AdmitResult:
        claim_key = self.keys.idempotency(account_id, client_message_id) if client_message_id else ""
        rate_value = rate or 0
        burst_value = burst or max(1, int(rate_value))
        code, detail = self._admit(
            self.client,
            [claim_key, self.keys.account_bucket(account_id), queue],
            [message_id if client_message_id else "", claim_ttl_seconds, rate_value, burst_value, 1, task_message],
        )
        outcome = Admission(int(code))
        if outcome is Admission.THROTTLED:
            return AdmitResult(outcome, wait_seconds=int(detail) / 1000)
        if outcome is Admission.DUPLICATE:
            return AdmitResult(outcome, existing_message_id=_text(detail))
        return AdmitResult(outcome)

    def take_carrier_token(self, carrier_id: int, rate: float, burst: float, cost: int = 1, reserve: float = 0) -> float:
        """Seconds to wait before this carrier may take ``cost`` more messages (0 = go).

        ``reserve`` tokens must stay in the bucket after the take: bulk traffic passes
        a reserve, interactive traffic none, so a bulk backlog can never use up a
        carrier's capacity that an interactive message needs.
        """
        wait_ms = self._take(self.client, [self.keys.carrier_bucket(carrier_id)], [rate, burst, cost, reserve])
        return int(wait_ms) / 1000

    def ping(self) -> bool:
        return bool(self.client.ping())


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(redis_url: str) -> redis.Redis:
    """A client with short timeouts: an unreachable Redis must fail a request fast
    (``result_code=98``), not hang it."""
    return redis.Redis.from_url(
        redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
    )
