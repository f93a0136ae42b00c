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
drain flag). A drain task then:

1. **claims** up to ``limit`` items in one atomic step (:data:`CLAIM_LUA`): they move
   from the list to a list of its own, ``<prefix>stage:<queue>:inflight:<task id>``,
   indexed by claim time; the flag is cleared, and if items are left another drain task
   is queued, so a backlog is worked by every worker process of the queue at once;
2. handles the batch (``app.services.delivery``, ``app.services.inbound``);
3. **finishes**: deletes its inflight list.

Batches size themselves: at a trickle a drain takes one item at once; under load the
items that arrive while a batch is handled make the next batch.

Never lost: a drain task that fails is retried by Celery with the same task id
(``acks_late``, ``autoretry``) and its claim returns the batch it already holds; a
worker killed mid-batch gives its task message back (``task_reject_on_worker_lost``),
and whatever is still inflight after :data:`STALE_AFTER_SECONDS` is put back at the
head of its list by the beat task ``smsagg.stages.sweep`` (:meth:`StageQueue.sweep`),
which also queues a drain for any non-empty list whose drain flag has lapsed. Every
stage is idempotent, so a batch handled twice changes nothing twice.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import redis

from app.adapters.celery_wire import task_message
from app.adapters.redis_scripts import KICK_DRAIN_LUA, LuaScript, RedisKeys
from app.domain.priorities import INBOUND_QUEUE, Priority

SWEEP_TASK = "smsagg.stages.sweep"
INBOUND_DRAIN_TASK = "smsagg.inbound.drain"
DRAIN_TASKS = {**{priority.queue: priority.task_name for priority in Priority}, INBOUND_QUEUE: INBOUND_DRAIN_TASK}
"""Each queue drained in batches, and the task that drains it."""
STALE_AFTER_SECONDS = 600
"""An inflight batch older than this belongs to a worker that died: far above what a
batch takes (seconds), far below Celery's own redelivery (the visibility timeout)."""

PUSH_LUA = KICK_DRAIN_LUA + """
-- KEYS: list, drain flag, Celery queue. ARGV: drain task, items...
for i = 2, #ARGV do redis.call('LPUSH', KEYS[1], ARGV[i]) end
kick_drain(KEYS[2], KEYS[3], ARGV[1])
return #ARGV - 1
"""

CLAIM_LUA = KICK_DRAIN_LUA + """
-- KEYS: list, drain flag, Celery queue, this task's inflight list, inflight index
-- ARGV: limit, drain task (pushed when items are left), now
local held = redis.call('LRANGE', KEYS[4], 0, -1)
if #held > 0 then return held end
local items = redis.call('RPOP', KEYS[1], tonumber(ARGV[1]))
redis.call('DEL', KEYS[2])
if not items then return {} end
redis.call('RPUSH', KEYS[4], unpack(items))
redis.call('ZADD', KEYS[5], ARGV[3], KEYS[4])
if redis.call('LLEN', KEYS[1]) > 0 then kick_drain(KEYS[2], KEYS[3], ARGV[2]) end
return items
"""

RESTORE_LUA = KICK_DRAIN_LUA + """
-- KEYS: inflight list, inflight index, list, drain flag, Celery queue. ARGV: drain task
-- The batch goes back to the head of its list (the end RPOP takes first), in order.
local held = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('ZREM', KEYS[2], KEYS[1])
if #held == 0 then return 0 end
for i = #held, 1, -1 do redis.call('RPUSH', KEYS[3], held[i]) end
redis.call('DEL', KEYS[1])
kick_drain(KEYS[4], KEYS[5], ARGV[1])
return #held
"""

KICK_IF_IDLE_LUA = KICK_DRAIN_LUA + """
-- KEYS: list, drain flag, Celery queue. ARGV: drain task
if redis.call('LLEN', KEYS[1]) > 0 then kick_drain(KEYS[2], KEYS[3], ARGV[1]) end
return 0
"""


def drain_message(queue: str) -> str:
    """A drain task message for the list of ``queue`` (a fresh task id each time)."""
    return task_message(DRAIN_TASKS[queue], queue, [], uuid.uuid4().hex)


def item(payload: dict[str, Any]) -> str:
    """A payload as it waits on a list."""
    return json.dumps(payload, separators=(",", ":"))


class StageQueue:
    """Push items, claim a batch, finish it, sweep what dead workers left."""

    def __init__(self, client: redis.Redis, key_prefix: str):
        self.client = client
        self.keys = RedisKeys(key_prefix)
        self._push = LuaScript(PUSH_LUA)
        self._claim = LuaScript(CLAIM_LUA)
        self._restore = LuaScript(RESTORE_LUA)
        self._kick = LuaScript(KICK_IF_IDLE_LUA)

    def push(self, queue: str, payloads: list[dict[str, Any]]) -> None:
        """Queue ``payloads`` for the drain tasks of ``queue``, in one round trip."""
        keys = [self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue]
        self._push(self.client, keys, [drain_message(queue), *(item(payload) for payload in payloads)])

    def claim(self, queue: str, task_id: str, limit: int) -> list[dict[str, Any]]:
        """The batch of drain task ``task_id``: the one it already holds (a retried or
        redelivered task), else up to ``limit`` items taken from the list, oldest first."""
        keys = [self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue,
                self.keys.stage_inflight(queue, task_id), self.keys.stage_inflight_index()]
        raw = self._claim(self.client, keys, [limit, drain_message(queue), repr(time.time())])
        return [json.loads(entry) for entry in raw]

    def finish(self, queue: str, task_id: str) -> None:
        inflight = self.keys.stage_inflight(queue, task_id)
        pipe = self.client.pipeline(transaction=True)
        pipe.delete(inflight)
        pipe.zrem(self.keys.stage_inflight_index(), inflight)
        pipe.execute()

    def sweep(self, now: float, stale_after: float = STALE_AFTER_SECONDS) -> int:
        """Put stale inflight batches back and queue a drain for every list that has
        items but no drain waiting. Returns how many items were put back."""
        restored = 0
        for raw in self.client.zrangebyscore(self.keys.stage_inflight_index(), "-inf", now - stale_after):
            inflight = raw.decode()
            queue = self.keys.stage_of_inflight(inflight)
            restored += int(self._restore(self.client, [
                inflight, self.keys.stage_inflight_index(), self.keys.stage_pending(queue),
                self.keys.drain_flag(queue), queue], [drain_message(queue)]))
        for queue in DRAIN_TASKS:
            self._kick(self.client, [self.keys.stage_pending(queue), self.keys.drain_flag(queue), queue],
                       [drain_message(queue)])
        return restored

    def depths(self, now: float) -> list[StageDepth]:
        """What waits in each drained stage, and what its drain tasks hold."""
        claims: dict[str, list[tuple[str, float]]] = {queue: [] for queue in DRAIN_TASKS}
        for raw, claimed_at in self.client.zrange(self.keys.stage_inflight_index(), 0, -1, withscores=True):
            inflight = raw.decode()
            queue = self.keys.stage_of_inflight(inflight)
            claims.setdefault(queue, []).append((inflight, claimed_at))
        depths = []
        for queue, held in claims.items():
            pipe = self.client.pipeline(transaction=False)
            pipe.llen(self.keys.stage_pending(queue))
            for inflight, _ in held:
                pipe.llen(inflight)
            waiting, *claimed = pipe.execute()
            oldest = min((at for _, at in held), default=None)
            depths.append(StageDepth(queue, int(waiting), sum(claimed), len(held),
                                     None if oldest is None else round(now - oldest, 1)))
        return depths


@dataclass(frozen=True)
class StageDepth:
    queue: str
    waiting: int
    claimed: int
    batches: int
    oldest_claim_seconds: float | None
