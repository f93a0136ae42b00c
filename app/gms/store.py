"""The mobile services' Redis boundary: services, access-number reservations,
storage, chats and CometD clients, all under ``key_prefix + "gms:"`` with TTLs.

Reservations are the part that must hold under concurrency. A number is taken by
ONE Lua script (:data:`RESERVE_LUA`) that, atomically and timed by Redis's own
clock (``TIME``):

1. drops reservations whose expiry score has passed (a bounded batch),
2. checks the target service is still alive (``request-access``) or creates it
   (``request-interaction``, so a refused request leaves no service behind),
3. walks the group's numbers (a CSPRNG shuffle for ``random``; from a shared
   ``INCR`` counter for ``round-robin``) and takes the first whose reservation
   score is not in the future,
4. picks the first candidate access code no live reservation of that number uses,
5. records ``number -> reservation`` (hash) and ``number -> expiry ms`` (sorted
   set), capped at the service's own remaining TTL.

Expiry therefore needs no sweeper: a reservation whose score is past is free to
every later script, whether or not it was purged yet. Reservations are keyed by
number across all groups, so a number listed in two groups is still never handed
to two live services. Releasing (match, delete) is a compare-and-delete script.

Layout (``P`` = ``key_prefix + "gms:"``)::

    P svc:<id>              hash   service instance                      TTL = service ttl
    P data:<id>             hash   storage: o=owner, v:/t:/f:<key>       TTL = storage ttl
    P rsv                   hash   number -> reservation JSON
    P rsv:exp               zset   number -> expiry (ms, Redis clock)
    P rr:<group>            string round-robin counter
    P chat:<id>             hash   chat state of service <id>            TTL = chat ttl (sliding)
    P chat:<id>:log         list   transcript entries (JSON)             same TTL
    P chats:waiting/active  zset   service id -> started/accepted ms
    P cometd:<cid>          hash   CometD client (app, user, subs)       TTL = session timeout
    P cometd:<cid>:q        list   messages waiting for /meta/connect    same TTL
    P cometd:user:<a>:<u>   set    CometD client ids of (app, gms_user)  same TTL
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from app.adapters.redis_scripts import LuaScript
from app.gms.domain import Reservation

# A CometD client that stops polling keeps at most this many undelivered messages.
MAX_QUEUED = 1000

_NOW = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""

_PURGE = """
local dead = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, 100)
for _, n in ipairs(dead) do
  redis.call('HDEL', KEYS[1], n)
  redis.call('ZREM', KEYS[2], n)
end
"""

RESERVE_LUA = _NOW + _PURGE + """
-- KEYS: rsv hash, rsv expiry zset, round-robin counter, service hash
-- ARGV: strategy (rr|ordered), booking ms, mode (create|attach), service ttl s,
--       service fields JSON, reservation meta JSON, ncodes, codes..., numbers...
local strategy, booking, mode = ARGV[1], tonumber(ARGV[2]), ARGV[3]
local meta = cjson.decode(ARGV[6])
local ncodes = tonumber(ARGV[7])
local first_number = 8 + ncodes
local nnum = #ARGV - first_number + 1
if nnum < 1 then return {-2} end
if mode == 'attach' and redis.call('EXISTS', KEYS[4]) == 0 then return {-1} end

local function holder(num)
  local p = redis.call('HGET', KEYS[1], num)
  if not p then return nil end
  return cjson.decode(p)
end

local start = 0
if strategy == 'rr' then start = (redis.call('INCR', KEYS[3]) - 1) % nnum end
local chosen, earliest
for i = 0, nnum - 1 do
  local num = ARGV[first_number + ((start + i) % nnum)]
  local score = redis.call('ZSCORE', KEYS[2], num)
  if (not score) or tonumber(score) <= now then chosen = num break end
  local h = holder(num)
  if h and h['service'] == meta['service'] then chosen = num break end
  if (not earliest) or tonumber(score) < earliest then earliest = tonumber(score) end
end
if not chosen then return {0, tostring(earliest - now)} end

local code = ''
if ncodes > 0 then
  local current = holder(chosen)
  local live_code = ''
  if current and current['service'] ~= meta['service'] then
    local s = redis.call('ZSCORE', KEYS[2], chosen)
    if s and tonumber(s) > now then live_code = current['code'] or '' end
  end
  for i = 8, 7 + ncodes do
    if ARGV[i] ~= live_code then code = ARGV[i] break end
  end
  if code == '' then return {-3} end
end

if mode == 'create' then
  local fields = cjson.decode(ARGV[5])
  for k, v in pairs(fields) do redis.call('HSET', KEYS[4], k, v) end
  redis.call('EXPIRE', KEYS[4], tonumber(ARGV[4]))
end
local remaining = redis.call('PTTL', KEYS[4])
if remaining > 0 and remaining < booking then booking = remaining end

-- a service holds one access number: give back the one it had before, if another
local previous = redis.call('HGET', KEYS[4], 'access_number')
if previous and previous ~= '' and previous ~= chosen then
  local h = holder(previous)
  if h and h['service'] == meta['service'] then
    redis.call('HDEL', KEYS[1], previous)
    redis.call('ZREM', KEYS[2], previous)
  end
end

local expires = now + booking
meta['code'] = code
meta['expires'] = expires
redis.call('HSET', KEYS[1], chosen, cjson.encode(meta))
redis.call('ZADD', KEYS[2], expires, chosen)
redis.call('HSET', KEYS[4], 'access_number', chosen, 'access_code', code,
           'access_expires', tostring(expires), 'resource_group', meta['group'])
return {1, chosen, code, tostring(booking)}
"""

RELEASE_LUA = _NOW + """
-- KEYS: rsv hash, rsv expiry zset, service hash
-- ARGV: number, the exact reservation JSON read before, require_live (1|0)
local current = redis.call('HGET', KEYS[1], ARGV[1])
if current ~= ARGV[2] then return 0 end
local score = redis.call('ZSCORE', KEYS[2], ARGV[1])
local live = score and tonumber(score) > now
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
if redis.call('HGET', KEYS[3], 'access_number') == ARGV[1] then
  redis.call('HDEL', KEYS[3], 'access_number', 'access_code', 'access_expires')
end
if ARGV[3] == '1' and not live then return 0 end
return 1
"""

STORAGE_UPDATE_LUA = """
-- KEYS: data hash; ARGV: owner app, ttl s, field, value, field, value ...
if redis.call('HGET', KEYS[1], 'o') ~= ARGV[1] then return 0 end
for i = 3, #ARGV, 2 do redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
redis.call('EXPIRE', KEYS[1], tonumber(ARGV[2]))
return 1
"""

CHAT_ACCEPT_LUA = _NOW + """
-- KEYS: chat hash, waiting zset, active zset; ARGV: service id, agent, agent nickname
if redis.call('HGET', KEYS[1], 'state') ~= 'CONNECTED' then return -1 end
local agent = redis.call('HGET', KEYS[1], 'agent')
if agent and agent ~= '' then return 0 end
redis.call('HSET', KEYS[1], 'agent', ARGV[2], 'agent_nickname', ARGV[3])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZADD', KEYS[3], now, ARGV[1])
return 1
"""

CHAT_END_LUA = """
-- KEYS: chat hash, waiting zset, active zset; ARGV: service id. 1 = this call ended it.
if redis.call('HGET', KEYS[1], 'state') ~= 'CONNECTED' then return 0 end
redis.call('HSET', KEYS[1], 'state', 'DISCONNECTED')
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[1])
return 1
"""


@dataclass(frozen=True)
class Reserved:
    number: str
    code: str | None
    seconds: int


@dataclass(frozen=True)
class Exhausted:
    retry_after_ms: int


@dataclass(frozen=True)
class CodesExhausted:
    """Every candidate access code is in use on the number chosen."""


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _texts(mapping: dict) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in mapping.items()}


class GmsStore:
    """Redis operations of the mobile services (one instance per process)."""

    def __init__(self, client: redis.Redis, key_prefix: str):
        self.client = client
        self.p = f"{key_prefix}gms:"
        self._reserve = LuaScript(RESERVE_LUA)
        self._release = LuaScript(RELEASE_LUA)
        self._storage_update = LuaScript(STORAGE_UPDATE_LUA)
        self._chat_accept = LuaScript(CHAT_ACCEPT_LUA)
        self._chat_end = LuaScript(CHAT_END_LUA)

    # --- keys ---
    def service_key(self, service_id: str) -> str:
        return f"{self.p}svc:{service_id}"

    def data_key(self, data_id: str) -> str:
        return f"{self.p}data:{data_id}"

    @property
    def rsv_key(self) -> str:
        return f"{self.p}rsv"

    @property
    def rsv_exp_key(self) -> str:
        return f"{self.p}rsv:exp"

    # --- services ---
    def create_service(self, service_id: str, fields: dict[str, str], ttl: int) -> None:
        key = self.service_key(service_id)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl)
            pipe.execute()

    def get_service(self, service_id: str) -> tuple[dict[str, str], int] | None:
        """The service's fields and its remaining TTL in ms, or ``None`` if gone."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hgetall(self.service_key(service_id))
            pipe.pttl(self.service_key(service_id))
            fields, pttl = pipe.execute()
        if not fields:
            return None
        return _texts(fields), int(pttl)

    def touch_service(self, service_id: str, ttl: int) -> None:
        """Extend a service and its data to live at least ``ttl`` more seconds, never
        shortening a longer TTL (no ``EXPIRE ... GT``: the embedded Redis is 6.2)."""
        key = self.service_key(service_id)
        with self.client.pipeline(transaction=False) as pipe:
            pipe.ttl(key)
            pipe.hget(key, "data_id")
            remaining, data_id = pipe.execute()
        if remaining < 0 or remaining >= ttl:
            return
        with self.client.pipeline(transaction=False) as pipe:
            pipe.expire(key, ttl)
            if data_id:
                pipe.expire(self.data_key(_text(data_id)), ttl)
            pipe.execute()

    def delete_service(self, service_id: str) -> None:
        self.client.delete(self.service_key(service_id))

    # --- reservations ---
    def reserve(
        self,
        *,
        service_id: str,
        create_fields: dict[str, str] | None,
        service_ttl: int,
        app: str,
        group: str,
        phone: str | None,
        numbers: list[str],
        round_robin: bool,
        booking_seconds: int,
        codes: list[str],
    ) -> Reserved | Exhausted | CodesExhausted | None:
        """Take a number of ``group`` for ``service_id``. ``create_fields`` set: create
        the service in the same script; unset: the service must exist (``None`` back
        if it does not). ``codes`` are candidates; empty = no access code."""
        meta = {"service": service_id, "app": app, "group": group, "phone": phone or ""}
        result = self._reserve(
            self.client,
            [self.rsv_key, self.rsv_exp_key, f"{self.p}rr:{group}", self.service_key(service_id)],
            [
                "rr" if round_robin else "ordered",
                booking_seconds * 1000,
                "create" if create_fields is not None else "attach",
                service_ttl,
                json.dumps(create_fields or {}),
                json.dumps(meta),
                len(codes),
                *codes,
                *numbers,
            ],
        )
        status = int(result[0])
        if status == 1:
            code = _text(result[2]) or None
            return Reserved(_text(result[1]), code, max(1, round(int(result[3]) / 1000)))
        if status == 0:
            return Exhausted(int(result[1]))
        if status == -1:
            return None
        if status == -3:
            return CodesExhausted()
        raise ValueError("reserve called with no numbers")

    def reservation(self, number: str) -> tuple[Reservation, str] | None:
        """The reservation of ``number`` (and its raw JSON, for compare-and-release)
        if it is live by Redis's clock."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hget(self.rsv_key, number)
            pipe.zscore(self.rsv_exp_key, number)
            pipe.time()
            raw, score, (secs, micros) = pipe.execute()
        if raw is None or score is None or score <= secs * 1000 + micros // 1000:
            return None
        text = _text(raw)
        return Reservation.from_json(number, json.loads(text)), text

    def release(self, service_id: str, number: str, raw: str, *, require_live: bool) -> bool:
        return bool(
            self._release(
                self.client,
                [self.rsv_key, self.rsv_exp_key, self.service_key(service_id)],
                [number, raw, "1" if require_live else "0"],
            )
        )

    def reservations(self, numbers: list[str]) -> dict[str, Reservation]:
        """Live reservations among ``numbers`` (for ``smsagg gms group show``)."""
        if not numbers:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            pipe.hmget(self.rsv_key, numbers)
            pipe.time()
            raws, (secs, micros) = pipe.execute()
        now = secs * 1000 + micros // 1000
        live = {}
        for number, raw in zip(numbers, raws):
            if raw is not None:
                reservation = Reservation.from_json(number, json.loads(_text(raw)))
                if reservation.expires_ms > now:
                    live[number] = reservation
        return live

    def redis_time_ms(self) -> int:
        secs, micros = self.client.time()
        return secs * 1000 + micros // 1000

    # --- storage ---
    def storage_create(self, data_id: str, owner: str, fields: dict[str, bytes | str], ttl: int) -> None:
        key = self.data_key(data_id)
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping={"o": owner, **fields})
            pipe.expire(key, ttl)
            pipe.execute()

    def storage_update(self, data_id: str, owner: str, fields: dict[str, bytes | str], ttl: int) -> bool:
        args: list = [owner, ttl]
        for name, value in fields.items():
            args += [name, value]
        return bool(self._storage_update(self.client, [self.data_key(data_id)], args))

    def storage_get(self, data_id: str) -> dict[str, bytes]:
        raw = self.client.hgetall(self.data_key(data_id))
        return {_text(k): v for k, v in raw.items()}

    def storage_ttl(self, data_id: str) -> int:
        return int(self.client.ttl(self.data_key(data_id)))

    def storage_delete(self, data_id: str) -> None:
        self.client.delete(self.data_key(data_id))

    def storage_delete_fields(self, data_id: str, fields: list[str]) -> None:
        self.client.hdel(self.data_key(data_id), *fields)

    def storage_expire(self, data_id: str, ttl: int) -> None:
        self.client.expire(self.data_key(data_id), ttl)

    # --- chat ---
    def chat_key(self, service_id: str) -> str:
        return f"{self.p}chat:{service_id}"

    def chat_log_key(self, service_id: str) -> str:
        return f"{self.p}chat:{service_id}:log"

    @property
    def waiting_key(self) -> str:
        return f"{self.p}chats:waiting"

    @property
    def active_key(self) -> str:
        return f"{self.p}chats:active"

    def chat_create(self, service_id: str, fields: dict[str, str], ttl: int) -> bool:
        """Start the chat of a service; ``False`` if it was started already."""
        key = self.chat_key(service_id)
        if not self.client.hsetnx(key, "state", fields["state"]):
            return False
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(key, mapping=fields)
            pipe.expire(key, ttl)
            pipe.zadd(self.waiting_key, {service_id: int(time.time() * 1000)})
            pipe.execute()
        return True

    def chat_get(self, service_id: str) -> dict[str, str] | None:
        fields = self.client.hgetall(self.chat_key(service_id))
        return _texts(fields) if fields else None

    def chat_append(self, service_id: str, entry_json: str, ttl: int) -> int:
        """Append a transcript entry; its 1-based position back. Refreshes the TTLs."""
        with self.client.pipeline(transaction=True) as pipe:
            pipe.rpush(self.chat_log_key(service_id), entry_json)
            pipe.expire(self.chat_log_key(service_id), ttl)
            pipe.expire(self.chat_key(service_id), ttl)
            position, _, _ = pipe.execute()
        return int(position)

    def chat_entries(self, service_id: str, from_position: int) -> tuple[list[str], int]:
        """Entries from ``from_position`` (1-based) on, and the total count."""
        with self.client.pipeline(transaction=False) as pipe:
            pipe.lrange(self.chat_log_key(service_id), from_position - 1, -1)
            pipe.llen(self.chat_log_key(service_id))
            rows, total = pipe.execute()
        return [_text(r) for r in rows], int(total)

    def chat_set(self, service_id: str, **fields: str) -> None:
        self.client.hset(self.chat_key(service_id), mapping=fields)

    def chat_accept(self, service_id: str, agent: str, nickname: str) -> int:
        return int(self._chat_accept(
            self.client, [self.chat_key(service_id), self.waiting_key, self.active_key],
            [service_id, agent, nickname]))

    def chat_end(self, service_id: str) -> bool:
        return bool(self._chat_end(
            self.client, [self.chat_key(service_id), self.waiting_key, self.active_key], [service_id]))

    def chat_ids(self) -> tuple[list[str], list[str]]:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.zrange(self.waiting_key, 0, 199)
            pipe.zrange(self.active_key, 0, 199)
            waiting, active = pipe.execute()
        return [_text(i) for i in waiting], [_text(i) for i in active]

    def chats(self, service_ids: list[str]) -> dict[str, dict[str, str]]:
        """Chat hashes of these ids; ids whose chat expired are dropped from the lists."""
        if not service_ids:
            return {}
        with self.client.pipeline(transaction=False) as pipe:
            for service_id in service_ids:
                pipe.hgetall(self.chat_key(service_id))
            rows = pipe.execute()
        found, gone = {}, []
        for service_id, row in zip(service_ids, rows):
            (found.__setitem__(service_id, _texts(row)) if row else gone.append(service_id))
        if gone:
            with self.client.pipeline(transaction=False) as pipe:
                pipe.zrem(self.waiting_key, *gone)
                pipe.zrem(self.active_key, *gone)
                pipe.execute()
        return found

    def chat_delete(self, service_id: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(self.chat_key(service_id), self.chat_log_key(service_id))
            pipe.zrem(self.waiting_key, service_id)
            pipe.zrem(self.active_key, service_id)
            pipe.execute()

    # --- CometD ---
    def cometd_key(self, client_id: str) -> str:
        return f"{self.p}cometd:{client_id}"

    def cometd_queue(self, client_id: str) -> str:
        return f"{self.p}cometd:{client_id}:q"

    def cometd_user_key(self, app: str, user: str) -> str:
        return f"{self.p}cometd:user:{app}:{user}"

    def cometd_register(self, client_id: str, app: str, user: str, ttl: int) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.hset(self.cometd_key(client_id), mapping={"app": app, "user": user, "subs": ""})
            pipe.expire(self.cometd_key(client_id), ttl)
            pipe.sadd(self.cometd_user_key(app, user), client_id)
            pipe.expire(self.cometd_user_key(app, user), ttl)
            pipe.execute()

    def cometd_client(self, client_id: str) -> dict[str, str] | None:
        fields = self.client.hgetall(self.cometd_key(client_id))
        return _texts(fields) if fields else None

    def cometd_touch(self, client_id: str, app: str, user: str, ttl: int) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.expire(self.cometd_key(client_id), ttl)
            pipe.expire(self.cometd_queue(client_id), ttl)
            pipe.expire(self.cometd_user_key(app, user), ttl)
            pipe.execute()

    def cometd_first_connect(self, client_id: str) -> bool:
        """Marks the client connected; ``True`` the first time (answered at once)."""
        return bool(self.client.hsetnx(self.cometd_key(client_id), "connected", "1"))

    def cometd_alive(self, client_id: str) -> bool:
        return bool(self.client.exists(self.cometd_key(client_id)))

    def cometd_set_subscriptions(self, client_id: str, subscriptions: list[str]) -> None:
        self.client.hset(self.cometd_key(client_id), "subs", ",".join(sorted(set(subscriptions))))

    def cometd_forget(self, client_id: str, app: str, user: str) -> None:
        with self.client.pipeline(transaction=True) as pipe:
            pipe.delete(self.cometd_key(client_id), self.cometd_queue(client_id))
            pipe.srem(self.cometd_user_key(app, user), client_id)
            pipe.execute()

    def cometd_deliver(self, app: str, user: str, channel: str, message_json: str, ttl: int) -> int:
        """Queue a message for every live client of (app, user) subscribed to ``channel``."""
        members = [_text(m) for m in self.client.smembers(self.cometd_user_key(app, user))]
        if not members:
            return 0
        with self.client.pipeline(transaction=False) as pipe:
            for client_id in members:
                pipe.hget(self.cometd_key(client_id), "subs")
            subs = pipe.execute()
        delivered = 0
        with self.client.pipeline(transaction=False) as pipe:
            for client_id, sub in zip(members, subs):
                if sub is None:
                    pipe.srem(self.cometd_user_key(app, user), client_id)
                elif channel in _text(sub).split(","):
                    pipe.rpush(self.cometd_queue(client_id), message_json)
                    pipe.ltrim(self.cometd_queue(client_id), -MAX_QUEUED, -1)
                    pipe.expire(self.cometd_queue(client_id), ttl)
                    delivered += 1
            pipe.execute()
        return delivered

    def cometd_take(self, client_id: str, timeout: float, *, still_connected=lambda: True) -> list[str]:
        """Messages queued for the client, waiting up to ``timeout`` seconds for the
        first. Blocks in 1 s ``BLPOP`` slices so the client's socket timeout holds."""
        queue = self.cometd_queue(client_id)
        deadline = time.monotonic() + timeout
        while True:
            batch = self.client.lpop(queue, 100)
            if batch:
                return [_text(m) for m in batch]
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not still_connected():
                return []
            popped = self.client.blpop([queue], timeout=min(1.0, max(remaining, 0.01)))
            if popped:
                rest = self.client.lpop(queue, 99) or []
                return [_text(popped[1]), *(_text(m) for m in rest)]
