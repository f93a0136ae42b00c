"""Inbound processing: delivery receipts and mobile-originated messages, from SMPP
``deliver_sm`` or from carriers' HTTP webhooks, in batches (one transaction each).

Receipts
  * a batch is handled set-based: its receipts are matched with one query, their
    messages and segments read with one query each (the messages locked, in id
    order, so two batches never interleave on one message), and every change is
    written with one bulk statement per table — no ORM object per receipt;
  * matched to a segment by the SMSC id in the segment table, trying every reading
    of the id (hex/decimal, zero padding), literal first, the first reading that hits
    wins and, among segments with that id, the newest;
  * receipts of a batch apply in their order; each moves the segment, then the
    message, forward only (a late "en-route" never overwrites "delivered"; a
    duplicate changes nothing); a multi-segment message is delivered when all its
    segments are, and the first failure decides a failure;
  * each change of the message's state is an event, and — for ``receipt=TRUE`` — a
    DR callback in the outbox;
  * a receipt that matches nothing yet (it overtook its submit_sm_resp) is held as
    ``pending`` and re-matched by :meth:`InboundService.rematch_pending`; after
    ``UNMATCHED_AFTER`` it is kept as ``unmatched``, visible, never dropped; one that
    cannot be parsed is kept as ``malformed``, and the rest of its batch proceeds.

Items come from the SMPP binds (``smpp``), the HTTP webhooks (``webhook_dr``,
``webhook_mo``) and MMSCs over MM7 (``mm7_dr``, ``mm7_mo``: the same fields as the
webhooks', so they are read the same way).

MO messages
  * concatenated parts (UDH or SAR) are held until all have arrived, then joined;
    parts still incomplete ``MO_PARTS_TIMEOUT`` after the first of them arrived are
    released by :meth:`InboundService.release_expired_mo`: the parts that did arrive
    are joined in sequence order and delivered as one MO (with a warning);
  * assigned to the account that owns the destination shortcode/number (none: kept
    with no account, visible);
  * a stop keyword records the opt-out (see :mod:`app.bulk`), then the MO callback is
    queued like any other.
"""

from __future__ import annotations

import base64
import logging
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, update
from sqlalchemy.orm import Session

from app.adapters.metrics import RECEIPTS, count_on_commit
from app.db.models import (
    Carrier,
    Message,
    MessageEvent,
    MoMessage,
    MoPart,
    SegmentSubmit,
    Sender,
    UnmatchedReceipt,
)
from app.domain.carrier_codes import DEFAULT_TABLE, FAILURE_STATES, ResultCodeTable
from app.domain.encoding import Alphabet, InboundPart, MalformedUdh, UnsupportedDataCoding, decode_short_message
from app.domain.encoding import reassemble
from app.domain.receipts import (
    MalformedReceipt,
    Receipt,
    combine_segment_states,
    may_transition,
    parse_receipt,
    smsc_id_candidates,
    state_from_stat,
)
from app.domain.states import MessageState
from app.services.callback_outbox import queue_dr_callbacks, queue_mo_callback
from app.services.carriers import carrier_result_codes

log = logging.getLogger(__name__)

UNMATCHED_AFTER = timedelta(hours=1)
MO_PARTS_TIMEOUT = timedelta(minutes=10)
"""How long the parts of a concatenated MO wait for the missing ones, from the first
part's arrival; SMSCs send the parts of one MO within seconds."""
REMATCH_LIMIT = 1000
"""Held receipts (and expired MOs) looked at per periodic run."""
ESM_RECEIPT_TYPES = 0x04 | 0x20  # SMSC delivery receipt, intermediate delivery notification
ESM_UDHI = 0x40
TAG_RECEIPTED_MESSAGE_ID, TAG_MESSAGE_STATE, TAG_MESSAGE_PAYLOAD = "30", "1063", "1060"
TAG_SAR_REF, TAG_SAR_TOTAL, TAG_SAR_SEQ = "524", "526", "527"


@dataclass(frozen=True)
class ReceiptIn:
    carrier_id: int | None
    receipt: Receipt
    raw: dict[str, Any]

    def __post_init__(self) -> None:
        if not self.receipt.smsc_id.strip():
            raise MalformedReceipt("receipt with a blank SMSC id")


@dataclass(frozen=True)
class _Segment:
    id: int
    message_id: str
    seq: int
    total: int
    carrier_id: int | None = None


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
    def __init__(self, stop_keywords=None):
        self.stop_keywords = stop_keywords  # callable(session, account_id, phone, text) from app.bulk

    # -- receipts --------------------------------------------------------------

    def receive_receipts(self, session: Session, receipts: Sequence[ReceiptIn], now: datetime) -> int:
        """Apply receipts in order; hold those that match nothing yet (returns how many)."""
        targets = self._match(session, [(r.carrier_id, r.receipt.smsc_id) for r in receipts])
        held = [r for r, target in zip(receipts, targets, strict=True) if target is None]
        if held:
            session.execute(insert(UnmatchedReceipt.__table__), [
                dict(carrier_id=r.carrier_id, smsc_message_id=r.receipt.smsc_id, fields=_receipt_record(r),
                     received_at=now, status="pending") for r in held])
        apply_receipts(session, [(target, r.receipt) for r, target in zip(receipts, targets, strict=True)
                                 if target is not None], now)
        _count_receipts(session, [(r.carrier_id, "held" if target is None else "matched")
                                  for r, target in zip(receipts, targets, strict=True)])
        return len(held)

    def keep_malformed(self, session: Session, carrier_id: int | None, fields: dict[str, Any], reason: str,
                       now: datetime) -> None:
        log.warning("malformed receipt from carrier %s kept: %s", carrier_id, reason)
        session.add(UnmatchedReceipt(carrier_id=carrier_id, smsc_message_id="", status="malformed", received_at=now,
                                     fields={"pdu": fields, "reason": reason}))

    def _match(self, session: Session, keys: Sequence[tuple[int | None, str]]) -> list[_Segment | None]:
        """The segment of each (carrier, SMSC id), or None: one query for all of them."""
        readings = [smsc_id_candidates(smsc_id) for _, smsc_id in keys]
        wanted = {reading for candidates in readings for reading in candidates}
        if not wanted:
            return []
        query = select(SegmentSubmit.id, SegmentSubmit.message_id, SegmentSubmit.seq, SegmentSubmit.total,
                       SegmentSubmit.carrier_id, SegmentSubmit.smsc_message_id
                       ).where(SegmentSubmit.smsc_message_id.in_(wanted))
        carriers = {carrier for carrier, _ in keys}
        if None not in carriers:
            query = query.where(SegmentSubmit.carrier_id.in_(carriers))
        newest: dict[tuple[int | None, str], _Segment] = {}
        for row in session.execute(query.order_by(SegmentSubmit.id)):
            segment = _Segment(row.id, row.message_id, row.seq, row.total, row.carrier_id)
            newest[(row.carrier_id, row.smsc_message_id)] = newest[(None, row.smsc_message_id)] = segment
        found = [next((newest[(carrier, c)] for c in candidates if (carrier, c) in newest), None)
                 for (carrier, _), candidates in zip(keys, readings, strict=True)]
        return found

    def rematch_pending(self, session: Session, now: datetime) -> int:
        """Try held receipts again; give up (keep as ``unmatched``) after an hour."""
        held = session.execute(select(UnmatchedReceipt.id, UnmatchedReceipt.carrier_id,
                                      UnmatchedReceipt.smsc_message_id, UnmatchedReceipt.fields,
                                      UnmatchedReceipt.received_at)
                               .where(UnmatchedReceipt.status == "pending")
                               .order_by(UnmatchedReceipt.id).limit(REMATCH_LIMIT)).all()
        targets = self._match(session, [(h.carrier_id, h.smsc_message_id) for h in held])
        apply_receipts(session, [(target, _receipt_from_record(h.fields))
                                 for h, target in zip(held, targets, strict=True) if target is not None], now)
        changes = [dict(id=h.id, status="matched", matched_message_id=target.message_id) if target is not None
                   else dict(id=h.id, status="unmatched", matched_message_id=None)
                   for h, target in zip(held, targets, strict=True)
                   if target is not None or now - _aware(h.received_at, now) > UNMATCHED_AFTER]
        if changes:
            session.execute(update(UnmatchedReceipt), changes)
        carriers = {h.id: h.carrier_id for h in held}
        _count_receipts(session, [(carriers[c["id"]], c["status"]) for c in changes])
        return sum(1 for target in targets if target is not None)

    # -- MO ----------------------------------------------------------------------

    def receive_mo(self, session: Session, carrier_id: int | None, phone_number: str, shortcode: str,
                   part: InboundPart, now: datetime, attachments: list | None = None) -> MoMessage | None:
        """Record an MO (or one part of it); returns the whole message once complete."""
        if part.total > 1 and part.concat_ref is not None:
            part = self._collect_part(session, carrier_id or 0, phone_number, shortcode, part, now)
            if part is None:
                return None
        return self._deliver_mo(session, carrier_id, phone_number, shortcode, part.text or "", now, attachments)

    def release_expired_mo(self, session: Session, now: datetime) -> int:
        """Deliver MOs whose missing parts did not come within ``MO_PARTS_TIMEOUT``,
        joined from the parts that did; returns how many."""
        key_columns = (MoPart.carrier_id, MoPart.phone_number, MoPart.shortcode, MoPart.ref)
        expired = session.execute(select(*key_columns).group_by(*key_columns)
                                  .having(func.min(MoPart.received_at) <= now - MO_PARTS_TIMEOUT)
                                  .limit(REMATCH_LIMIT)).all()
        for carrier_id, phone, shortcode, ref in expired:
            key = (MoPart.carrier_id == carrier_id, MoPart.phone_number == phone, MoPart.shortcode == shortcode,
                   MoPart.ref == ref)
            parts = [_stored_part(p) for p in session.scalars(select(MoPart).where(*key))]
            session.execute(delete(MoPart).where(*key))
            log.warning("MO from %s to %s (ref %s): parts %s of %s arrived in %s; delivered without the rest",
                        phone, shortcode, ref, sorted(p.seq for p in parts), parts[0].total, MO_PARTS_TIMEOUT)
            self._deliver_mo(session, carrier_id or None, phone, shortcode, _join_available(parts).text or "", now)
        return len(expired)

    def _deliver_mo(self, session: Session, carrier_id: int | None, phone_number: str, shortcode: str, text: str,
                    now: datetime, attachments: list | None = None) -> MoMessage:
        owner = session.scalar(select(Sender).where(Sender.address == shortcode))
        mo = MoMessage(id=uuid.uuid4().hex, account_id=owner.account_id if owner else None, carrier_id=carrier_id,
                       phone_number=phone_number, shortcode=shortcode, text=text,
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
        parts = [_stored_part(p) for p in session.scalars(select(MoPart).where(*key))]
        session.execute(delete(MoPart).where(*key))
        return reassemble(parts)


def _count_receipts(session: Session, outcomes: Sequence[tuple[int | None, str]]) -> None:
    """smsagg_receipts_total by carrier and outcome, once this unit of work commits."""
    for (carrier_id, outcome), count in Counter(outcomes).items():
        count_on_commit(session, RECEIPTS, "unknown" if carrier_id is None else str(carrier_id), outcome, amount=count)


def _stored_part(row: MoPart) -> InboundPart:
    return InboundPart(Alphabet(row.fields["alphabet"]), base64.b64decode(row.fields["body"]), row.ref, row.total,
                       row.seq)


def _join_available(parts: Sequence[InboundPart]) -> InboundPart:
    """The parts that arrived, joined byte-wise in sequence order (gaps just left out)."""
    ordered = sorted(parts, key=lambda part: part.seq)
    return InboundPart(ordered[0].alphabet, b"".join(part.body for part in ordered))


_MESSAGE_COLUMNS = (Message.id, Message.account_id, Message.client_message_id, Message.phone_number, Message.app_id,
                    Message.conversation_id, Message.options, Message.receipt, Message.state, Message.result_code,
                    Message.segments)
"""What applying a receipt and writing its DR callback read of a message."""
_segments, _messages = SegmentSubmit.__table__, Message.__table__
_SET_SEGMENT_STATE = (update(_segments).where(_segments.c.id == bindparam("pk"))
                      .values(state=bindparam("new_state"), updated_at=bindparam("at")))
_SET_MESSAGE_STATE = (update(_messages).where(_messages.c.id == bindparam("pk"))
                      .values(state=bindparam("new_state"), result_code=bindparam("code"), updated_at=bindparam("at")))


def apply_receipts(session: Session, matched: Sequence[tuple[_Segment, Receipt]], now: datetime) -> None:
    """Move segments and their messages forward, never back, receipt by receipt in
    order; record and report each change of a message's state. Set-based: one read
    per table (the messages locked, in id order), one bulk write per table."""
    if not matched:
        return
    message_ids = sorted({segment.message_id for segment, _ in matched})
    messages = {m.id: m for m in session.execute(select(*_MESSAGE_COLUMNS).where(Message.id.in_(message_ids))
                                                 .order_by(Message.id).with_for_update())}
    segment_states: dict[int, MessageState] = {}
    seq_ids: dict[str, dict[int, int]] = {}
    for row in session.execute(select(SegmentSubmit.id, SegmentSubmit.message_id, SegmentSubmit.seq,
                                      SegmentSubmit.state).where(SegmentSubmit.message_id.in_(message_ids))):
        segment_states[row.id] = MessageState(row.state)
        seq_ids.setdefault(row.message_id, {})[row.seq] = row.id
    message_states = {m.id: (MessageState(m.state), m.result_code) for m in messages.values()}
    tables = _code_tables(session, {segment.carrier_id for segment, receipt in matched
                                    if receipt.state in FAILURE_STATES})
    changed_segments: set[int] = set()
    changed_messages: set[str] = set()
    events: list[dict[str, Any]] = []
    reports: list[tuple[Any, MessageState, int]] = []
    for segment, receipt in matched:
        message = messages.get(segment.message_id)
        if message is None:
            continue
        if may_transition(segment_states[segment.id], receipt.state):
            segment_states[segment.id] = receipt.state
            changed_segments.add(segment.id)
        pdus = segment.total or message.segments or 1  # receipts come per submit_sm PDU
        seqs = seq_ids[message.id]
        overall = combine_segment_states([segment_states[seqs[seq]] if seq in seqs else MessageState.ACCEPTED
                                          for seq in range(1, pdus + 1)])
        current, kept_code = message_states[message.id]
        if not may_transition(current, overall):
            continue
        err = receipt.err if receipt.state is overall else None  # this receipt ended it (else a default)
        result_code = int(tables.get(segment.carrier_id, DEFAULT_TABLE).for_receipt(overall, err)) \
            if overall.is_final else 0
        message_states[message.id] = (overall, result_code if overall.is_final else kept_code)
        changed_messages.add(message.id)
        events.append(dict(message_id=message.id, at=now, kind="receipt", state=int(overall),
                           detail={"seq": segment.seq, "smsc_id": receipt.smsc_id, "err": receipt.err,
                                   "result_code": result_code}))
        reports.append((message, overall, result_code))
    if changed_segments:
        session.execute(_SET_SEGMENT_STATE, [dict(pk=i, new_state=int(segment_states[i]), at=now)
                                             for i in sorted(changed_segments)])
    if changed_messages:
        session.execute(_SET_MESSAGE_STATE, [dict(pk=i, new_state=int(message_states[i][0]),
                                                  code=message_states[i][1], at=now) for i in sorted(changed_messages)])
    if events:
        session.execute(insert(MessageEvent.__table__), events)
    queue_dr_callbacks(session, reports, now)


def _code_tables(session: Session, carrier_ids: set[int | None]) -> dict[int | None, ResultCodeTable]:
    """The result-code tables of the carriers whose receipts may end a message failed:
    one query, and none for a batch without failures."""
    wanted = {carrier_id for carrier_id in carrier_ids if carrier_id is not None}
    if not wanted:
        return {}
    rows = session.execute(select(Carrier.id, Carrier.settings).where(Carrier.id.in_(wanted)))
    return {row.id: carrier_result_codes(row.id, row.settings) for row in rows}


def _receipt_record(incoming: ReceiptIn) -> dict[str, Any]:
    return {"smsc_id": incoming.receipt.smsc_id, "state": int(incoming.receipt.state), "err": incoming.receipt.err,
            "raw": incoming.raw}


def _receipt_from_record(record: dict[str, Any]) -> Receipt:
    return Receipt(smsc_id=record["smsc_id"], state=MessageState(record["state"]), err=record.get("err"),
                   submit_date=None, done_date=None)


def _aware(moment: datetime, like: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=like.tzinfo)


MALFORMED = (MalformedReceipt, MalformedUdh, UnsupportedDataCoding, ValueError, KeyError, TypeError)


def process_items(service: InboundService, session: Session, items: list[dict[str, Any]], now: datetime) -> int:
    """One batch from the inbound queue: MOs one by one, receipts all together.
    Anything that cannot be understood is kept (``malformed``) rather than raised, so
    one bad PDU never blocks the queue. Returns how many receipts were held."""
    receipts: list[ReceiptIn] = []
    for item in items:
        carrier_id = item.get("carrier")
        try:
            incoming = _receipt_of(item, carrier_id)
            if incoming is None:
                _receive_mo_item(service, session, item, carrier_id, now)
            else:
                receipts.append(incoming)
        except MALFORMED as exc:
            service.keep_malformed(session, carrier_id, item, f"{type(exc).__name__}: {exc}", now)
    return service.receive_receipts(session, receipts, now)


def _receipt_of(item: dict[str, Any], carrier_id) -> ReceiptIn | None:
    source = item["source"]
    if source == "smpp" and is_receipt(item["pdu"]):
        return parse_deliver_sm_receipt(carrier_id, item["pdu"])
    if source in ("webhook_dr", "mm7_dr"):
        return webhook_receipt(carrier_id, item["fields"])
    if source not in ("smpp", "webhook_mo", "mm7_mo"):
        raise ValueError(f"unknown inbound source {source!r}")
    return None


def _receive_mo_item(service: InboundService, session: Session, item: dict[str, Any], carrier_id,
                     now: datetime) -> None:
    if item["source"] == "smpp":
        pdu = item["pdu"]
        service.receive_mo(session, carrier_id, pdu["source_addr"], pdu["destination_addr"], decode_part(pdu), now)
    else:
        fields = item["fields"]
        part = InboundPart(Alphabet.UCS2, fields["text"].encode("utf-16-be"))
        service.receive_mo(session, carrier_id, fields["from"], fields["to"], part, now,
                           attachments=fields.get("attachments") or [])
