"""Delivery end to end over real sockets: ingress -> Redis -> a real Celery worker ->
the SMPP connector -> the SMSC simulator over TCP, in its normal and misbehaving modes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app.db.models import Carrier, Message, MessageEvent
from app.db.session import session_scope
from app.domain.states import MessageState
from tests.integration.simulator import running_simulator
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready

MT_QUEUES = "mt.interactive,mt.interactive_low,mt.bulk,mt.bulk_low"


def use_simulator(settings, port: int, **carrier_settings) -> None:
    with session_scope(settings.database_url) as session:
        session.get(Carrier, 99901).connector = "smpp"
        session.get(Carrier, 99901).settings = {"host": "127.0.0.1", "port": port, "system_id": "smsagg",
                                                "password": "pw", "response_timeout": 3, **carrier_settings}


def state_of(settings, client_message_id):
    with session_scope(settings.database_url) as session:
        message = session.scalar(select(Message).where(Message.client_message_id == client_message_id))
        if message is None:
            return None
        kinds = [e.kind for e in session.scalars(
            select(MessageEvent).where(MessageEvent.message_id == message.id).order_by(MessageEvent.id))]
        return MessageState(message.state), message.result_code, message.segments, kinds


def submitted_or_final(settings, client_message_id):
    """The message once the SMSC acknowledged it (event ``submitted``) or it ended."""
    found = state_of(settings, client_message_id)
    return found if found and ("submitted" in found[3] or found[0].is_final) else None


@pytest.fixture
def worker(gateway, tmp_path):
    log = tmp_path / "worker.log"

    def start():
        return running(["worker", "--queues", MT_QUEUES, "--pool", "threads", "--concurrency", "10"],
                       gateway, log, ready=worker_ready(log))

    return start


def test_single_and_multi_segment_messages_arrive_reassembled_and_encoded(gateway, client, worker):
    texts = {
        "gsm": "Plain GSM text with extension chars: {[~]} ^ € |",
        "long": "Long message. " * 30,
        "ucs2": "Emoji 🎉 and Ελληνικά, twice as long " * 3,
    }
    with running_simulator() as smsc, worker():
        use_simulator(gateway, smsc.port)
        for name, text in texts.items():
            assert submit(client, "POST", params(message_id=name, message=text, receipt="TRUE")) == 0
        received = {m.text: m for m in smsc.wait_for_messages(3)}
        for name in texts:
            wait_until(lambda: submitted_or_final(gateway, name))
    assert set(received) == set(texts.values())
    assert received[texts["gsm"]].data_coding == 0 and received[texts["gsm"]].segments == 1
    assert received[texts["long"]].segments == 3 and received[texts["long"]].data_coding == 0
    assert received[texts["ucs2"]].data_coding == 8 and received[texts["ucs2"]].segments == 2
    assert all(m.registered_delivery == 1 for m in received.values())
    state, _, segments, kinds = state_of(gateway, "long")
    assert state is MessageState.ACCEPTED and segments == 3 and kinds == ["accepted", "routed", "submitted"]


def test_sar_carrier_setting_sends_sar_tlvs(gateway, client, worker):
    with running_simulator() as smsc, worker():
        use_simulator(gateway, smsc.port, concat_mode="sar")
        assert submit(client, "POST", params(message_id="sar", message="S" * 300)) == 0
        [message] = smsc.wait_for_messages(1)
    assert message.text == "S" * 300 and message.segments == 2 and not message.esm_class & 0x40


def test_throttling_smsc_leads_to_retries_then_delivery(gateway, client, worker):
    with running_simulator(throttle_per_second=2) as smsc, worker():
        use_simulator(gateway, smsc.port)
        for i in range(6):
            assert submit(client, "POST", params(message_id=f"t{i}")) == 0
        smsc.wait_for_messages(6, timeout=30)
        for i in range(6):
            wait_until(lambda: submitted_or_final(gateway, f"t{i}"), timeout=30)
    kinds = [state_of(gateway, f"t{i}")[3] for i in range(6)]
    assert all(k[-1] == "submitted" for k in kinds)
    assert any("retry" in k for k in kinds)


def test_destination_the_smsc_refuses_ends_rejected_not_retried(gateway, client, worker):
    with running_simulator(reject_destination_prefix="1202555") as smsc, worker():
        use_simulator(gateway, smsc.port)
        assert submit(client, "POST", params(message_id="bad-dest")) == 0
        found = wait_until(lambda: submitted_or_final(gateway, "bad-dest"))
    state, result_code, _, kinds = found
    assert state is MessageState.REJECTED and result_code == 1 and "retry" not in kinds
    assert smsc.messages == []


def test_dropped_connections_are_reconnected_and_nothing_is_lost(gateway, client, worker):
    with running_simulator(drop_after_submits=3) as smsc, worker():
        use_simulator(gateway, smsc.port)
        for i in range(10):
            assert submit(client, "POST", params(message_id=f"d{i}")) == 0
        for i in range(10):
            wait_until(lambda: submitted_or_final(gateway, f"d{i}"), timeout=60)
        received = smsc.wait_for_messages(10)
    assert all(state_of(gateway, f"d{i}")[3][-1] == "submitted" for i in range(10))
    assert len(received) == 10  # each accepted exactly once: dropped submits were never stored


def test_unreachable_carrier_is_retried_with_the_message_kept(gateway, client, worker):
    with worker():
        use_simulator(gateway, 1)  # nothing listens on port 1
        assert submit(client, "POST", params(message_id="down")) == 0
        wait_until(lambda: state_of(gateway, "down") and "retry" in state_of(gateway, "down")[3], timeout=30)
    state, *_ = state_of(gateway, "down")
    assert state is MessageState.ACCEPTED
