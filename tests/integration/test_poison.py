"""Errors classified as data (issue 12, part 2): a payload that always fails is set aside
on its stage's dead letters, the rest of its batch goes on, and the poison is visible
(``smsagg queues``) and replayable — through each stage, with real workers: the MT
drain, the inbound drain, the callback sender and the bulk fan-out."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import select

from app.adapters import stage_queue
from app.adapters.callback_queue import enqueue_callbacks
from app.adapters.redis_scripts import RedisKeys
from app.adapters.stage_queue import StageQueue
from app.bulk.store import BulkStore
from app.db.models import Callback, Message, MoMessage
from app.db.session import session_scope
from app.web import create_app
from tests.integration.bulk.conftest import call, entries
from tests.integration.bulk.conftest import params as bulk_params
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_delivery import MT_QUEUES, submitted_or_final, use_simulator
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready
from tests.unit.callbacks.support import make_account, make_callback

pytestmark = pytest.mark.integration


def dead_counts(cli) -> dict[str, int]:
    return {row["queue"]: row["dead"] for row in json.loads(cli("queues", "--json"))}


def test_a_poison_mt_payload_is_set_aside_and_the_rest_of_its_batch_is_delivered(
        gateway, client, cli, redis_client, tmp_path):
    stages = StageQueue(redis_client, gateway.key_prefix)
    pending = RedisKeys(gateway.key_prefix).stage_pending("mt.bulk")
    assert submit(client, "POST", params(message_id="good-1")) == 0
    redis_client.lpush(pending, stage_queue.item({"id": "poison-1", "account_id": 1}))  # no destination, no text
    redis_client.lpush(pending, "not even JSON")
    assert submit(client, "POST", params(message_id="good-2")) == 0
    log = tmp_path / "worker.log"
    with running_simulator() as smsc:
        use_simulator(gateway, smsc.port)
        with running(["worker", "--queues", MT_QUEUES, "--pool", "threads", "--concurrency", "4"], gateway, log,
                     ready=worker_ready(log)):
            for name in ("good-1", "good-2"):
                wait_until(lambda: submitted_or_final(gateway, name), timeout=60)
            wait_until(lambda: stages.dead_count("mt.bulk") == 2)
            dead = {entry.item: entry for entry in stages.dead_letters("mt.bulk")}
            assert dead["not even JSON"].error.startswith("JSONDecodeError")
            assert "KeyError" in dead[stage_queue.item({"id": "poison-1", "account_id": 1})].error
            assert dead_counts(cli)["mt.bulk"] == 2
            listed = json.loads(cli("queues", "dead", "mt.bulk", "--json"))
            assert {entry["id"] for entry in listed} == {entry.id for entry in dead.values()}

            assert "replayed 2" in cli("queues", "replay", "mt.bulk", "--all")
            wait_until(lambda: stages.dead_count("mt.bulk") == 2 and
                       {e.id for e in stages.dead_letters("mt.bulk")}.isdisjoint({e.id for e in dead.values()}))
        assert len(smsc.messages) == 2  # the good ones, once each; the replayed poison failed again, alone
    assert "unknown queue" in cli("queues", "replay", "mt.nowhere", "--all", ok=False)
    assert "no dead letter" in cli("queues", "replay", "mt.bulk", "--id", "nope", ok=False)


def test_a_poison_inbound_item_is_set_aside_and_the_rest_of_its_batch_is_recorded(
        gateway, cli, redis_client, tmp_path):
    stages = StageQueue(redis_client, gateway.key_prefix)
    mo = {"source": "webhook_mo", "carrier": 99901, "fields": {"from": "12025550100", "to": "99222", "text": "hi"}}
    poison = {"source": "smpp", "carrier": 99901, "pdu": "a PDU that is a string"}
    stages.push("inbound", [mo, poison, {**mo, "fields": {**mo["fields"], "text": "again"}}])
    log = tmp_path / "worker.log"
    with running(["worker", "--queues", "inbound"], gateway, log, ready=worker_ready(log)):
        wait_until(lambda: stages.dead_count("inbound") == 1, timeout=30)
        with session_scope(gateway.database_url) as session:
            texts = set(session.scalars(select(MoMessage.text)))
        assert texts == {"hi", "again"}
        [entry] = stages.dead_letters("inbound")
        assert json.loads(entry.item) == poison and entry.error.startswith("AttributeError")
        assert dead_counts(cli)["inbound"] == 1
        assert "replayed 1" in cli("queues", "replay", "inbound", "--id", entry.id)
        wait_until(lambda: stages.dead_count("inbound") == 1 and stages.dead_letters("inbound")[0].id != entry.id)


def test_a_poison_callback_is_dead_lettered_and_the_rest_of_its_batch_is_sent(settings, queues, cli, redis_client,
                                                                              tmp_path):
    with Receiver() as receiver:
        account_id, _ = make_account(settings.database_url, "acme", dr_url=receiver.url("/dr"))
        good = [make_callback(settings.database_url, account_id, receiver.url("/dr"), message_id=f"m{i}")
                for i in range(2)]
        poison = make_callback(settings.database_url, account_id, receiver.url("/dr"), message_id="m-poison")
        with session_scope(settings.database_url) as session:
            session.get(Callback, poison).fields = [["message_id"]]  # a field without a value
        enqueue_callbacks(redis_client, [good[0], poison, good[1]])
        log = tmp_path / "worker.log"
        with running(["worker", "--queues", "callbacks", "--pool", "threads", "--concurrency", "4"], settings, log,
                     ready=worker_ready(log)):
            wait_until(lambda: len(receiver.received("/dr")) == 2, timeout=30)

            def row():
                with session_scope(settings.database_url) as session:
                    found = session.get(Callback, poison)
                    return found.status, found.last_error

            wait_until(lambda: row()[0] == "dead")
            assert row()[1].startswith("cannot be sent: ValueError")
            assert dead_counts(cli)["callbacks"] == 1
            assert [row["id"] for row in json.loads(cli("callbacks", "list", "--failed", "--json"))] == [poison]
            cli("callbacks", "replay", poison)
            wait_until(lambda: row()[0] == "dead" and "cannot be sent" in (row()[1] or ""))
        assert len(receiver.received("/dr")) == 2


def test_a_destination_the_fan_out_cannot_build_is_set_aside_and_the_rest_goes_out(
        gateway, redis_client, cli, tmp_path):
    client = create_app(gateway).test_client()
    numbers = ["12025550101", "12025550102", "12025550103"]
    result = entries(call(client, "POST", "/bulksms/bulksms", bulk_params(destination=",".join(numbers))))
    batch_id = result[0][2][:24]
    store = BulkStore(redis_client, gateway.key_prefix)
    destinations = store.keys.batch_destinations(batch_id)
    original = redis_client.lindex(destinations, 1)
    redis_client.lset(destinations, 1, b"12025550102|" + original.split(b"|")[1] + b"|not-a-price")
    stages = StageQueue(redis_client, gateway.key_prefix)
    log = tmp_path / "worker.log"

    def recorded() -> set[str]:
        with session_scope(gateway.database_url) as session:
            return set(session.scalars(select(Message.phone_number).where(Message.id.like(batch_id + "%"))))

    with running(["worker", "--queues", "mt.bulk"], gateway, log, ready=worker_ready(log)):
        wait_until(lambda: recorded() == {numbers[0], numbers[2]} and stages.dead_count("mt.bulk") == 1, timeout=60)
        [entry] = stages.dead_letters("mt.bulk")
        assert (entry.kind, entry.task, entry.args) == ("task", "smsagg.bulk.fanout", [batch_id, [1]])
        assert entry.error.startswith("ValueError")
        redis_client.lset(destinations, 1, original)  # the operator fixes what made it fail
        assert "replayed 1" in cli("queues", "replay", "mt.bulk", "--id", entry.id)
        wait_until(lambda: recorded() == set(numbers), timeout=60)
    assert stages.dead_count("mt.bulk") == 0
