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
    P data:<id>             hash   storage: o=owner, v:/t:/f:<key>,      TTL = storage ttl
                                   r:<app> = read granted by a match
    P rsv                   hash   number -> reservation JSON
    P rsv:exp               zset   number -> expiry (ms, Redis clock)
    P rr:<group>            string round-robin counter
    P chat:<id>             hash   chat state of service <id>            TTL = chat ttl (sliding)
    P chat:<id>:log         list   transcript entries (JSON)             same TTL
    P chats:waiting         zset   service id -> started ms, endpoint ``default``
    P chats:waiting:<ep>    zset   the same, for chat endpoint <ep>
    P chats:active          zset   service id -> accepted ms
    P cometd:<cid>          hash   CometD client (app, user, subs)       TTL = session timeout
    P cometd:<cid>:q        list   messages waiting for /meta/connect    same TTL
    P cometd:user:<a>:<u>   set    CometD client ids of (app, gms_user)  same TTL
    P cometd:wake           pub/sub channel waking parked long-polls (:class:`CometdCommands`)
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import redis

from app.adapters.redis_scripts import LuaScript
from app.gms.cometd import (
    MAX_REPLY_BYTES,
    MAX_REPLY_MESSAGES,
    ClientRecord,
    Deliver,
    Forget,
    MarkConnected,
    Register,
    SetSubscriptions,
    Touch,
    Write,
)
from app.gms.domain import DEFAULT_CHAT_ENDPOINT, Reservation

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

STORAGE_GRANT_LUA = """
-- KEYS: data hash; ARGV: grant field. Only on data that still exists (keeps its TTL).
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], '1')
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
        self._storage_grant = LuaScript(STORAGE_GRANT_LUA)
        self._chat_accept = LuaScript(CHAT_ACCEPT_LUA)
        self._chat_end = LuaScript(CHAT_END_LUA)
        self.cometd = CometdCommands(key_prefix)

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

    @staticmethod
    def grant_field(app: str) -> str:
        return f"r:{app}"

    def storage_grant(self, data_id: str, app: str) -> None:
        """Let ``app`` read the data (it matched the service); a no-op once the data has
        expired, so no key is ever left without its TTL."""
        self._storage_grant(self.client, [self.data_key(data_id)], [self.grant_field(app)])

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

    def waiting_key(self, endpoint: str) -> str:
        # The default endpoint keeps the key every chat used before endpoints existed.
        return f"{self.p}chats:waiting" if endpoint == DEFAULT_CHAT_ENDPOINT else f"{self.p}chats:waiting:{endpoint}"

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
            pipe.zadd(self.waiting_key(fields["endpoint"]), {service_id: int(time.time() * 1000)})
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

    def chat_accept(self, service_id: str, endpoint: str, agent: str, nickname: str) -> int:
        return int(self._chat_accept(
            self.client, [self.chat_key(service_id), self.waiting_key(endpoint), self.active_key],
            [service_id, agent, nickname]))

    def chat_end(self, service_id: str, endpoint: str) -> bool:
        return bool(self._chat_end(
            self.client, [self.chat_key(service_id), self.waiting_key(endpoint), self.active_key], [service_id]))

    def chat_ids(self, endpoints: list[str]) -> tuple[list[str], list[str]]:
        """The oldest waiting chats of ``endpoints`` (200 at most each) and the active ones."""
        with self.client.pipeline(transaction=False) as pipe:
            for endpoint in endpoints:
                pipe.zrange(self.waiting_key(endpoint), 0, 199, withscores=True)
            pipe.zrange(self.active_key, 0, 199)
            *waiting, active = pipe.execute()
        oldest_first = sorted((score, _text(i)) for rows in waiting for i, score in rows)
        return [i for _, i in oldest_first], [_text(i) for i in active]

    def chats(self, service_ids: list[str], endpoints: list[str]) -> dict[str, dict[str, str]]:
        """Chat hashes of these ids; ids whose chat expired are dropped from the lists
        (the waiting lists of ``endpoints`` and the active one)."""
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
                for endpoint in endpoints:
                    pipe.zrem(self.waiting_key(endpoint), *gone)
                pipe.zrem(self.active_key, *gone)
                pipe.execute()
        return found

    def chat_delete(self, service_id: str, endpoint: str) -> None:
        with self.client.pipeline(transaction=False) as pipe:
            pipe.delete(self.chat_key(service_id), self.chat_log_key(service_id))
            pipe.zrem(self.waiting_key(endpoint), service_id)
            pipe.zrem(self.active_key, service_id)
            pipe.execute()

    # --- CometD ---
    def cometd_deliver(self, app: str, user: str, channel: str, message_json: str, ttl: int) -> int:
        """Queue a message for every live client of (app, user) subscribed to ``channel``
        and wake their parked long-polls; how many clients it was queued for."""
        with self.client.pipeline(transaction=False) as pipe:
            self.cometd.deliver(pipe, Deliver(app, user, channel, message_json), ttl)
            (delivered,) = pipe.execute()
        return int(delivered)


DELIVER_LUA = """
-- KEYS: the (app, user) client set
-- ARGV: client key prefix, channel, message, most queued, ttl s, wake channel
local delivered = 0
for _, cid in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local subs = redis.call('HGET', ARGV[1] .. cid, 'subs')
  if not subs then
    redis.call('SREM', KEYS[1], cid)
  elseif string.find(',' .. subs .. ',', ',' .. ARGV[2] .. ',', 1, true) then
    local queue = ARGV[1] .. cid .. ':q'
    redis.call('RPUSH', queue, ARGV[3])
    redis.call('LTRIM', queue, -tonumber(ARGV[4]), -1)
    redis.call('EXPIRE', queue, tonumber(ARGV[5]))
    redis.call('PUBLISH', ARGV[6], cid)
    delivered = delivered + 1
  end
end
return delivered
"""

TAKE_LUA = """
-- KEYS: the client's queue, the client's hash
-- ARGV: most messages, most bytes (the first message is taken whatever its size)
local taken, size = {}, 0
while #taken < tonumber(ARGV[1]) do
  local head = redis.call('LINDEX', KEYS[1], 0)
  if not head then break end
  if #taken > 0 and size + #head > tonumber(ARGV[2]) then break end
  redis.call('LPOP', KEYS[1])
  taken[#taken + 1] = head
  size = size + #head
end
return {redis.call('EXISTS', KEYS[2]), taken}
"""


class CometdCommands:
    """The Redis commands of CometD clients, queued on a pipeline of either redis-py
    client (``redis.Redis`` or ``redis.asyncio.Redis``), so the blocking ingress and the
    asyncio CometD server run exactly the same commands; only ``execute()`` differs.

    Parked long-polls are woken through ONE pub/sub channel (:attr:`wake_channel`):
    a delivery or a ``/meta/disconnect`` publishes the client id; a connect about to be
    answered publishes ``"<client id> <token>"``, which releases any other poll of that
    client still parked in some CometD server process (Bayeux: a client's new connect
    ends its previous one), so a stale poll on a dead connection cannot take the
    client's messages. The scripts are small and run as ``EVAL`` (Redis caches them).
    """

    def __init__(self, key_prefix: str):
        self.p = f"{key_prefix}gms:cometd:"
        self.wake_channel = f"{self.p}wake"

    def client_key(self, client_id: str) -> str:
        return f"{self.p}{client_id}"

    def queue_key(self, client_id: str) -> str:
        return f"{self.p}{client_id}:q"

    def user_key(self, app: str, user: str) -> str:
        return f"{self.p}user:{app}:{user}"

    def read_clients(self, pipe, client_ids: list[str]) -> None:
        for client_id in client_ids:
            pipe.hgetall(self.client_key(client_id))

    @staticmethod
    def clients(client_ids: list[str], rows: list[dict]) -> dict[str, ClientRecord]:
        """The records read by :meth:`read_clients` (its pipeline's results, in order)."""
        found = {}
        for client_id, row in zip(client_ids, rows, strict=True):
            fields = _texts(row)
            if "app" in fields:
                subscriptions = tuple(s for s in fields.get("subs", "").split(",") if s)
                found[client_id] = ClientRecord(client_id, fields["app"], fields.get("user", fields["app"]),
                                                subscriptions, connected=fields.get("connected") == "1")
        return found

    def write(self, pipe, writes: list[Write], ttl: int) -> None:
        """Queue the writes of a plan; every key written lives ``ttl`` seconds more."""
        for write in writes:
            match write:
                case Register(client_id, app, user):
                    pipe.hset(self.client_key(client_id), mapping={"app": app, "user": user, "subs": ""})
                    pipe.expire(self.client_key(client_id), ttl)
                    pipe.sadd(self.user_key(app, user), client_id)
                    pipe.expire(self.user_key(app, user), ttl)
                case Touch(client_id, app, user):
                    pipe.expire(self.client_key(client_id), ttl)
                    pipe.expire(self.queue_key(client_id), ttl)
                    pipe.expire(self.user_key(app, user), ttl)
                case SetSubscriptions(client_id, subscriptions):
                    pipe.hset(self.client_key(client_id), "subs", ",".join(subscriptions))
                    pipe.expire(self.client_key(client_id), ttl)  # never a key without TTL
                case MarkConnected(client_id):
                    pipe.hset(self.client_key(client_id), "connected", "1")
                    pipe.expire(self.client_key(client_id), ttl)
                case Forget(client_id, app, user):
                    pipe.delete(self.client_key(client_id), self.queue_key(client_id))
                    pipe.srem(self.user_key(app, user), client_id)
                    pipe.publish(self.wake_channel, client_id)
                case Deliver():
                    self.deliver(pipe, write, ttl)

    def deliver(self, pipe, deliver: Deliver, ttl: int) -> None:
        pipe.eval(DELIVER_LUA, 1, self.user_key(deliver.app, deliver.user),
                  self.p, deliver.channel, deliver.message_json, MAX_QUEUED, ttl, self.wake_channel)

    def take(self, pipe, client_id: str, *, release_token: str | None = None) -> None:
        """Queue taking the client's waiting messages (at most one reply's worth);
        with ``release_token``, first release the client's other parked polls."""
        if release_token is not None:
            pipe.publish(self.wake_channel, f"{client_id} {release_token}")
        pipe.eval(TAKE_LUA, 2, self.queue_key(client_id), self.client_key(client_id),
                  MAX_REPLY_MESSAGES, MAX_REPLY_BYTES)

    @staticmethod
    def taken(results: list) -> tuple[list[str], bool]:
        """The messages taken and whether the client still exists, from a pipeline's
        results ending with :meth:`take`'s."""
        exists, messages = results[-1]
        return [_text(m) for m in messages], bool(exists)
