"""Stages drained in batches (app.adapters.stage_queue) against fakeredis: what the
ingress and the inbound side push, what a drain claims, and that nothing claimed is
ever lost: leases, delayed items, dead letters."""

from __future__ import annotations

import base64
import json
import time

import fakeredis
import pytest

from app.adapters import stage_queue
from app.adapters.stage_queue import StageQueue
from app.adapters.redis_scripts import Admission, RedisStore
from tests.integration.workers import wait_until

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


@pytest.fixture
def short_leases(redis_client):
    """A stage whose leases lapse after 0.2 s (renewed by hand in these tests)."""
    return StageQueue(redis_client, "t:", lease_seconds=0.2, renew_every=3600)


def claim(queue: StageQueue, task_id: str, limit: int = 10, name: str = QUEUE) -> list[dict]:
    return [stage_queue.decode(raw) for raw in queue.claim(name, task_id, limit)]


def lapsed(queue: StageQueue) -> int:
    """Claims whose lease has run out, not yet swept."""
    return sum(depth.lapsed for depth in queue.depths())


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
    assert [p["n"] for p in claim(queue, "task-1", limit=3)] == [0, 1, 2]
    assert len(drain_tasks(redis_client)) == 1  # two are left: another worker may start on them
    assert [p["n"] for p in claim(queue, "task-2", limit=3)] == [3, 4]
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
    assert [p["n"] for p in claim(queue, "task-1", limit=2)] == [2]


def test_finish_leaves_nothing_inflight(store, queue, redis_client):
    admit(store, 0)
    queue.claim(QUEUE, "task-1", limit=10)
    queue.finish(QUEUE, "task-1")
    assert redis_client.zcard(store.keys.stage_inflight_index()) == 0
    assert not redis_client.exists(store.keys.stage_inflight(QUEUE, "task-1"))


def test_a_lapsed_lease_gives_the_batch_back_first_in_line(store, short_leases, redis_client):
    queue = short_leases
    for i in range(4):
        admit(store, i)
    redis_client.delete(QUEUE)  # the drain task a worker took
    claim(queue, "dead-task", limit=2)  # that worker dies: no renewal, no finish
    assert queue.sweep() == 0  # the lease still runs
    wait_until(lambda: lapsed(queue) == 1, timeout=5)
    assert queue.sweep() == 2
    assert len(drain_tasks(redis_client)) == 1  # the drain queued for the two left serves all four
    assert [p["n"] for p in claim(queue, "task-2", limit=10)] == [0, 1, 2, 3]
    assert redis_client.zcard(store.keys.stage_inflight_index()) == 1  # only task-2's claim


def test_a_live_holder_that_renews_keeps_its_batch_however_long_it_takes(store, short_leases, redis_client):
    queue = short_leases
    for i in range(3):
        admit(store, i)
    held = queue.claim(QUEUE, "slow-task", limit=3)
    inflight = store.keys.stage_inflight(QUEUE, "slow-task")
    for _ in range(5):  # five lease lengths of slow SMSC answers, renewed in between
        time.sleep(0.1)  # the slow answer itself: time passing is what the lease must survive
        assert queue.renew([inflight]) == []
        assert queue.sweep() == 0
    assert queue.claim(QUEUE, "slow-task", limit=3) == held
    queue.finish(QUEUE, "slow-task")
    assert queue.renew([inflight]) == [inflight]  # finished: nothing left to renew


def test_the_lease_keeper_thread_renews_what_the_process_holds(store, redis_client):
    queue = StageQueue(redis_client, "t:", lease_seconds=0.3, renew_every=0.05)
    admit(store, 0)
    with queue.claimed(QUEUE, "task-1", limit=10) as batch:
        time.sleep(0.8)  # far beyond the lease: the window in which no sweep may take it (kept: the test)
        assert queue.sweep() == 0
        assert [stage_queue.decode(raw)["n"] for raw in batch.items] == [0]
    assert redis_client.zcard(store.keys.stage_inflight_index()) == 0  # finished when the block ended


def test_a_failed_block_keeps_its_claim_for_a_retry_but_stops_renewing_it(store, redis_client):
    queue = StageQueue(redis_client, "t:", lease_seconds=0.3, renew_every=0.05)
    admit(store, 0)
    with pytest.raises(RuntimeError), queue.claimed(QUEUE, "task-1", limit=10):
        raise RuntimeError("the database went away")
    assert [p["n"] for p in claim(queue, "task-1")] == [0]  # Celery's retry, same task id
    wait_until(lambda: lapsed(queue) == 1, timeout=5)  # nobody renews it
    assert queue.sweep() == 1  # back in the list for any drain


def test_sweep_gives_interactive_batches_back_first(store, short_leases, redis_client):
    queue = short_leases
    queue.push("mt.bulk", [{"n": 1}])
    queue.push("mt.interactive", [{"n": 2}])
    queue.claim("mt.bulk", "bulk-task", 10)
    queue.claim("mt.interactive", "otp-task", 10)
    redis_client.delete("mt.bulk", "mt.interactive", store.keys.drain_flag("mt.bulk"),
                        store.keys.drain_flag("mt.interactive"))
    wait_until(lambda: lapsed(queue) == 2, timeout=5)
    restored_order = []
    original = queue._restore

    def spy(client, keys, args):
        restored_order.append(queue.keys.stage_of_inflight(keys[0]))
        return original(client, keys, args)

    queue._restore = spy
    assert queue.sweep() == 2
    assert restored_order == ["mt.interactive", "mt.bulk"]


def test_delayed_items_wait_for_their_time_then_go_first(store, queue, redis_client):
    admit(store, 0)
    redis_client.delete(QUEUE)
    queue.later(QUEUE, [stage_queue.item({"retry": "m-late"})], delay=0.3)
    [eta_drain] = drain_tasks(redis_client)
    assert eta_drain["headers"]["eta"] is not None  # Celery holds it until the delay is over
    assert [p.get("n") for p in claim(queue, "task-1")] == [0]  # not due yet
    queue.finish(QUEUE, "task-1")
    time.sleep(0.3)  # the delay itself (kept: nothing but time makes the item due)
    admit(store, 1)
    assert claim(queue, "task-2") == [{"retry": "m-late"}, {"id": "m1", "n": 1}]


def test_the_sweep_releases_due_delayed_items_whose_drain_was_lost(store, queue, redis_client):
    queue.later(QUEUE, [stage_queue.item({"retry": "m1"})], delay=0.1)
    redis_client.delete(QUEUE)  # the worker holding the ETA drain was killed
    assert queue.sweep() == 0
    wait_until(lambda: queue.sweep() == 1, timeout=5)  # once the item is due
    assert len(drain_tasks(redis_client)) == 1
    assert claim(queue, "task-1") == [{"retry": "m1"}]


def test_a_poison_item_is_set_aside_and_replayed_once(store, queue, redis_client):
    admit(store, 0)
    admit(store, 1)
    with queue.claimed(QUEUE, "task-1", limit=10) as batch:
        poison = batch.items[1]
        batch.set_aside(poison, KeyError("account_id"))
    [dead] = queue.dead_letters(QUEUE)
    assert (dead.kind, dead.item, dead.error) == ("item", poison, "KeyError: 'account_id'")
    assert [d.dead for d in queue.depths() if d.queue == QUEUE] == [1]
    redis_client.delete(QUEUE, store.keys.drain_flag(QUEUE))
    assert queue.replay(QUEUE, [dead.id]) == [dead.id]
    assert queue.replay(QUEUE, [dead.id]) == []  # an entry is replayed once
    assert len(drain_tasks(redis_client)) == 1
    assert claim(queue, "task-2") == [{"id": "m1", "n": 1}]
    assert queue.dead_letters(QUEUE) == []


def test_a_task_set_aside_is_replayed_as_a_task_message(queue, redis_client):
    queue.set_aside_task("callbacks", "smsagg.callbacks.send_batch", [["c1", "c2"]], ValueError("broken row"))
    [dead] = queue.dead_letters("callbacks")
    assert (dead.kind, dead.task, dead.args) == ("task", "smsagg.callbacks.send_batch", [["c1", "c2"]])
    redis_client.delete("callbacks")
    assert queue.replay("callbacks") == [dead.id]
    [message] = [json.loads(raw) for raw in redis_client.lrange("callbacks", 0, -1)]
    assert message["headers"]["task"] == "smsagg.callbacks.send_batch"
    assert json.loads(base64.b64decode(message["body"]))[0] == [["c1", "c2"]]
    redis_client.delete("callbacks")


def test_only_one_process_sweeps_per_interval(queue):
    assert queue.sweep_if_due(every=5) == 0
    assert queue.sweep_if_due(every=5) is None


def test_sweep_queues_a_drain_for_payloads_whose_drain_was_lost(store, queue, redis_client):
    admit(store, 0)
    redis_client.delete(QUEUE, store.keys.drain_flag(QUEUE))  # the drain message and its flag are gone
    queue.sweep()
    assert len(drain_tasks(redis_client)) == 1
    queue.sweep()
    assert len(drain_tasks(redis_client)) == 1  # one is waiting: no second one


def test_a_lost_drain_message_holds_nothing_up_for_long(store, redis_client):
    admit(store, 0)
    assert 0 < redis_client.ttl(store.keys.drain_flag(QUEUE)) <= 10  # the flag of a lost drain lapses soon


def test_depths_show_what_waits_and_what_drains_hold(store, queue, redis_client):
    for i in range(5):
        admit(store, i)
    queue.claim(QUEUE, "task-1", limit=2)
    queue.later(QUEUE, [stage_queue.item({"retry": "x"})], delay=60)
    claimed_at = float(redis_client.hget(store.keys.stage_claimed_at(), store.keys.stage_inflight(QUEUE, "task-1")))
    depths = {d.queue: d for d in queue.depths(claimed_at + 3)}
    assert (depths[QUEUE].waiting, depths[QUEUE].claimed, depths[QUEUE].batches) == (3, 2, 1)
    assert (depths[QUEUE].oldest_claim_seconds, depths[QUEUE].lapsed, depths[QUEUE].delayed) == (3.0, 0, 1)
    assert depths[QUEUE].dead == 0
    later = {d.queue: d for d in queue.depths(claimed_at + stage_queue.LEASE_SECONDS + 1)}
    assert later[QUEUE].lapsed == 1  # its holder stopped renewing: the next sweep gives it back
    assert (depths["inbound"].waiting, depths["inbound"].claimed, depths["inbound"].oldest_claim_seconds) == (0, 0, None)


def test_pushed_inbound_items_wait_for_one_inbound_drain(queue, redis_client):
    queue.push("inbound", [{"source": "smpp", "n": 1}, {"source": "smpp", "n": 2}])
    queue.push("inbound", [{"source": "webhook_dr", "n": 3}])
    [drain] = [json.loads(raw) for raw in redis_client.lrange("inbound", 0, -1)]
    assert drain["headers"]["task"] == "smsagg.inbound.drain"
    assert [i["n"] for i in claim(queue, "task-1", limit=500, name="inbound")] == [1, 2, 3]
