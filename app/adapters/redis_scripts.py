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

The bulk SMS API (:mod:`app.bulk`) has scripts of its own (all under "Bulk" below):
BULK_ADMIT (per-destination DND / opt-out / duplicate-window checks, the all-or-nothing
credit debit, an optional idempotency claim (the REST API's, the same key as ADMIT's), the
batch stored and one task pushed or the batch scheduled), FANOUT_CHUNK
(a worker pushes one chunk of per-destination task messages, resumable, never twice),
RELEASE_DUE (due schedules into their queue: ZRANGEBYSCORE + ZREM + LPUSH), CANCEL
(a scheduled batch withdrawn and refunded), REFUND (idempotent per message id) and
JOURNAL_TRIM. They compute some keys from the prefix inside Lua, so they need a
single Redis (not Redis Cluster), like the rest of the gateway.
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


# --- Bulk ---------------------------------------------------------------------------------

BULK_ADMIT_LUA = KICK_DRAIN_LUA + """
-- KEYS: 1 batch hash, 2 batch destinations, 3 credit, 4 opt-outs, 5 DND registry, 6 queue,
--       7 schedule index, 8 account's schedule index, 9 credit journal, 10 MT list,
--       11 drain flag [, 12 idempotency claim]
-- ARGV: 1 batch id, 2 mode direct|fanout|schedule, 3 due epoch, 4 duplicate-key prefix,
--       5 duplicate window s (0 = off), 6 what to push now (direct: the MT payload,
--       else a task), 7 task to push on release, 8 batch metadata (JSON), 9 account id,
--       10 prepaid 1|0, 11 check DND 1|0, 12 n, then n x (destination, message id,
--       price), then the drain task (direct), then the claim's ttl s (with KEYS[12])
-- Returns {outcome, codes}: outcome accepted|refused|again|duplicate, codes comma-separated
-- per destination in ARGV order (duplicate: the id that holds the claim instead).
-- A batch id seen before answers what it answered then.
local previous = redis.call('HGET', KEYS[1], 'results')
if previous then return {'again', previous} end
local n = tonumber(ARGV[12])
if #KEYS >= 12 then
  local holder = redis.call('GET', KEYS[12])
  if holder then return {'duplicate', holder} end
end
local codes, total, accepted = {}, 0, 0
for i = 1, n do
  local b = 12 + (i - 1) * 3
  local dest = ARGV[b + 1]
  local code = 1701
  if ARGV[11] == '1' and redis.call('SISMEMBER', KEYS[5], dest) == 1 then code = 1732
  elseif redis.call('SISMEMBER', KEYS[4], dest) == 1 then code = 1042
  elseif ARGV[5] ~= '0' and redis.call('EXISTS', ARGV[4] .. dest) == 1 then code = 1041 end
  codes[i] = code
  if code == 1701 then total = total + tonumber(ARGV[b + 3]); accepted = accepted + 1 end
end
if accepted > 0 and ARGV[10] == '1' and tonumber(redis.call('GET', KEYS[3]) or '0') < total then
  for i = 1, n do if codes[i] == 1701 then codes[i] = 1725 end end
  accepted = 0
end
local joined = table.concat(codes, ',')
if accepted == 0 then return {'refused', joined} end
if #KEYS >= 12 then redis.call('SET', KEYS[12], ARGV[1], 'EX', tonumber(ARGV[14 + n * 3])) end
if ARGV[10] == '1' and total > 0 then
  redis.call('DECRBY', KEYS[3], total)
  redis.call('RPUSH', KEYS[9], ARGV[9] .. '|' .. (-total) .. '|debit:' .. ARGV[1])
end
for i = 1, n do
  if codes[i] == 1701 then
    local b = 12 + (i - 1) * 3
    if ARGV[5] ~= '0' then redis.call('SET', ARGV[4] .. ARGV[b + 1], ARGV[1], 'EX', tonumber(ARGV[5])) end
    if ARGV[2] ~= 'direct' then
      redis.call('RPUSH', KEYS[2], ARGV[b + 1] .. '|' .. ARGV[b + 2] .. '|' .. ARGV[b + 3])
    end
  end
end
redis.call('HSET', KEYS[1], 'results', joined, 'meta', ARGV[8], 'account', ARGV[9], 'cost', total,
           'prepaid', ARGV[10], 'count', accepted, 'due', ARGV[3], 'dup', ARGV[4], 'queue', KEYS[6],
           'mode', ARGV[2])
if ARGV[2] == 'schedule' then
  redis.call('HSET', KEYS[1], 'state', 'scheduled', 'task', ARGV[7])
  redis.call('ZADD', KEYS[7], ARGV[3], ARGV[1])
  redis.call('ZADD', KEYS[8], ARGV[3], ARGV[1])
else
  redis.call('HSET', KEYS[1], 'state', 'released', 'released_at', ARGV[3])
  redis.call('EXPIRE', KEYS[1], 604800)
  if ARGV[2] ~= 'direct' then redis.call('EXPIRE', KEYS[2], 604800) end
end
if ARGV[2] == 'direct' then
  redis.call('LPUSH', KEYS[10], ARGV[6])
  kick_drain(KEYS[11], KEYS[6], ARGV[13 + n * 3])
else
  redis.call('LPUSH', KEYS[6], ARGV[6])
end
return {'accepted', joined}
"""

FANOUT_CHUNK_LUA = KICK_DRAIN_LUA + """
-- KEYS: batch hash, Celery queue, MT list, drain flag.
-- ARGV: expected cursor, new cursor, drain task, MT payloads...
-- Pushes the chunk only if the batch's cursor is where the caller read from; returns
-- -1 when pushed, else the cursor as it is (another delivery of the task got there).
local cursor = tonumber(redis.call('HGET', KEYS[1], 'cursor') or '0')
if cursor ~= tonumber(ARGV[1]) then return cursor end
for i = 4, #ARGV do redis.call('LPUSH', KEYS[3], ARGV[i]) end
kick_drain(KEYS[4], KEYS[2], ARGV[3])
redis.call('HSET', KEYS[1], 'cursor', ARGV[2])
return -1
"""

RELEASE_DUE_LUA = """
-- KEYS: schedule index. ARGV: now, limit, key prefix. Returns the batch ids released.
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[2]))
local released = {}
for _, id in ipairs(ids) do
  redis.call('ZREM', KEYS[1], id)
  local key = ARGV[3] .. 'batch:' .. id
  local f = redis.call('HMGET', key, 'state', 'task', 'queue', 'account')
  if f[1] == 'scheduled' and f[2] then
    redis.call('LPUSH', f[3], f[2])
    redis.call('HSET', key, 'state', 'released', 'released_at', ARGV[1])
    redis.call('ZREM', ARGV[3] .. 'schedule:account:' .. f[4], id)
    redis.call('EXPIRE', key, 604800)
    redis.call('EXPIRE', key .. ':dests', 604800)
    released[#released + 1] = id
  end
end
return released
"""

CANCEL_LUA = """
-- KEYS: batch hash, batch destinations, schedule index, credit journal
-- ARGV: account id ('' = operator: any account), batch id, key prefix
-- Returns {1, 'cancelled'}, or {0, the state that prevents it: released|cancelled|missing}.
local f = redis.call('HMGET', KEYS[1], 'state', 'account', 'cost', 'prepaid', 'dup')
if not f[1] or (ARGV[1] ~= '' and f[2] ~= ARGV[1]) then return {0, 'missing'} end
if f[1] ~= 'scheduled' then return {0, f[1]} end
redis.call('ZREM', KEYS[3], ARGV[2])
redis.call('ZREM', ARGV[3] .. 'schedule:account:' .. f[2], ARGV[2])
redis.call('HSET', KEYS[1], 'state', 'cancelled')
local cost = tonumber(f[3] or '0')
if f[4] == '1' and cost > 0 then
  redis.call('INCRBY', ARGV[3] .. 'credit:' .. f[2], cost)
  redis.call('RPUSH', KEYS[4], f[2] .. '|' .. cost .. '|cancel:' .. ARGV[2])
end
if f[5] and f[5] ~= '' then
  for _, entry in ipairs(redis.call('LRANGE', KEYS[2], 0, -1)) do
    local dest = string.match(entry, '^([^|]*)')
    if redis.call('GET', f[5] .. dest) == ARGV[2] then redis.call('DEL', f[5] .. dest) end
  end
end
redis.call('EXPIRE', KEYS[1], 604800)
redis.call('EXPIRE', KEYS[2], 604800)
return {1, 'cancelled'}
"""

REFUND_LUA = """
-- KEYS: credit, refund marker, credit journal. ARGV: amount, account id, message id, marker ttl
-- Credits the amount back once per message id; returns 1 if this call refunded.
if tonumber(ARGV[1]) <= 0 then return 0 end
if not redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[4])) then return 0 end
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('INCRBY', KEYS[1], ARGV[1]) end
redis.call('RPUSH', KEYS[3], ARGV[2] .. '|' .. ARGV[1] .. '|refund:' .. ARGV[3])
return 1
"""

JOURNAL_TRIM_LUA = """
-- KEYS: journal. ARGV: count, first entry read. Trims what was read, unless another
-- drainer already did (then the head differs).
if redis.call('LINDEX', KEYS[1], 0) == ARGV[2] then
  redis.call('LTRIM', KEYS[1], tonumber(ARGV[1]), -1)
  return 1
end
return 0
"""


class OutcomeUnknown(Exception):
    """Redis received a request and its answer was lost: it may or may not have run."""


class NotSent(Exception):
    """Redis could not be reached: the request certainly did not run."""


@dataclass(frozen=True)
class BulkAdmission:
    outcome: str  # accepted | refused | again | duplicate
    codes: tuple[int, ...]
    existing_id: str | None = None  # duplicate: who holds the claim


@dataclass(frozen=True)
class BulkCandidate:
    destination: str
    message_id: str
    price: int


class BulkStore:
    """Redis operations of the bulk API, the fan-out, the scheduler and credit."""

    def __init__(self, client: redis.Redis, key_prefix: str):
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self._admit = LuaScript(BULK_ADMIT_LUA)
        self._chunk = LuaScript(FANOUT_CHUNK_LUA)
        self._release = LuaScript(RELEASE_DUE_LUA)
        self._cancel = LuaScript(CANCEL_LUA)
        self._refund = LuaScript(REFUND_LUA)
        self._trim = LuaScript(JOURNAL_TRIM_LUA)

    def admit_batch(
        self,
        *,
        batch_id: str,
        mode: str,
        due: float,
        account_id: int,
        prepaid: bool,
        check_dnd: bool,
        duplicate_prefix: str,
        duplicate_window: int,
        queue: str,
        task_now: str,
        task_on_release: str,
        meta: str,
        candidates: list[BulkCandidate],
        drain: str = "",
        claim_key: str = "",
        claim_ttl_seconds: int = 0,
    ) -> BulkAdmission:
        """One EVALSHA. In ``direct`` mode ``task_now`` is the one MT payload, pushed onto
        the MT list with ``drain`` (:func:`app.adapters.stage_queue.drain_message`). With
        ``claim_key`` (an idempotency key) a key already claimed answers ``duplicate`` and
        an accepted batch claims it with its batch id. A lost
        answer is asked again once (the script answers a batch id it has seen with what
        it decided then); raises :class:`NotSent` when nothing
        ran and :class:`OutcomeUnknown` when the outcome cannot be learned."""
        keys = [
            self.keys.batch(batch_id), self.keys.batch_destinations(batch_id), self.keys.credit(account_id),
            self.keys.optouts(account_id), self.keys.dnd(), queue, self.keys.schedule(),
            self.keys.account_schedule(account_id), self.keys.credit_journal(), self.keys.stage_pending(queue),
            self.keys.drain_flag(queue),
        ]
        args: list = [batch_id, mode, repr(due), duplicate_prefix, duplicate_window, task_now, task_on_release,
                      meta, account_id, "1" if prepaid else "0", "1" if check_dnd else "0", len(candidates)]
        for candidate in candidates:
            args += [candidate.destination, candidate.message_id, candidate.price]
        args.append(drain)
        if claim_key:
            keys.append(claim_key)
            args.append(claim_ttl_seconds)
        try:
            reply = self._admit.call_once(self.client, keys, args)
        except OutcomeUnknown:
            try:
                reply = self._admit.call_once(self.client, keys, args)
            except NotSent as exc:
                raise OutcomeUnknown("no answer, and Redis unreachable for the follow-up") from exc
        outcome, detail = _text(reply[0]), _text(reply[1])
        if outcome == "duplicate":
            return BulkAdmission(outcome, (), existing_id=detail)
        return BulkAdmission(outcome, tuple(int(code) for code in detail.split(",")) if detail else ())

    def fanout_chunk(self, batch_id: str, queue: str, expected_cursor: int, items: list[str], drain: str,
                     entries: int | None = None) -> int:
        """Push one chunk of MT payloads (and ``drain``, a drain task message, if none is
        waiting), moving the cursor past ``entries`` destinations (default: one per
        item; more when some were set aside); -1 when pushed, else the batch's actual cursor."""
        keys = [self.keys.batch(batch_id), queue, self.keys.stage_pending(queue), self.keys.drain_flag(queue)]
        advance = len(items) if entries is None else entries
        return int(self._chunk(self.client, keys, [expected_cursor, expected_cursor + advance, drain, *items]))

    def release_due(self, now: float, limit: int = 1000) -> list[str]:
        released = self._release(self.client, [self.keys.schedule()], [repr(now), limit, self.keys.prefix])
        return [_text(b) for b in released]

    def cancel(self, batch_id: str, account_id: int | None = None) -> tuple[bool, str]:
        """(whether this call cancelled it, the batch's state: cancelled|released|missing)."""
        keys = [self.keys.batch(batch_id), self.keys.batch_destinations(batch_id), self.keys.schedule(),
                self.keys.credit_journal()]
        done, state = self._cancel(self.client, keys, ["" if account_id is None else str(account_id), batch_id,
                                                       self.keys.prefix])
        return bool(done), _text(state)

    def refund(self, account_id: int, amount: int, message_id: str, marker_ttl: int = 30 * 86400) -> bool:
        keys = [self.keys.credit(account_id), self.keys.refund_marker(message_id), self.keys.credit_journal()]
        return bool(self._refund(self.client, keys, [int(amount), account_id, message_id, marker_ttl]))

    def trim_journal(self, count: int, first: bytes) -> bool:
        return bool(self._trim(self.client, [self.keys.credit_journal()], [count, first]))


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
