"""The bulk SMS API's Redis boundary: its atomic Lua scripts and the store that runs them.

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

from dataclasses import dataclass

import redis

from app.adapters.redis_scripts import KICK_DRAIN_LUA, LuaScript, NotSent, OutcomeUnknown, RedisKeys

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
