"""Inbound processing: delivery receipts and mobile-originated messages, from SMPP
``deliver_sm`` or from carriers' HTTP webhooks, in batches (one transaction each).

Receipts
  * matched to a segment by the SMSC id (Redis index first, then the segment table),
    trying every reading of the id (hex/decimal, zero padding);
  * move the segment, then the message, forward only (a late "en-route" never
    overwrites "delivered"; a duplicate changes nothing); a multi-segment message
    is delivered when all its segments are, and the first failure decides a failure;
  * each change of the message's state is an event, and — for ``receipt=TRUE`` — a
    DR callback in the outbox;
  * a receipt that matches nothing yet (it overtook its submit_sm_resp) is held as
    ``pending`` and re-matched by :func:`rematch_pending`; after ``UNMATCHED_AFTER`` it
    is kept as ``unmatched``, visible, never dropped; one that cannot be parsed is
    kept as ``malformed``.

MO messages
  * concatenated parts (UDH or SAR) are held until all have arrived, then joined;
  * assigned to the account that owns the destination shortcode/number (none: kept
    with no account, visible);
  * a stop keyword records the opt-out (see :mod:`app.bulk`), then the MO callback is
    queued like any other.
"""

from __future__ import annotations

import base64
import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.adapters.redis_correlation import SmscIdIndex
from app.db.models import Message, MessageEvent, MoMessage, MoPart, SegmentSubmit, Sender, UnmatchedReceipt
from app.domain.encoding import Alphabet, InboundPart, MalformedUdh, UnsupportedDataCoding, decode_short_message
from app.domain.encoding import reassemble
from app.domain.receipts import (
    MalformedReceipt,
    Receipt,
    combine_segment_states,
    may_transition,
    parse_receipt,
    result_code_for_state,
    smsc_id_candidates,
    state_from_stat,
)
from app.domain.states import MessageState
from app.services.callback_outbox import queue_dr_callback, queue_mo_callback

log = logging.getLogger(__name__)

UNMATCHED_AFTER = timedelta(hours=1)
ESM_RECEIPT_TYPES = 0x04 | 0x20  # SMSC delivery receipt, intermediate delivery notification
ESM_UDHI = 0x40
TAG_RECEIPTED_MESSAGE_ID, TAG_MESSAGE_STATE, TAG_MESSAGE_PAYLOAD = "30", "1063", "1060"
TAG_SAR_REF, TAG_SAR_TOTAL, TAG_SAR_SEQ = "524", "526", "527"


@dataclass(frozen=True)
class ReceiptIn:
    carrier_id: int | None
    receipt: Receipt
    raw: dict[str, Any]


def _tlv(fields: dict[str, Any], tag: str):
    value = (fields.get("tlvs") or {}).get(tag)
    if isinstance(value, dict) and "b64" in value:
        return base64.b64decode(value["b64"])
    return value


def _as_text(value) -> str | None:
    if value is None:
        return None
    return value.decode("ascii", "replace").rstrip("\0") if isinstance(value, bytes) else str(value)


def _as_int(value) -> int | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        return int.from_bytes(value, "big") if value else None
    return int(value)


def is_receipt(fields: dict[str, Any]) -> bool:
    return bool(int(fields.get("esm_class", 0)) & ESM_RECEIPT_TYPES)


def decode_part(fields: dict[str, Any]) -> InboundPart:
    """The user data of a deliver_sm, with its concatenation (UDH or SAR TLVs)."""
    payload = _tlv(fields, TAG_MESSAGE_PAYLOAD)
    short_message = payload if payload else base64.b64decode(fields.get("short_message") or "")
    udhi = bool(int(fields.get("esm_class", 0)) & ESM_UDHI)
    part = decode_short_message(short_message, int(fields.get("data_coding", 0)), udhi=udhi)
    sar_ref = _as_int(_tlv(fields, TAG_SAR_REF))
    if sar_ref is not None:
        part = InboundPart(part.alphabet, part.body, sar_ref, _as_int(_tlv(fields, TAG_SAR_TOTAL)) or 1,
                           _as_int(_tlv(fields, TAG_SAR_SEQ)) or 1)
    return part


def parse_deliver_sm_receipt(carrier_id: int, fields: dict[str, Any]) -> ReceiptIn:
    text = decode_part(fields).text or ""
    receipt = parse_receipt(
        text,
        receipted_message_id=_as_text(_tlv(fields, TAG_RECEIPTED_MESSAGE_ID)),
        message_state=_as_int(_tlv(fields, TAG_MESSAGE_STATE)),
    )
    return ReceiptIn(carrier_id, receipt, fields)


def webhook_receipt(carrier_id: int, fields: dict[str, str]) -> ReceiptIn:
    """A carrier's HTTP DR: ``message_id`` (the id it gave at submit), ``status`` (a
    stat word such as DELIVRD, or a message_state number 1-8), optional ``err``."""
    status = fields["status"].strip()
    state = MessageState(int(status)) if status.isdigit() else state_from_stat(status)
    receipt = Receipt(smsc_id=fields["message_id"].strip(), state=state, err=fields.get("err") or None,
                      submit_date=None, done_date=None)
    return ReceiptIn(carrier_id, receipt, dict(fields))


class InboundService:
    def __init__(self, smsc_ids: SmscIdIndex, stop_keywords=None):
        self.smsc_ids = smsc_ids
        self.stop_keywords = stop_keywords  # callable(session, account_id, phone, text) from app.bulk

    # -- receipts --------------------------------------------------------------

    def receive_receipt(self, session: Session, incoming: ReceiptIn, now: datetime) -> bool:
        """Apply a receipt; hold it when it matches nothing yet. Returns whether it matched."""
        target = self._match(session, incoming.carrier_id, incoming.receipt.smsc_id)
        if target is None:
            session.add(UnmatchedReceipt(carrier_id=incoming.carrier_id, smsc_message_id=incoming.receipt.smsc_id,
                                         fields=_receipt_record(incoming), received_at=now, status="pending"))
            return False
        apply_receipt(session, target, incoming.receipt, now)
        return True

    def keep_malformed(self, session: Session, carrier_id: int | None, fields: dict[str, Any], reason: str,
                       now: datetime) -> None:
        log.warning("malformed receipt from carrier %s kept: %s", carrier_id, reason)
        session.add(UnmatchedReceipt(carrier_id=carrier_id, smsc_message_id="", status="malformed", received_at=now,
                                     fields={"pdu": fields, "reason": reason}))

    def _match(self, session: Session, carrier_id: int | None, smsc_id: str) -> SegmentSubmit | None:
        found = self.smsc_ids.lookup(carrier_id, smsc_id) if carrier_id is not None else None
        if found is not None:
            message_id, seq = found
            return session.scalar(select(SegmentSubmit).where(SegmentSubmit.message_id == message_id,
                                                              SegmentSubmit.seq == seq))
        query = select(SegmentSubmit).where(SegmentSubmit.smsc_message_id.in_(smsc_id_candidates(smsc_id)))
        if carrier_id is not None:
            query = query.where(SegmentSubmit.carrier_id == carrier_id)
        return session.scalars(query.order_by(SegmentSubmit.id.desc()).limit(1)).first()

    def rematch_pending(self, session: Session, now: datetime) -> int:
        """Try held receipts again; give up (keep as ``unmatched``) after an hour."""
        matched = 0
        pending = session.scalars(select(UnmatchedReceipt).where(UnmatchedReceipt.status == "pending")
                                  .order_by(UnmatchedReceipt.id).limit(1000))
        for held in pending:
            target = self._match(session, held.carrier_id, held.smsc_message_id)
            if target is not None:
                apply_receipt(session, target, _receipt_from_record(held.fields), now)
                held.status, held.matched_message_id = "matched", target.message_id
                matched += 1
            elif now - _aware(held.received_at, now) > UNMATCHED_AFTER:
                held.status = "unmatched"
        return matched

    # -- MO ----------------------------------------------------------------------

    def receive_mo(self, session: Session, carrier_id: int | None, phone_number: str, shortcode: str,
                   part: InboundPart, now: datetime, attachments: list | None = None) -> MoMessage | None:
        """Record an MO (or one part of it); returns the whole message once complete."""
        if part.total > 1 and part.concat_ref is not None:
            part = self._collect_part(session, carrier_id or 0, phone_number, shortcode, part, now)
            if part is None:
                return None
        owner = session.scalar(select(Sender).where(Sender.address == shortcode))
        mo = MoMessage(id=uuid.uuid4().hex, account_id=owner.account_id if owner else None, carrier_id=carrier_id,
                       phone_number=phone_number, shortcode=shortcode, text=part.text or "",
                       attachments=attachments or [], received_at=now)
        session.add(mo)
        session.flush()
        if mo.account_id is None:
            log.warning("MO to %s matches no account; kept as %s", shortcode, mo.id)
            return mo
        if self.stop_keywords is not None:
            self.stop_keywords(session, mo.account_id, phone_number, mo.text)
        queue_mo_callback(session, mo, now)
        return mo

    def _collect_part(self, session: Session, carrier_id: int, phone: str, shortcode: str, part: InboundPart,
                      now: datetime) -> InboundPart | None:
        key = (MoPart.carrier_id == carrier_id, MoPart.phone_number == phone, MoPart.shortcode == shortcode,
               MoPart.ref == part.concat_ref)
        known = {p.seq for p in session.scalars(select(MoPart).where(*key))}
        if part.seq not in known:
            session.add(MoPart(carrier_id=carrier_id, phone_number=phone, shortcode=shortcode, ref=part.concat_ref,
                               total=part.total, seq=part.seq, received_at=now,
                               fields={"alphabet": part.alphabet.value,
                                       "body": base64.b64encode(part.body).decode("ascii")}))
            session.flush()
            known.add(part.seq)
        if len(known) < part.total:
            return None
        parts = [InboundPart(Alphabet(p.fields["alphabet"]), base64.b64decode(p.fields["body"]), p.ref, p.total, p.seq)
                 for p in session.scalars(select(MoPart).where(*key))]
        session.execute(delete(MoPart).where(*key))
        return reassemble(parts)


def apply_receipt(session: Session, segment: SegmentSubmit, receipt: Receipt, now: datetime) -> None:
    """Move the segment and its message forward, never back; record and report it."""
    if may_transition(MessageState(segment.state), receipt.state):
        segment.state = receipt.state
    message = session.get(Message, segment.message_id)
    states = {s.seq: MessageState(s.state) for s in message.submits}
    pdus = segment.total or message.segments or 1  # receipts come per submit_sm PDU
    overall = combine_segment_states([states.get(seq, MessageState.ACCEPTED) for seq in range(1, pdus + 1)])
    if not may_transition(MessageState(message.state), overall):
        return
    message.state = overall
    result_code = int(result_code_for_state(overall)) if overall.is_final else 0
    message.result_code = result_code if overall.is_final else message.result_code
    session.add(MessageEvent(message=message, at=now, kind="receipt", state=overall,
                             detail={"seq": segment.seq, "smsc_id": receipt.smsc_id, "err": receipt.err,
                                     "result_code": result_code}))
    queue_dr_callback(session, message, overall, result_code, now)


def _receipt_record(incoming: ReceiptIn) -> dict[str, Any]:
    return {"smsc_id": incoming.receipt.smsc_id, "state": int(incoming.receipt.state), "err": incoming.receipt.err,
            "raw": incoming.raw}


def _receipt_from_record(record: dict[str, Any]) -> Receipt:
    return Receipt(smsc_id=record["smsc_id"], state=MessageState(record["state"]), err=record.get("err"),
                   submit_date=None, done_date=None)


def _aware(moment: datetime, like: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=like.tzinfo)


MALFORMED = (MalformedReceipt, MalformedUdh, UnsupportedDataCoding, ValueError, KeyError, TypeError)


def process_items(service: InboundService, session: Session, items: list[dict[str, Any]], now: datetime) -> None:
    """One batch from the inbound queue. Anything that cannot be understood is kept
    (``malformed``) rather than raised, so one bad PDU never blocks the queue."""
    for item in items:
        carrier_id = item.get("carrier")
        try:
            _process_item(service, session, item, carrier_id, now)
        except MALFORMED as exc:
            service.keep_malformed(session, carrier_id, item, f"{type(exc).__name__}: {exc}", now)


def _process_item(service: InboundService, session: Session, item: dict[str, Any], carrier_id, now: datetime) -> None:
    source = item["source"]
    if source == "smpp" and is_receipt(item["pdu"]):
        service.receive_receipt(session, parse_deliver_sm_receipt(carrier_id, item["pdu"]), now)
    elif source == "smpp":
        pdu = item["pdu"]
        service.receive_mo(session, carrier_id, pdu["source_addr"], pdu["destination_addr"], decode_part(pdu), now)
    elif source == "webhook_dr":
        service.receive_receipt(session, webhook_receipt(carrier_id, item["fields"]), now)
    elif source == "webhook_mo":
        fields = item["fields"]
        part = InboundPart(Alphabet.UCS2, fields["text"].encode("utf-16-be"))
        service.receive_mo(session, carrier_id, fields["from"], fields["to"], part, now,
                           attachments=fields.get("attachments") or [])
    else:
        raise ValueError(f"unknown inbound source {source!r}")
