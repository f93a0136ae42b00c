"""Stages that work in batches: items wait in Redis, one list per Celery queue, and
*drain* tasks on that queue take them many at a time.

One Celery task per item costs about a millisecond of a worker's consumer alone
(DESIGN.md: ~1k no-op tasks/s per worker), and one database transaction per item
costs more. So the high-volume stages are drained in batches:

* the MT stage: the ingress, the bulk API and the bulk fan-out push each accepted
  payload onto the list of its priority's queue (``mt.interactive`` ... ``mt.bulk_low``);
* receipts and MO: the SMPP connectors and the carrier webhooks push each inbound item
  onto the ``inbound`` list.

A push (``kick_drain`` in :mod:`app.adapters.redis_scripts`, or :meth:`StageQueue.push`)
also puts a drain task message onto the Celery queue, unless one is already waiting (the
drain flag, which lapses after ``DRAIN_FLAG_SECONDS`` so a drain message lost with a
killed worker blocks nothing for long). A drain task then:

1. **claims** up to ``limit`` items in one atomic step (:data:`CLAIM_LUA`): items whose
   delay is over (:meth:`StageQueue.later`) join the head of the list first; the batch
   moves from the list to a list of its own, ``<prefix>stage:<queue>:inflight:<task id>``,
   with a **lease**: its deadline (Redis time + ``LEASE_SECONDS``) is its score in the
   index ``<prefix>stage:inflight``. The flag is cleared, and if items are left another
   drain task is queued, so a backlog is worked by every worker process of the queue;
2. handles the batch while this process renews the lease every ``RENEW_EVERY_SECONDS``
   (:class:`app.services.leases.LeaseKeeper`, one thread per process, however long the
   batch takes: an SMSC that answers slowly never loses its batch to another worker);
3. **finishes**: deletes its inflight list and its lease.

Batches size themselves: at a trickle a drain takes one item at once; under load the
items that arrive while a batch is handled make the next batch.

Never lost, and back in seconds:

* a drain that fails is retried by Celery with the same task id (``acks_late``) and its
  claim returns the batch it still holds (renewing the lease);
* a holder that died stops renewing; once its lease has lapsed, :meth:`StageQueue.sweep`
  puts the batch back at the head of its list (interactive queues first, see
  ``SWEEP_ORDER``), releases delayed items that are due, and queues a drain for every
  non-empty list whose drain flag has lapsed. Every worker process runs the sweep every
  ``SWEEP_EVERY_SECONDS`` (:meth:`StageQueue.sweep_if_due`: one sweep per interval across
  the whole gateway, by whoever takes the lock), and once when it starts. A batch held
  by a killed worker is therefore back in play within ``LEASE_SECONDS +
  SWEEP_EVERY_SECONDS``, without waiting for Celery's own redelivery (its visibility
  timeout is an hour);
* **delayed items** (:meth:`StageQueue.later`: MT retries, throttled messages) wait in
  the sorted set ``<prefix>stage:<queue>:later`` (score: when they are due), with a drain
  task message that Celery holds until then (an ETA); if that message is lost with its
  worker, the sweep releases the items when due;
* an item that cannot be handled (a *poison* payload: the error is not a backing
  service being away, see :mod:`app.services.failures`) is **set aside** on the stage's
  dead-letter list ``<prefix>stage:<queue>:dead`` with the error and the time, and the rest
  of its batch goes on. :meth:`StageQueue.dead_letters` lists them and
  :meth:`StageQueue.replay` puts them back (``smsagg queues dead|replay``). Tasks that
  are not drains are set aside whole (kind ``task``) and replayed as a task message.

Every stage is idempotent, so a batch handled twice changes nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Collection, Iterator

import redis

from app.adapters.celery_wire import task_message
from app.adapters.metrics import DEAD_LETTERS
from app.adapters.redis_scripts import KICK_DRAIN_LUA, LuaScript, RedisKeys
from app.domain.priorities import INBOUND_QUEUE, Priority
from app.domain.task_names import INBOUND_DRAIN_TASK
from app.domain.task_names import STAGE_SWEEP_TASK as SWEEP_TASK
from app.services.leases import LeaseKeeper

log = logging.getLogger(__name__)

DRAIN_TASKS = {**{priority.queue: priority.task_name for priority in Priority}, INBOUND_QUEUE: INBOUND_DRAIN_TASK}
"""Each queue drained in batches, and the task that drains it."""
SWEEP_ORDER = (Priority.INTERACTIVE.queue, Priority.INTERACTIVE_LOW.queue, INBOUND_QUEUE,
               Priority.BULK.queue, Priority.BULK_LOW.queue)
"""The order in which the sweep gives lapsed batches back: interactive traffic first."""
LEASE_SECONDS = 10.0
"""A claim's lease: renewed every RENEW_EVERY_SECONDS by its live holder, so a few
missed renewals (Redis restarting) are survived; lapsed, the batch belongs to nobody."""
RENEW_EVERY_SECONDS = 2.0
SWEEP_EVERY_SECONDS = 2.0
RELEASE_SLACK_SECONDS = 0.05
"""Delayed items this close to due are released with the claim (hosts' clocks differ a little)."""
RELEASE_LIMIT = 1000
"""Delayed items released per claim or sweep and queue (the rest at the next one)."""

_NOW_LUA = """
local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) + tonumber(t[2]) / 1000000
end

local function release_due(later, list, at)
  -- Due delayed items go to the head of the list (the end RPOP takes first), earliest first.
  local due = redis.call('ZRANGEBYSCORE', later, '-inf', at, 'LIMIT', 0, %d)
  for i = #due, 1, -1 do redis.call('RPUSH', list, due[i]) end
  if #due > 0 then redis.call('ZREM', later, unpack(due)) end
  return #due
end
""" % RELEASE_LIMIT

PUSH_LUA = KICK_DRAIN_LUA + """
-- KEYS: list, drain flag, Celery queue. ARGV: drain task, items...
for i = 2, #ARGV do redis.call('LPUSH', KEYS[1], ARGV[i]) end
kick_drain(KEYS[2], KEYS[3], ARGV[1])
return #ARGV - 1
"""

CLAIM_LUA = KICK_DRAIN_LUA + _NOW_LUA + """
-- KEYS: list, drain flag, Celery queue, this task's inflight list, lease index,
--       claimed-at hash, delayed items
-- ARGV: limit, drain task (pushed when items are left), lease seconds, release slack
local t = now()
local held = redis.call('LRANGE', KEYS[4], 0, -1)
if #held > 0 then
  redis.call('ZADD', KEYS[5], t + tonumber(ARGV[3]), KEYS[4])
  return held
end
release_due(KEYS[7], KEYS[1], t + tonumber(ARGV[4]))
local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
redis.call('DEL', KEYS[2])
if not items then return {} end
redis.call('RPUSH', KEYS[4], unpack(items))
redis.call('ZADD', KEYS[5], t + tonumber(ARGV[3]), KEYS[4])
redis.call('HSET', KEYS[6], KEYS[4], tostring(t))
if redis.call('LLEN', KEYS[1]) > 0 then kick_drain(KEYS[2], KEYS[3], ARGV[2]) end
return items
"""

RENEW_LUA = _NOW_LUA + """
-- KEYS: lease index. ARGV: lease seconds, inflight lists... Returns those no longer held.
local deadline = now() + tonumber(ARGV[1])
local gone = {}
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], deadline, ARGV[i])
  else
    gone[#gone + 1] = ARGV[i]
  end
end
return gone
"""

FINISH_LUA = """
-- KEYS: inflight list, lease index, claimed-at hash
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('HDEL', KEYS[3], KEYS[1])
return 0
"""

RESTORE_LUA = KICK_DRAIN_LUA + _NOW_LUA + """
-- KEYS: inflight list, lease index, list, drain flag, Celery queue, claimed-at hash.
-- ARGV: drain task. Only a lapsed lease (checked here, atomically: its holder may have
-- renewed it since the caller looked) gives its batch back, to the head of its list.
local deadline = redis.call('ZSCORE', KEYS[2], KEYS[1])
if not deadline or tonumber(deadline) > now() then return 0 end
local held = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('ZREM', KEYS[2], KEYS[1])
redis.call('HDEL', KEYS[6], KEYS[1])
if #held == 0 then return 0 end
for i = #held, 1, -1 do redis.call('RPUSH', KEYS[3], held[i]) end
redis.call('DEL', KEYS[1])
kick_drain(KEYS[4], KEYS[5], ARGV[1])
return #held
"""

SWEEP_QUEUE_LUA = KICK_DRAIN_LUA + _NOW_LUA + """
-- KEYS: list, drain flag, Celery queue, delayed items. ARGV: drain task, release slack
-- Due delayed items join the list; a list with items and no drain waiting gets one.
local released = release_due(KEYS[4], KEYS[1], now() + tonumber(ARGV[2]))
if redis.call('LLEN', KEYS[1]) > 0 then kick_drain(KEYS[2], KEYS[3], ARGV[1]) end
return released
"""

LATER_LUA = _NOW_LUA + """
-- KEYS: delayed items, Celery queue. ARGV: delay seconds, drain task with its ETA ('' = none), items...
local due = now() + tonumber(ARGV[1])
for i = 3, #ARGV do redis.call('ZADD', KEYS[1], due, ARGV[i]) end
if ARGV[2] ~= '' then redis.call('LPUSH', KEYS[2], ARGV[2]) end
return #ARGV - 2
"""

SET_ASIDE_LUA = """
-- KEYS: inflight list ('' for none), dead-letter list. ARGV: the item as claimed, dead-letter entry
if KEYS[1] ~= '' then redis.call('LREM', KEYS[1], 1, ARGV[1]) end
redis.call('LPUSH', KEYS[2], ARGV[2])
return redis.call('LLEN', KEYS[2])
"""

REPLAY_LUA = KICK_DRAIN_LUA + """
-- KEYS: dead-letter list, list, drain flag, Celery queue.
-- ARGV: the entry, kind ('item' | 'task'), what to push back, drain task.
-- An entry is replayed once: only the call that removes it pushes it back.
if redis.call('LREM', KEYS[1], 1, ARGV[1]) == 0 then return 0 end
if ARGV[2] == 'item' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  kick_drain(KEYS[3], KEYS[4], ARGV[4])
else
  redis.call('LPUSH', KEYS[4], ARGV[3])
end
return 1
"""


def drain_message(queue: str, eta: float | None = None) -> str:
    """A drain task message for the list of ``queue`` (a fresh task id each time);
    with ``eta`` (epoch seconds) Celery holds it until then."""
    return task_message(DRAIN_TASKS[queue], queue, [], uuid.uuid4().hex, eta=eta)


def item(payload: dict[str, Any]) -> str:
    """A payload as it waits on a list."""
    return json.dumps(payload, separators=(",", ":"))


def decode(raw: str | bytes) -> dict[str, Any]:
    """An item as claimed (raises ``ValueError`` for one that is not a JSON object)."""
    value = json.loads(raw)
    if not isinstance(value, dict):
        raise ValueError(f"stage item is a {type(value).__name__}, not an object")
    return value


def _text(raw: str | bytes) -> str:
    return raw.decode() if isinstance(raw, bytes) else raw


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"[:2000]


@dataclass(frozen=True)
class DeadLetter:
    """One set-aside item (kind ``item``: a stage item as claimed) or task (kind
    ``task``: a task name and its arguments), with the error that set it aside."""

    id: str
    queue: str
    kind: str
    error: str
    at: float
    item: str | None = None
    task: str | None = None
    args: list | None = None
    raw: str = ""

    @classmethod
    def parse(cls, raw: str) -> "DeadLetter":
        entry = json.loads(raw)
        return cls(entry["id"], entry["queue"], entry["kind"], entry["error"], float(entry["at"]), entry.get("item"),
                   entry.get("task"), entry.get("args"), raw)

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "queue": self.queue, "kind": self.kind, "error": self.error, "at": self.at,
                "item": self.item, "task": self.task, "args": self.args}


def dead_letter_entry(queue: str, kind: str, error: BaseException, **what) -> str:
    return json.dumps({"id": uuid.uuid4().hex[:16], "queue": queue, "kind": kind, "error": describe(error),
                       "at": round(time.time(), 3), **what}, separators=(",", ":"))


class ClaimedBatch:
    """A drain task's batch, raw items in the order claimed; :meth:`set_aside` moves one
    to the stage's dead letters (and out of the claim)."""

    def __init__(self, stages: "StageQueue", queue: str, task_id: str, items: list[str]):
        self._stages = stages
        self.queue = queue
        self.task_id = task_id
        self.items = items

    def set_aside(self, raw: str, error: BaseException) -> None:
        self._stages.set_aside(self.queue, raw, error, task_id=self.task_id)


class StageQueue:
    """Push items, claim a batch under a lease, finish it, delay items, set poison aside,
    sweep what dead workers left."""

    def __init__(self, client: redis.Redis, key_prefix: str, *, lease_seconds: float = LEASE_SECONDS,
                 renew_every: float = RENEW_EVERY_SECONDS):
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self.lease_seconds = lease_seconds
        self.leases: LeaseKeeper[str] = LeaseKeeper(self._keep, renew_every, "stage-leases")
        self._push = LuaScript(PUSH_LUA)
        self._claim = LuaScript(CLAIM_LUA)
        self._renew = LuaScript(RENEW_LUA)
        self._finish = LuaScript(FINISH_LUA)
        self._restore = LuaScript(RESTORE_LUA)
        self._sweep_queue = LuaScript(SWEEP_QUEUE_LUA)
        self._later = LuaScript(LATER_LUA)
        self._set_aside = LuaScript(SET_ASIDE_LUA)
        self._replay = LuaScript(REPLAY_LUA)

    def push(self, queue: str, payloads: list[dict[str, Any]]) -> None:
        """Queue ``payloads`` for the drain tasks of ``queue``, in one round trip."""
        keys = [self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue]
        self._push(self.client, keys, [drain_message(queue), *(item(payload) for payload in payloads)])

    # --- claims and leases ------------------------------------------------------------------

    def claim(self, queue: str, task_id: str, limit: int) -> list[str]:
        """The batch of drain task ``task_id``, raw: the one it already holds (a retried or
        redelivered task), else up to ``limit`` items, due delayed ones first, then the
        oldest. Leased for ``lease_seconds``; renew it (:meth:`renew`, or hold it with
        :attr:`leases`) while working, :meth:`finish` it when done."""
        keys = [self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue,
                self.keys.stage_inflight(queue, task_id), self.keys.stage_inflight_index(),
                self.keys.stage_claimed_at(), self.keys.stage_later(queue)]
        raw = self._claim(self.client, keys, [limit, drain_message(queue), self.lease_seconds, RELEASE_SLACK_SECONDS])
        return [_text(entry) for entry in raw]

    @contextmanager
    def claimed(self, queue: str, task_id: str, limit: int) -> Iterator[ClaimedBatch]:
        """``with stages.claimed(q, task_id, 200) as batch:`` the batch, its lease renewed
        by this process until the block ends; finished when the block completes. If the
        block raises, the claim is kept (a retry under the same task id gets it back)
        but no longer renewed, so it returns to the list once its lease lapses."""
        batch = ClaimedBatch(self, queue, task_id, self.claim(queue, task_id, limit))
        if not batch.items:
            yield batch
            return
        inflight = self.keys.stage_inflight(queue, task_id)
        with self.leases.holding([inflight]):
            yield batch
        self.finish(queue, task_id)

    def renew(self, inflight_keys: Collection[str]) -> list[str]:
        """Push the leases of these claims back to now + ``lease_seconds``; returns the
        ones that are no longer held (finished, or swept after their lease lapsed)."""
        if not inflight_keys:
            return []
        gone = self._renew(self.client, [self.keys.stage_inflight_index()], [self.lease_seconds, *inflight_keys])
        return [_text(key) for key in gone]

    def _keep(self, inflight_keys: Collection[str]) -> None:
        for gone in self.renew(inflight_keys):
            log.warning("%s was given back while this process still held it (its lease lapsed: Redis away "
                        "for longer than the lease?); it may be handled twice", gone)

    def finish(self, queue: str, task_id: str) -> None:
        self._finish(self.client, [self.keys.stage_inflight(queue, task_id), self.keys.stage_inflight_index(),
                                   self.keys.stage_claimed_at()], [])

    # --- delayed items ----------------------------------------------------------------------

    def later(self, queue: str, items: list[str], delay: float) -> None:
        """``items`` go back to ``queue``'s list in ``delay`` seconds: a drain task held by
        Celery until then claims them; the sweep releases them if that task is lost."""
        if not items:
            return
        eta = drain_message(queue, eta=time.time() + delay) if delay > 0 else drain_message(queue)
        self._later(self.client, [self.keys.stage_later(queue), queue], [max(0.0, delay), eta, *items])

    # --- poison --------------------------------------------------------------------------

    def set_aside(self, queue: str, raw: str, error: BaseException, *, task_id: str | None = None) -> None:
        """Move one claimed item to the stage's dead letters (out of ``task_id``'s claim)."""
        inflight = self.keys.stage_inflight(queue, task_id) if task_id else ""
        entry = dead_letter_entry(queue, "item", error, item=raw)
        self._set_aside(self.client, [inflight, self.keys.stage_dead(queue)], [raw, entry])
        DEAD_LETTERS.inc(queue)

    def set_aside_task(self, queue: str, task: str, args: list, error: BaseException) -> None:
        """A task that cannot be done (not a drain): kept with its arguments, to replay."""
        entry = dead_letter_entry(queue, "task", error, task=task, args=args)
        self._set_aside(self.client, ["", self.keys.stage_dead(queue)], ["", entry])
        DEAD_LETTERS.inc(queue)

    def dead_letters(self, queue: str, limit: int = 1000) -> list[DeadLetter]:
        """Newest first."""
        return [DeadLetter.parse(_text(raw)) for raw in self.client.lrange(self.keys.stage_dead(queue), 0, limit - 1)]

    def dead_count(self, queue: str) -> int:
        return int(self.client.llen(self.keys.stage_dead(queue)))

    def replay(self, queue: str, ids: Collection[str] | None = None) -> list[str]:
        """Put set-aside items back at the head of their list (tasks back onto their
        queue), oldest first: those with these ids, or all of them (``ids=None``).
        Returns the ids replayed; each entry is replayed once, however many run this."""
        entries = list(reversed(self.dead_letters(queue, limit=1_000_000)))
        if ids is not None:
            wanted = set(ids)
            entries = [entry for entry in entries if entry.id in wanted]
        replayed = []
        for entry in entries:
            if entry.kind == "item":
                back = entry.item or ""
            else:
                back = task_message(entry.task or "", entry.queue, list(entry.args or []))
            keys = [self.keys.stage_dead(queue), self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue]
            drain = drain_message(queue) if queue in DRAIN_TASKS else ""
            if self._replay(self.client, keys, [entry.raw, entry.kind, back, drain]):
                replayed.append(entry.id)
        return replayed

    # --- the sweep --------------------------------------------------------------------------

    def sweep(self) -> int:
        """Give back batches whose lease lapsed (interactive queues first), release
        delayed items that are due, and queue a drain for every list that has items
        but no drain waiting. Returns how many items went back to their lists."""
        seconds, micros = self.client.time()
        now = seconds + micros / 1_000_000
        lapsed: dict[str, list[str]] = {}
        for raw in self.client.zrangebyscore(self.keys.stage_inflight_index(), "-inf", now):
            inflight = _text(raw)
            lapsed.setdefault(self.keys.stage_of_inflight(inflight), []).append(inflight)
        returned = 0
        for queue in SWEEP_ORDER + tuple(sorted(set(lapsed) - set(SWEEP_ORDER))):
            for inflight in lapsed.get(queue, []):
                returned += int(self._restore(self.client, [
                    inflight, self.keys.stage_inflight_index(), self.keys.stage_pending(queue),
                    self.keys.drain_flag(queue), queue, self.keys.stage_claimed_at()], [drain_message(queue)]))
            if queue in DRAIN_TASKS:
                returned += int(self._sweep_queue(self.client, [
                    self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue, self.keys.stage_later(queue)],
                    [drain_message(queue), RELEASE_SLACK_SECONDS]))
        return returned

    def sweep_if_due(self, every: float = SWEEP_EVERY_SECONDS) -> int | None:
        """:meth:`sweep`, unless another process swept less than ``every`` seconds ago
        (every worker calls this on a timer; one of them sweeps per interval)."""
        if not self.client.set(self.keys.stage_sweep_lock(), "1", nx=True, px=max(1, int(every * 1000) - 100)):
            return None
        return self.sweep()

    # --- what waits -------------------------------------------------------------------------

    def depths(self, now: float | None = None) -> list[StageDepth]:
        """What waits in each drained stage, what its drain tasks hold, what is delayed
        and what was set aside."""
        if now is None:
            seconds, micros = self.client.time()
            now = seconds + micros / 1_000_000
        claims: dict[str, list[tuple[str, float, float]]] = {queue: [] for queue in DRAIN_TASKS}
        claimed_at = {_text(k): float(v) for k, v in self.client.hgetall(self.keys.stage_claimed_at()).items()}
        for raw, deadline in self.client.zrange(self.keys.stage_inflight_index(), 0, -1, withscores=True):
            inflight = _text(raw)
            queue = self.keys.stage_of_inflight(inflight)
            claims.setdefault(queue, []).append((inflight, claimed_at.get(inflight, now), deadline))
        depths = []
        for queue, held in claims.items():
            pipe = self.client.pipeline(transaction=False)
            pipe.llen(self.keys.stage_pending(queue))
            pipe.zcard(self.keys.stage_later(queue))
            pipe.llen(self.keys.stage_dead(queue))
            pipe.lindex(self.keys.stage_pending(queue), -1)
            for inflight, _, _ in held:
                pipe.llen(inflight)
            waiting, delayed, dead, next_item, *claimed = pipe.execute()
            oldest = min((at for _, at, _ in held), default=None)
            waiting_since = item_time(next_item)
            depths.append(StageDepth(queue, int(waiting), sum(claimed), len(held),
                                     None if oldest is None else round(now - oldest, 1),
                                     sum(1 for _, _, deadline in held if deadline < now), int(delayed), int(dead),
                                     None if waiting_since is None else round(max(0.0, now - waiting_since), 1)))
        return depths


ITEM_TIME_FIELDS = ("accepted_at", "received_at")
"""When an item entered its stage: an MT payload's acceptance, an inbound item's arrival."""


def item_time(raw: str | bytes | None) -> float | None:
    """When ``raw`` (a stage item) entered its stage, if it says (a retry item does not)."""
    if raw is None:
        return None
    try:
        entry = decode(raw)
    except ValueError:
        return None
    return next((float(entry[name]) for name in ITEM_TIME_FIELDS if isinstance(entry.get(name), (int, float))), None)


@dataclass(frozen=True)
class StageDepth:
    queue: str
    waiting: int
    claimed: int
    batches: int
    oldest_claim_seconds: float | None
    lapsed: int = 0
    delayed: int = 0
    dead: int = 0
    oldest_waiting_seconds: float | None = None  # the next item to be claimed, when it says when it came

    @property
    def oldest_seconds(self) -> float:
        """The oldest item's age, waiting or claimed (0: none that says)."""
        return max(self.oldest_waiting_seconds or 0.0, self.oldest_claim_seconds or 0.0)
