"""Stages drained in batches (app.adapters.stage_queue) against fakeredis: what the
ingress and the inbound side push, what a drain claims, and that nothing claimed is
ever lost."""

from __future__ import annotations

import base64
import json

import fakeredis
import pytest

from app.adapters import stage_queue
from app.adapters.stage_queue import StageQueue
from app.adapters.redis_scripts import Admission, RedisStore

QUEUE = "mt.bulk"


@pytest.fixture
def redis_client():
    return fakeredis.FakeRedis()


@pytest.fixture
def store(redis_client):
    return RedisStore(redis_client, "t:")


@pytest.fixture
def queue(redis_client):
    return StageQueue(redis_client, "t:")


def admit(store: RedisStore, index: int):
    payload = {"id": f"m{index}", "n": index}
    return store.admit(account_id=1, client_message_id=f"c{index}", message_id=f"m{index}", claim_ttl_seconds=60,
                       rate=None, burst=None, queue=QUEUE, item=stage_queue.item(payload),
                       drain=stage_queue.drain_message(QUEUE))


def drain_tasks(redis_client) -> list[dict]:
    return [json.loads(raw) for raw in redis_client.lrange(QUEUE, 0, -1)]


def test_drain_message_is_a_celery_task_for_the_queue_with_no_arguments():
    envelope = json.loads(stage_queue.drain_message(QUEUE))
    assert envelope["headers"]["task"] == "smsagg.mt.bulk"
    assert envelope["properties"]["delivery_info"]["routing_key"] == QUEUE
    assert json.loads(base64.b64decode(envelope["body"]))[0] == []
    assert envelope["headers"]["id"] != json.loads(stage_queue.drain_message(QUEUE))["headers"]["id"]


def test_many_admissions_queue_one_drain_task(store, redis_client):
    assert all(admit(store, i).outcome is Admission.QUEUED for i in range(5))
    assert len(drain_tasks(redis_client)) == 1
    assert redis_client.llen(store.keys.stage_pending(QUEUE)) == 5


def test_claim_takes_the_oldest_first_and_queues_the_next_drain_when_some_are_left(store, queue, redis_client):
    for i in range(5):
        admit(store, i)
    redis_client.delete(QUEUE)  # the drain task below is "the one a worker took"
    assert [p["n"] for p in queue.claim(QUEUE, "task-1", limit=3)] == [0, 1, 2]
    assert len(drain_tasks(redis_client)) == 1  # two are left: another worker may start on them
    assert [p["n"] for p in queue.claim(QUEUE, "task-2", limit=3)] == [3, 4]
    assert len(drain_tasks(redis_client)) == 1  # nothing left: no new drain


def test_an_emptied_list_gets_a_new_drain_with_the_next_admission(store, queue, redis_client):
    admit(store, 0)
    redis_client.delete(QUEUE)
    queue.claim(QUEUE, "task-1", limit=10)
    queue.finish(QUEUE, "task-1")
    assert queue.claim(QUEUE, "task-2", limit=10) == []  # a spare drain finds nothing, clears the flag
    admit(store, 1)
    assert len(drain_tasks(redis_client)) == 1


def test_a_retried_drain_gets_the_batch_it_already_claimed(store, queue):
    for i in range(3):
        admit(store, i)
    first = queue.claim(QUEUE, "task-1", limit=2)
    assert queue.claim(QUEUE, "task-1", limit=2) == first  # Celery's retry keeps the task id
    queue.finish(QUEUE, "task-1")
    assert [p["n"] for p in queue.claim(QUEUE, "task-1", limit=2)] == [2]


def test_finish_leaves_nothing_inflight(store, queue, redis_client):
    admit(store, 0)
    queue.claim(QUEUE, "task-1", limit=10)
    queue.finish(QUEUE, "task-1")
    assert redis_client.zcard(store.keys.stage_inflight_index()) == 0
    assert not redis_client.exists(store.keys.stage_inflight(QUEUE, "task-1"))


def test_sweep_puts_a_dead_workers_batch_back_first_in_line(store, queue, redis_client):
    for i in range(4):
        admit(store, i)
    redis_client.delete(QUEUE)  # the drain task a worker took
    queue.claim(QUEUE, "dead-task", limit=2)  # that worker dies: no finish
    fresh_claim_time = redis_client.zscore(store.keys.stage_inflight_index(), store.keys.stage_inflight(QUEUE, "dead-task"))
    assert queue.sweep(now=fresh_claim_time + 1) == 0  # not stale yet
    assert queue.sweep(now=fresh_claim_time + stage_queue.STALE_AFTER_SECONDS + 1) == 2
    assert len(drain_tasks(redis_client)) == 1  # the drain queued for the two left serves all four
    assert [p["n"] for p in queue.claim(QUEUE, "task-2", limit=10)] == [0, 1, 2, 3]


def test_sweep_queues_a_drain_for_payloads_whose_drain_was_lost(store, queue, redis_client):
    admit(store, 0)
    redis_client.delete(QUEUE, store.keys.drain_flag(QUEUE))  # the drain message and its flag are gone
    queue.sweep(now=0)
    assert len(drain_tasks(redis_client)) == 1
    queue.sweep(now=0)
    assert len(drain_tasks(redis_client)) == 1  # one is waiting: no second one


def test_depths_show_what_waits_and_what_drains_hold(store, queue, redis_client):
    for i in range(5):
        admit(store, i)
    queue.claim(QUEUE, "task-1", limit=2)
    now = float(redis_client.zscore(store.keys.stage_inflight_index(), store.keys.stage_inflight(QUEUE, "task-1")))
    depths = {d.queue: d for d in queue.depths(now + 3)}
    assert (depths[QUEUE].waiting, depths[QUEUE].claimed, depths[QUEUE].batches) == (3, 2, 1)
    assert depths[QUEUE].oldest_claim_seconds == 3.0
    assert (depths["inbound"].waiting, depths["inbound"].claimed, depths["inbound"].oldest_claim_seconds) == (0, 0, None)


def test_pushed_inbound_items_wait_for_one_inbound_drain(queue, redis_client):
    queue.push("inbound", [{"source": "smpp", "n": 1}, {"source": "smpp", "n": 2}])
    queue.push("inbound", [{"source": "webhook_dr", "n": 3}])
    [drain] = [json.loads(raw) for raw in redis_client.lrange("inbound", 0, -1)]
    assert drain["headers"]["task"] == "smsagg.inbound.drain"
    assert [i["n"] for i in queue.claim("inbound", "task-1", limit=500)] == [1, 2, 3]
