"""A real Celery worker consumes the real priority queues the ingress fills, and
records each accepted message with its events (idempotently). The carrier here
(HTTP on a closed port) never answers, so delivery only retries."""

from __future__ import annotations

import json

from sqlalchemy import select

from app.adapters import stage_queue
from app.adapters.redis_scripts import RedisKeys
from app.db.models import Message, MessageEvent, MessagePart
from app.db.session import session_scope
from app.domain.states import MessageState
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready


def recorded(database_url, client_message_id):
    with session_scope(database_url) as session:
        message = session.scalar(select(Message).where(Message.client_message_id == client_message_id))
        if message is None:
            return None
        events = [e.kind for e in session.scalars(select(MessageEvent).where(MessageEvent.message_id == message.id)
                                                   .order_by(MessageEvent.id))]
        parts = list(session.scalars(select(MessagePart).where(MessagePart.message_id == message.id)))
        return message, events, parts


def test_worker_records_messages_from_every_priority_queue(gateway, client, tmp_path, redis_client):
    log = tmp_path / "worker.log"
    queues = "mt.interactive,mt.interactive_low,mt.bulk,mt.bulk_low"
    with running(["worker", "--queues", queues], gateway, log, ready=worker_ready(log)):
        for priority in ("INTERACTIVE", "INTERACTIVE_LOW", "BULK", "BULK_LOW"):
            assert submit(client, "POST", params(message_id=f"p-{priority}", priority=priority)) == 0
        assert submit(client, "POST", params(message_id="routed-to-nowhere", phone_number="447700900000")) == 0
        assert submit(client, "POST", params(
            message_id="mms", receipt="TRUE", app_id="app-7",
            **{"mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "iVBORw=="})) == 0
        wait_until(lambda: recorded(gateway.database_url, "mms") and recorded(gateway.database_url, "routed-to-nowhere"))
        for priority in ("INTERACTIVE", "INTERACTIVE_LOW", "BULK", "BULK_LOW"):
            wait_until(lambda: recorded(gateway.database_url, f"p-{priority}"))

    message, events, _ = recorded(gateway.database_url, "p-INTERACTIVE")
    assert message.state == MessageState.ACCEPTED and message.carrier_id == 99901
    assert message.priority == "INTERACTIVE" and events[:2] == ["accepted", "routed"]

    unrouted, events, _ = recorded(gateway.database_url, "routed-to-nowhere")
    assert unrouted.state == MessageState.REJECTED and unrouted.result_code == 3
    assert events == ["accepted", "rejected"]

    mms, _, parts = recorded(gateway.database_url, "mms")
    assert mms.receipt and mms.app_id == "app-7" and mms.mms_content_type.startswith("multipart/related")
    assert [p.content_type for p in sorted(parts, key=lambda p: p.position)][:2] == ["application/smil", "text/plain; charset=utf-8"]


def test_a_payload_handled_twice_is_recorded_once(gateway, client, tmp_path, redis_client):
    assert submit(client, "POST", params(message_id="twice")) == 0
    pending = RedisKeys(gateway.key_prefix).stage_pending("mt.bulk")
    payload = redis_client.lindex(pending, 0)
    redis_client.lpush(pending, payload)  # what a batch put back by the sweeper after all looks like
    redis_client.lpush("mt.bulk", stage_queue.drain_message("mt.bulk"))
    log = tmp_path / "worker.log"
    with running(["worker", "--queues", "mt.bulk"], gateway, log, ready=worker_ready(log)):
        wait_until(lambda: log.read_bytes().count(b"smsagg.mt.bulk[") >= 4)  # two drains received and done
    message, events, _ = recorded(gateway.database_url, "twice")
    assert events.count("accepted") == 1 and events.count("routed") == 1
    assert json.loads(payload)["id"] == message.id
