"""Receipts and MO through the inbound service (fakeredis, a real database):
seed 000 "Message State" and "Result Code" tables, forward-only states, held
receipts, concatenated MO, the callbacks outbox."""

from __future__ import annotations

import base64
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from app.db.models import Callback, Message, MessageEvent, MoMessage, MoPart, SegmentSubmit, UnmatchedReceipt
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.inbound import MO_PARTS_TIMEOUT, InboundService, process_items

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=timezone.utc)


@pytest.fixture
def world(database_url):
    with session_scope(database_url) as session:
        svc.create_account(session, "acme", "pw", senders=("99222",), default_max_length=1600,
                           options=AccountOptions(dr_url="https://client.example/dr", mo_url="https://client.example/mo"))
        svc.add_carrier(session, 7, "smsc", connector="smpp", settings={"host": "h", "port": 1, "system_id": "s"},
                        throughput=None)
    return database_url, InboundService()


def sent_message(database_url, *, segments=1, receipt=True, message_id="m1", app_id="app-1"):
    """A message the SMSC acknowledged, segment n with SMSC id 'a0n'."""
    with session_scope(database_url) as session:
        message = Message(id=message_id, account_id=1, client_message_id=f"client-{message_id}", phone_number="447700900001",
                          sender="99222", text="hi", priority="BULK", receipt=receipt, app_id=app_id,
                          conversation_id=None, carrier_id=7, segments=segments, state=MessageState.ACCEPTED,
                          accepted_at=NOW, options={})
        session.add(message)
        for seq in range(1, segments + 1):
            session.add(SegmentSubmit(message=message, seq=seq, total=segments, carrier_id=7,
                                      smsc_message_id=f"a0{seq}", state=MessageState.ACCEPTED))


def receipt_item(smsc_id, stat="DELIVRD", *, tlv_id=None, tlv_state=None, esm_class=0x04, text=None):
    body = text if text is not None else (f"id:{smsc_id} sub:001 dlvrd:001 submit date:2611221200 "
                                          f"done date:2611221201 stat:{stat} err:000 text:hi")
    tlvs = {}
    if tlv_id is not None:
        tlvs["30"] = tlv_id
    if tlv_state is not None:
        tlvs["1063"] = tlv_state
    return {"source": "smpp", "carrier": 7, "pdu": {
        "source_addr": "447700900001", "destination_addr": "99222", "esm_class": esm_class, "data_coding": 0,
        "short_message": base64.b64encode(body.encode()).decode(), "tlvs": tlvs}}


def process(database_url, service, *items, now=NOW):
    with session_scope(database_url) as session:
        process_items(service, session, list(items), now)


def state(database_url, message_id="m1"):
    with session_scope(database_url) as session:
        message = session.get(Message, message_id)
        callbacks = [dict(c.fields) for c in session.scalars(select(Callback).where(Callback.message_id == message_id)
                                                             .order_by(Callback.created_at))]
        events = [e.kind for e in session.scalars(select(MessageEvent).where(MessageEvent.message_id == message_id))]
        return MessageState(message.state), message.result_code, callbacks, events


def test_delivered_receipt_moves_the_message_and_queues_the_seed_dr_fields(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("a01"))
    current, result_code, callbacks, events = state(database_url)
    assert current is MessageState.DELIVERED and result_code == 0
    assert callbacks == [{"type": "receipt", "message_id": "client-m1", "message_state": "2", "result_code": "0",
                          "app_id": "app-1"}]
    assert events == ["receipt"]


@pytest.mark.parametrize("stat,expected_state,expected_code", [
    ("UNDELIV", MessageState.UNDELIVERABLE, "1"), ("EXPIRED", MessageState.EXPIRED, "1"),
    ("REJECTD", MessageState.REJECTED, "1"), ("DELETED", MessageState.DELETED, "99")])
def test_failure_receipts_map_to_the_seed_tables(world, stat, expected_state, expected_code):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("a01", stat))
    current, _, callbacks, _ = state(database_url)
    assert current is expected_state
    assert callbacks[0]["message_state"] == str(int(expected_state)) and callbacks[0]["result_code"] == expected_code


def receipt_with_err(smsc_id, stat, err):
    return receipt_item(smsc_id, text=f"id:{smsc_id} sub:001 dlvrd:000 submit date:2611221200 "
                                      f"done date:2611221201 stat:{stat} err:{err} text:hi")


@pytest.mark.parametrize("stat,err,expected_code", [
    ("UNDELIV", "001", 3),          # the carrier's (stat, err) rule
    ("REJECTD", "042", 5),          # its (stat, any) rule
    ("UNDELIV", "0x00000058", 6),   # an explicit command_status, default table (ESME_RTHROTTLED)
    ("UNDELIV", "999", 1),          # an err nobody knows: the stat's default
])
def test_a_failure_receipt_reads_err_through_the_carrier_table(world, stat, err, expected_code):
    database_url, service = world
    with session_scope(database_url) as session:
        svc.set_carrier_result_codes(session, 7, {"receipt": {"UNDELIV:1": 3, "REJECTD": 5}})
    sent_message(database_url)
    process(database_url, service, receipt_with_err("a01", stat, err))
    _, result_code, callbacks, _ = state(database_url)
    assert result_code == expected_code and callbacks[0]["result_code"] == str(expected_code)


def test_a_broken_carrier_table_falls_back_to_the_default(world):
    database_url, service = world
    with session_scope(database_url) as session:
        session.get(svc.Carrier, 7).settings = {"host": "h", "result_codes": {"receipt": "nonsense"}}
    sent_message(database_url)
    process(database_url, service, receipt_with_err("a01", "UNDELIV", "001"))
    assert state(database_url)[1] == 1


def test_the_err_of_the_receipt_that_ends_a_long_message_decides(world):
    database_url, service = world
    with session_scope(database_url) as session:
        svc.set_carrier_result_codes(session, 7, {"receipt": {"*:88": 6}})
    sent_message(database_url, segments=2)
    process(database_url, service, receipt_with_err("a01", "DELIVRD", "000"), receipt_with_err("a02", "REJECTD", "088"))
    assert state(database_url)[:2] == (MessageState.REJECTED, 6)


def test_tlvs_win_over_the_text(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("zzz", "DELIVRD", tlv_id="a01", tlv_state=5))
    assert state(database_url)[0] is MessageState.UNDELIVERABLE


@pytest.mark.parametrize("variant", ["A01", "0000a01", "2561"])  # case, zero padding, decimal reading of 0xa01
def test_smsc_ids_in_another_base_or_padding_still_match(world, variant):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item(variant))
    assert state(database_url)[0] is MessageState.DELIVERED


def test_duplicate_receipts_change_the_state_once(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("a01"), receipt_item("a01"))
    process(database_url, service, receipt_item("a01"))
    _, _, callbacks, events = state(database_url)
    assert len(callbacks) == 1 and events == ["receipt"]


def test_late_enroute_never_overwrites_delivered(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("a01", "DELIVRD"), receipt_item("a01", "ENROUTE"))
    current, _, callbacks, _ = state(database_url)
    assert current is MessageState.DELIVERED and [c["message_state"] for c in callbacks] == ["2"]


def test_intermediate_then_final_are_both_reported_in_order(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("a01", "ENROUTE", esm_class=0x20))
    process(database_url, service, receipt_item("a01", "DELIVRD"))
    assert [c["message_state"] for c in state(database_url)[2]] == ["1", "2"]


def test_multi_segment_is_delivered_when_all_segments_are(world):
    database_url, service = world
    sent_message(database_url, segments=2)
    process(database_url, service, receipt_item("a01"))
    assert state(database_url)[0] is MessageState.ACCEPTED
    process(database_url, service, receipt_item("a02"))
    assert state(database_url)[0] is MessageState.DELIVERED


def test_first_segment_failure_decides(world):
    database_url, service = world
    sent_message(database_url, segments=2)
    process(database_url, service, receipt_item("a02", "UNDELIV"))
    process(database_url, service, receipt_item("a01", "DELIVRD"))
    assert state(database_url)[0] is MessageState.UNDELIVERABLE


def test_no_dr_callback_without_receipt_requested(world):
    database_url, service = world
    sent_message(database_url, receipt=False)
    process(database_url, service, receipt_item("a01"))
    current, _, callbacks, _ = state(database_url)
    assert current is MessageState.DELIVERED and callbacks == []


def test_receipt_before_its_submit_resp_is_held_then_matched(world):
    database_url, service = world
    process(database_url, service, receipt_item("a01"))
    with session_scope(database_url) as session:
        assert [h.status for h in session.scalars(select(UnmatchedReceipt))] == ["pending"]
    sent_message(database_url)
    with session_scope(database_url) as session:
        assert service.rematch_pending(session, NOW) == 1
    assert state(database_url)[0] is MessageState.DELIVERED


def test_receipt_that_never_matches_is_kept_visible(world):
    database_url, service = world
    process(database_url, service, receipt_item("ffff"))
    with session_scope(database_url) as session:
        service.rematch_pending(session, NOW + timedelta(hours=2))
        assert [h.status for h in session.scalars(select(UnmatchedReceipt))] == ["unmatched"]


@pytest.mark.parametrize("text", ["garbage with no id", "", "id: stat:"])
def test_malformed_receipt_text_is_kept_not_raised(world, text):
    database_url, service = world
    process(database_url, service, receipt_item("x", text=text))
    with session_scope(database_url) as session:
        assert [h.status for h in session.scalars(select(UnmatchedReceipt))] == ["malformed"]


def mo_item(text_bytes: bytes, *, udh: bytes = b"", data_coding=0, source="447700900555", to="99222"):
    return {"source": "smpp", "carrier": 7, "pdu": {
        "source_addr": source, "destination_addr": to, "esm_class": 0x40 if udh else 0, "data_coding": data_coding,
        "short_message": base64.b64encode(udh + text_bytes).decode(), "tlvs": {}}}


def test_concatenated_mo_is_reassembled_before_the_callback(world):
    database_url, service = world
    process(database_url, service, mo_item(b"world!", udh=bytes([5, 0, 3, 9, 2, 2])))
    with session_scope(database_url) as session:
        assert session.scalars(select(MoMessage)).all() == []
    process(database_url, service, mo_item(b"Hello, ", udh=bytes([5, 0, 3, 9, 2, 1])))
    with session_scope(database_url) as session:
        [mo] = session.scalars(select(MoMessage)).all()
        [callback] = session.scalars(select(Callback).where(Callback.kind == "mo")).all()
        assert mo.text == "Hello, world!" and mo.account_id == 1
        assert dict(callback.fields) == {"type": "MO", "message_id": mo.id, "shortcode": "99222",
                                         "phone_number": "447700900555", "carrier": "7", "message": "Hello, world!"}


def test_mo_for_no_account_is_kept(world):
    database_url, service = world
    process(database_url, service, mo_item(b"hi", to="11111"))
    with session_scope(database_url) as session:
        [mo] = session.scalars(select(MoMessage)).all()
        assert mo.account_id is None and session.scalars(select(Callback)).all() == []


def test_ucs2_mo_is_decoded(world):
    database_url, service = world
    process(database_url, service, mo_item("Grüße 🎉".encode("utf-16-be"), data_coding=8))
    with session_scope(database_url) as session:
        assert session.scalars(select(MoMessage)).one().text == "Grüße 🎉"


def test_webhook_receipt_and_mo(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, {"source": "webhook_dr", "carrier": 7, "fields": {"message_id": "a01", "status": "5"}},
            {"source": "webhook_mo", "carrier": 7, "fields": {"from": "447700900555", "to": "99222", "text": "yo"}})
    assert state(database_url)[0] is MessageState.UNDELIVERABLE
    with session_scope(database_url) as session:
        assert session.scalars(select(MoMessage)).one().text == "yo"


def test_mm7_delivery_reports_and_mms_mo_are_read_like_webhooks(world):
    """What ``/carriers/<id>/mm7`` queues: a report for an MMSC id we know, one for an id
    we do not (held, like an SMPP receipt), and an MMS MO with its attachments."""
    database_url, service = world
    sent_message(database_url)
    process(database_url, service,
            {"source": "mm7_dr", "carrier": 7, "fields": {"message_id": "A01", "status": "2", "err": "Retrieved"}},
            {"source": "mm7_dr", "carrier": 7, "fields": {"message_id": "unknown-7", "status": "2", "err": "Retrieved"}},
            {"source": "mm7_mo", "carrier": 7, "fields": {"from": "447700900555", "to": "99222", "text": "pic",
                                                          "attachments": [["image/png", "iVBORw=="]]}})
    current, result_code, callbacks, _ = state(database_url)
    assert current is MessageState.DELIVERED and result_code == 0 and callbacks[-1]["message_state"] == "2"
    with session_scope(database_url) as session:
        [held] = session.scalars(select(UnmatchedReceipt)).all()
        assert (held.status, held.smsc_message_id) == ("pending", "unknown-7")
        mo = session.scalars(select(MoMessage)).one()
        assert (mo.text, mo.attachments, mo.shortcode) == ("pic", [["image/png", "iVBORw=="]], "99222")
        [mo_callback] = session.scalars(select(Callback).where(Callback.kind == "mo")).all()
        assert ["mms_attachment[0].content_type", "image/png"] in mo_callback.fields
        assert ["mms_attachment[0].content", "iVBORw=="] in mo_callback.fields


def test_receipts_of_one_message_in_one_batch_keep_their_order(world):
    database_url, service = world
    sent_message(database_url)
    process(database_url, service, receipt_item("a01", "ENROUTE", esm_class=0x20), receipt_item("a01", "DELIVRD"))
    current, _, callbacks, events = state(database_url)
    assert current is MessageState.DELIVERED and events == ["receipt", "receipt"]
    assert [c["message_state"] for c in callbacks] == ["1", "2"]


def test_a_batch_applies_every_receipt_and_keeps_the_malformed_one(world):
    database_url, service = world
    for n in range(1, 4):
        sent_message(database_url, message_id=f"m{n}")
    with session_scope(database_url) as session:  # distinct SMSC ids per message
        for n in range(1, 4):
            session.execute(update(SegmentSubmit).where(SegmentSubmit.message_id == f"m{n}")
                            .values(smsc_message_id=f"b{n}"))
    process(database_url, service, receipt_item("b1"), receipt_item("x", text="garbage"), receipt_item("b2", "UNDELIV"),
            receipt_item("b3"), receipt_item("c4"))
    assert [state(database_url, f"m{n}")[0] for n in range(1, 4)] == [
        MessageState.DELIVERED, MessageState.UNDELIVERABLE, MessageState.DELIVERED]
    with session_scope(database_url) as session:
        assert sorted(h.status for h in session.scalars(select(UnmatchedReceipt))) == ["malformed", "pending"]


def test_a_blank_smsc_id_is_malformed(world):
    database_url, service = world
    blank = {"source": "webhook_dr", "carrier": 7, "fields": {"message_id": " ", "status": "2"}}
    process(database_url, service, blank)
    with session_scope(database_url) as session:
        assert [h.status for h in session.scalars(select(UnmatchedReceipt))] == ["malformed"]


def test_an_incomplete_concatenated_mo_is_released_after_the_timeout(world, caplog):
    database_url, service = world
    process(database_url, service, mo_item(b"three", udh=bytes([5, 0, 3, 9, 3, 3])),
            mo_item(b"one ", udh=bytes([5, 0, 3, 9, 3, 1])))
    with session_scope(database_url) as session:
        assert service.release_expired_mo(session, NOW + MO_PARTS_TIMEOUT - timedelta(seconds=1)) == 0
    with session_scope(database_url) as session:
        assert session.scalars(select(MoMessage)).all() == []
        assert service.release_expired_mo(session, NOW + MO_PARTS_TIMEOUT) == 1
    with session_scope(database_url) as session:
        [mo] = session.scalars(select(MoMessage)).all()
        [callback] = session.scalars(select(Callback).where(Callback.kind == "mo")).all()
        assert mo.text == "one three" and mo.account_id == 1 and mo.carrier_id == 7
        assert dict(callback.fields)["message"] == "one three"
        assert session.scalars(select(MoPart)).all() == []
    assert "parts [1, 3] of 3" in caplog.text
    # A part arriving after the release starts a new MO of its own; nothing is lost.
    process(database_url, service, mo_item(b"two ", udh=bytes([5, 0, 3, 9, 3, 2])))
    with session_scope(database_url) as session:
        assert [p.seq for p in session.scalars(select(MoPart))] == [2]


def test_receipts_are_counted_held_then_matched_or_unmatched_once_committed(world):
    from tests.counting import counted

    database_url, service = world
    with counted() as recorder:
        process(database_url, service, receipt_item("a01"), receipt_item("ffff"))
        sent_message(database_url)
        with session_scope(database_url) as session:
            service.rematch_pending(session, NOW)
        with session_scope(database_url) as session:
            service.rematch_pending(session, NOW + timedelta(hours=2))
        with pytest.raises(RuntimeError), session_scope(database_url) as session:
            process_items(service, session, [receipt_item("a01")], NOW)
            raise RuntimeError("rolled back: not counted")
    assert {labels: n for (name, labels, _), n in recorder.take().items() if name == "smsagg_receipts_total"} == \
        {("7", "held"): 2, ("7", "matched"): 1, ("7", "unmatched"): 1}
