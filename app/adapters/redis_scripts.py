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

With the compliance keys given (``optouts``, ``credit``, ``journal``), ADMIT also refuses
a destination that opted out of the account and, for a prepaid account, a message its
balance does not cover; an accepted prepaid message is debited in the same step.

The bulk SMS API's own scripts (batches, fan-out, schedules, cancellation, refunds) are
in :mod:`app.bulk.store`; they share these keys and :class:`LuaScript`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

_BUCKET_LUA = """
local function refill(key, rate, burst)
  local t = redis.call('TIME')
  local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
  local saved = redis.call('HMGET', key, 'tokens', 'at')
  local tokens = tonumber(saved[1])
  local at = tonumber(saved[2])
  if tokens == nil or at == nil then tokens = burst; at = now end
  local elapsed = now - at
  if elapsed < 0 then elapsed = 0 end
  return math.min(burst, tokens + elapsed * rate), now
end

local function save(key, rate, burst, tokens, now)
  redis.call('HSET', key, 'tokens', tostring(tokens), 'at', tostring(now))
  redis.call('PEXPIRE', key, math.ceil(burst / rate * 1000) + 1000)
end

local function wait_ms(tokens, cost, reserve, rate)
  return math.max(1, math.ceil((cost + reserve - tokens) / rate * 1000))
end

local function take_token(key, rate, burst, cost, reserve)
  if rate <= 0 then return 0 end
  local tokens, now = refill(key, rate, burst)
  if tokens - cost < reserve then return wait_ms(tokens, cost, reserve, rate) end
  save(key, rate, burst, tokens - cost, now)
  return 0
end
"""

KICK_DRAIN_LUA = """
local function kick_drain(flag, queue, drain)
  -- A drain task onto the priority's Celery queue, unless one is already waiting: the
  -- flag is set here and cleared by the drain's CLAIM, both atomic, so a message
  -- pushed is always followed by a drain that sees it.
  -- The flag lapses after 10 s: a drain message lost with a killed worker holds nothing up longer.
  if redis.call('SET', flag, '1', 'NX', 'EX', 10) then redis.call('LPUSH', queue, drain) end
end
"""

ADMIT_LUA = _BUCKET_LUA + KICK_DRAIN_LUA + """
-- KEYS: idempotency key, bucket key, Celery queue, MT list, drain flag
--       [, opt-out set, credit key, credit journal]
-- ARGV: message id ('' = no claim), claim ttl s, rate, burst, cost, MT payload, drain task
--       [, destination, price (credit units), prepaid '1'/'0', account id, message id]
if ARGV[1] ~= '' then
  local existing = redis.call('GET', KEYS[1])
  if existing then return {7, existing} end
end
local price = 0
if #KEYS >= 8 then
  if redis.call('SISMEMBER', KEYS[6], ARGV[8]) == 1 then return {1042, ''} end
  if ARGV[10] == '1' then
    price = tonumber(ARGV[9])
    if tonumber(redis.call('GET', KEYS[7]) or '0') < price then return {1725, ''} end
  end
end
local wait_ms = take_token(KEYS[2], tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5]), 0)
if wait_ms > 0 then return {6, tostring(wait_ms)} end
if ARGV[1] ~= '' then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', tonumber(ARGV[2]))
end
if price > 0 then
  redis.call('DECRBY', KEYS[7], price)
  redis.call('RPUSH', KEYS[8], ARGV[11] .. '|' .. (-price) .. '|debit:' .. ARGV[12])
end
redis.call('LPUSH', KEYS[4], ARGV[6])
kick_drain(KEYS[5], KEYS[3], ARGV[7])
return {0, ''}
"""

TAKE_MANY_LUA = _BUCKET_LUA + """
-- KEYS: bucket key; ARGV: rate, burst, reserve, then one cost per message.
-- Takes for as many messages, in order, as the bucket holds above the reserve.
-- Returns {messages taken, wait in ms before the next one could be (0 = all taken)}.
local rate, burst, reserve = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local count = #ARGV - 3
if rate <= 0 then return {count, 0} end
local tokens, now = refill(KEYS[1], rate, burst)
local taken = 0
while taken < count and tokens - tonumber(ARGV[4 + taken]) >= reserve do
  tokens = tokens - tonumber(ARGV[4 + taken])
  taken = taken + 1
end
if taken > 0 then save(KEYS[1], rate, burst, tokens, now) end
if taken == count then return {taken, 0} end
return {taken, wait_ms(tokens, tonumber(ARGV[4 + taken]), reserve, rate)}
"""

class Admission(enum.IntEnum):
    QUEUED = 0
    THROTTLED = 6
    DUPLICATE = 7
    OPTED_OUT = 1042
    INSUFFICIENT_CREDIT = 1725


@dataclass(frozen=True)
class AdmitResult:
    outcome: Admission
    wait_seconds: float = 0.0
    existing_message_id: str | None = None


class LuaScript:
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

    def call_once(self, client: redis.Redis, keys: list[str], args: list) -> object:
        """EVALSHA on one pooled connection, without redis-py's retries, telling apart
        a request that never left (:class:`NotSent`) from one whose answer was lost
        (:class:`OutcomeUnknown`)."""
        pool = client.connection_pool
        try:
            if self.sha is None:
                self.sha = client.script_load(self.source)
            connection = pool.get_connection()
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise NotSent(str(exc)) from exc
        try:
            for attempt in range(2):
                try:
                    connection.send_command("EVALSHA", self.sha, len(keys), *keys, *args)
                except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                    connection.disconnect()
                    raise NotSent(str(exc)) from exc
                try:
                    return connection.read_response()
                except redis.exceptions.NoScriptError:
                    if attempt:
                        raise
                    self.sha = client.script_load(self.source)
                except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                    connection.disconnect()
                    raise OutcomeUnknown(str(exc)) from exc
            raise AssertionError("unreachable")
        finally:
            pool.release(connection)


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

    # Stages drained in batches (app.adapters.stage_queue): the items waiting per queue,
    # the "a drain task is waiting" flag, and the batches drain tasks hold.
    def stage_pending(self, queue: str) -> str:
        return f"{self.prefix}stage:{queue}"

    def drain_flag(self, queue: str) -> str:
        return f"{self.prefix}stage:{queue}:drain"

    def stage_inflight(self, queue: str, task_id: str) -> str:
        return f"{self.prefix}stage:{queue}:inflight:{task_id}"

    def stage_of_inflight(self, inflight_key: str) -> str:
        """The queue an inflight key (:meth:`stage_inflight`) belongs to."""
        return inflight_key.removeprefix(f"{self.prefix}stage:").split(":inflight:", 1)[0]

    def stage_inflight_index(self) -> str:
        """Every claim's inflight list, scored by its lease deadline (Redis time)."""
        return f"{self.prefix}stage:inflight"

    def stage_claimed_at(self) -> str:
        return f"{self.prefix}stage:claimed"

    def stage_later(self, queue: str) -> str:
        return f"{self.prefix}stage:{queue}:later"

    def stage_dead(self, queue: str) -> str:
        return f"{self.prefix}stage:{queue}:dead"

    def stage_sweep_lock(self) -> str:
        return f"{self.prefix}stage:sweeping"

    def segment_acks(self, message_id: str) -> str:
        """SMSC ids of a message's acknowledged segments, kept until recorded (delivery)."""
        return f"{self.prefix}acked:{message_id}"

    # Bulk API, credit and compliance (app.bulk). Lua builds batch:/schedule:account:/
    # credit: keys from the prefix with exactly these shapes.
    def batch(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}"

    def batch_destinations(self, batch_id: str) -> str:
        return f"{self.prefix}batch:{batch_id}:dests"

    def credit(self, account_id: int) -> str:
        return f"{self.prefix}credit:{account_id}"

    def credit_journal(self) -> str:
        return f"{self.prefix}credit:journal"

    def refund_marker(self, message_id: str) -> str:
        return f"{self.prefix}refund:{message_id}"

    def optouts(self, account_id: int) -> str:
        return f"{self.prefix}optout:{account_id}"

    def dnd(self) -> str:
        return f"{self.prefix}dnd"

    def duplicate_prefix(self, account_id: int, text_digest: str) -> str:
        return f"{self.prefix}dup:{account_id}:{text_digest}:"

    def schedule(self) -> str:
        return f"{self.prefix}schedule"

    def account_schedule(self, account_id: int | str) -> str:
        return f"{self.prefix}schedule:account:{account_id}"

    # Heartbeats of the running parts (app.adapters.heartbeats): one key per process,
    # with a TTL, and the index of those keys.
    def part(self, part: str, host: str, pid: int) -> str:
        return f"{self.prefix}parts:{part}:{host}:{pid}"

    def parts_index(self) -> str:
        return f"{self.prefix}parts"

    def metrics(self) -> str:
        """Every process's counters, merged (app.adapters.metrics): a hash."""
        return f"{self.prefix}metrics"


class RedisStore:
    """The Redis operations of the ingress and the workers."""

    def __init__(self, client: redis.Redis, key_prefix: str):
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self._admit = LuaScript(ADMIT_LUA)
        self._take = LuaScript(TAKE_MANY_LUA)

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
        item: str,
        drain: str,
        phone_number: str | None = None,
        price: int = 0,
        prepaid: bool = False,
    ) -> AdmitResult:
        """Admit one MT: ``item`` (the accepted payload, JSON) goes onto the MT list of
        ``queue`` and ``drain`` (a drain task message, :mod:`app.adapters.stage_queue`)
        onto the Celery queue if none is waiting. With ``phone_number`` the account's
        opt-outs are checked and, for a ``prepaid`` account, ``price`` credit units are
        debited (or 1725)."""
        claim_key = self.keys.idempotency(account_id, client_message_id) if client_message_id else ""
        rate_value = rate or 0
        burst_value = burst or max(1, int(rate_value))
        keys = [claim_key, self.keys.account_bucket(account_id), queue, self.keys.stage_pending(queue),
                self.keys.drain_flag(queue)]
        args = [message_id if client_message_id else "", claim_ttl_seconds, rate_value, burst_value, 1, item, drain]
        if phone_number is not None:
            keys += [self.keys.optouts(account_id), self.keys.credit(account_id), self.keys.credit_journal()]
            args += [phone_number, price, "1" if prepaid else "0", account_id, message_id]
        code, detail = self._admit(self.client, keys, args)
        outcome = Admission(int(code))
        if outcome is Admission.THROTTLED:
            return AdmitResult(outcome, wait_seconds=int(detail) / 1000)
        if outcome is Admission.DUPLICATE:
            return AdmitResult(outcome, existing_message_id=_text(detail))
        return AdmitResult(outcome)

    def take_carrier_tokens(self, carrier_id: int, rate: float, burst: float, costs: list[int],
                            reserve: float = 0) -> tuple[int, float]:
        """Tokens for as many of ``costs`` (one per message, in order) as the carrier's
        bucket holds: (how many messages may go now, seconds before the next could).

        ``reserve`` tokens must stay in the bucket after the take: bulk traffic passes
        a reserve, interactive traffic none, so a bulk backlog can never use up a
        carrier's capacity that an interactive message needs.
        """
        taken, wait_ms = self._take(self.client, [self.keys.carrier_bucket(carrier_id)],
                                    [rate, burst, reserve, *costs])
        return int(taken), int(wait_ms) / 1000

    def take_carrier_token(self, carrier_id: int, rate: float, burst: float, cost: int = 1, reserve: float = 0) -> float:
        """Seconds to wait before this carrier may take ``cost`` more (0 = taken)."""
        return self.take_carrier_tokens(carrier_id, rate, burst, [cost], reserve)[1]

    def remember_acks(self, acks: dict[tuple[str, int], str], ttl_seconds: int = 3600) -> None:
        """Keep ``(message id, seq) -> SMSC id`` for acknowledged segments, one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for (message_id, seq), smsc_id in acks.items():
            pipe.hset(self.keys.segment_acks(message_id), str(seq), smsc_id)
        for message_id in {message_id for message_id, _ in acks}:
            pipe.expire(self.keys.segment_acks(message_id), ttl_seconds)
        pipe.execute()

    def remembered_acks(self, message_ids: list[str]) -> dict[str, dict[int, str]]:
        """The acknowledged segments kept for these messages: ``{message id: {seq: SMSC id}}``."""
        pipe = self.client.pipeline(transaction=False)
        for message_id in message_ids:
            pipe.hgetall(self.keys.segment_acks(message_id))
        return {message_id: {int(seq): _text(smsc_id) for seq, smsc_id in acked.items()}
                for message_id, acked in zip(message_ids, pipe.execute(), strict=True) if acked}

    def forget_acks(self, message_ids: list[str]) -> None:
        if message_ids:
            self.client.delete(*(self.keys.segment_acks(message_id) for message_id in message_ids))

    def ping(self) -> bool:
        return bool(self.client.ping())


class OutcomeUnknown(Exception):
    """Redis received a request and its answer was lost: it may or may not have run."""


class NotSent(Exception):
    """Redis could not be reached: the request certainly did not run."""


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def connect(redis_url: str, *, retries: int = 1) -> redis.Redis:
    """A client with short timeouts and at most ``retries`` immediate retries of a
    command whose connection failed (a pooled connection Redis closed when it
    restarted), never redis-py's default backoff of several seconds: an unreachable Redis
    must fail a request fast (``result_code=98``; the ingress passes ``retries=0``, so
    nothing it sends is ever sent twice), and a task fast (it is retried as a whole)."""
    return redis.Redis.from_url(
        redis_url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30,
        retry=Retry(NoBackoff(), retries),
    )
