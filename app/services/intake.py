"""Recording an accepted MT in the message log: the first worker stage.

The ingress queued the whole request in Redis; this stage writes the message, its
MMS parts and its first events, and routes it. It is idempotent: a batch handled
again (a retried or redelivered drain task) finds its messages already recorded
(:func:`recorded_ids`) and does nothing twice.

Two ways to write the same rows: :func:`insert_routed`, set-based, for the bulk of
traffic (routed text messages, many per statement); :func:`record_accepted`, through
the ORM one at a time, for the rest (MMS parts, no route, and a batch whose insert met
a duplicate ``message_id``).
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Message, MessageEvent, MessagePart
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment
from app.domain.states import MessageState
from app.services.callback_outbox import queue_dr_callback
from app.services.credit import Refund, refund_if_prepaid


DELIVERY_OPTION_KEYS = ("api", "batch_id", "wap_push", "price", "dlr", "dr_mask")
NO_ROUTE_RESULT_CODE = 3  # seed 000, DR Result Code table: "The carrier is invalid."


@dataclass(frozen=True)
class Recorded:
    message_id: str
    state: MessageState
    carrier_id: int | None
    already_recorded: bool


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)


def recorded_ids(session: Session, message_ids: list[str]) -> set[str]:
    """Which of ``message_ids`` the message log already has."""
    return set(session.scalars(select(Message.id).where(Message.id.in_(message_ids))))


@dataclass(frozen=True)
class Routed:
    """A new text message, its carrier chosen and its parts counted."""

    payload: dict[str, Any]
    carrier_id: int
    segments: int


def insert_routed(session: Session, messages: list[Routed], *, now: datetime) -> None:
    """Record new routed messages, two statements for the whole batch: the same rows
    :func:`record_accepted` writes (the message with its segment count, its
    ``accepted`` and ``routed`` events). A ``message_id`` the account already used
    raises ``IntegrityError``: the caller records that batch one by one."""
    if not messages:
        return
    session.execute(Message.__table__.insert(), [_message_row(m.payload, m.carrier_id, m.segments) for m in messages])
    events = []
    for m in messages:
        events.append({"message_id": m.payload["id"], "at": _utc(m.payload["accepted_at"]), "kind": "accepted",
                       "state": MessageState.ACCEPTED, "detail": {"priority": m.payload["priority"]}})
        events.append({"message_id": m.payload["id"], "at": now, "kind": "routed", "state": MessageState.ACCEPTED,
                       "detail": {"carrier": m.carrier_id, "trusted": m.payload["carrier"] is not None}})
    session.execute(MessageEvent.__table__.insert(), events)


def _message_row(payload: dict[str, Any], carrier_id: int, segments: int) -> dict[str, Any]:
    return {
        "id": payload["id"], "account_id": payload["account_id"], "client_message_id": payload["client_message_id"],
        "phone_number": payload["phone_number"], "sender": payload["sender"], "text": payload["message"],
        "priority": payload["priority"], "receipt": payload["receipt"], "app_id": payload["app_id"],
        "conversation_id": payload["conversation_id"], "requested_carrier_id": payload["carrier"],
        "carrier_id": carrier_id, "encoding": payload.get("encoding"), "flash": bool(payload.get("flash", False)),
        "options": delivery_options(payload), "segments": segments, "submit_attempts": 0,
        "state": MessageState.ACCEPTED, "accepted_at": _utc(payload["accepted_at"]),
    }


def delivery_options(payload: dict[str, Any]) -> dict[str, Any]:
    """What later stages need from the request beyond the message's own columns."""
    return {key: payload[key] for key in DELIVERY_OPTION_KEYS if payload.get(key) is not None}


def record_accepted(
    session: Session, payload: dict[str, Any], *, now: datetime, route: Callable[[str], int | None], refund: Refund
) -> Recorded:
    """Record the accepted ``payload``; ``route(phone_number)`` picks the carrier when the
    client did not (longest prefix, weighted round robin: :mod:`app.domain.routing`);
    a message with no route is rejected and ``refund``-ed.
    A ``message_id`` the account already used (its Redis claim had expired) raises
    ``IntegrityError`` at the flush."""
    existing = session.get(Message, payload["id"])
    if existing is not None:
        return Recorded(existing.id, MessageState(existing.state), existing.carrier_id, already_recorded=True)
    message = _new_message(payload)
    session.add(message)
    session.add(MessageEvent(message_id=message.id, at=message.accepted_at, kind="accepted",
                             state=MessageState.ACCEPTED, detail={"priority": message.priority}))
    _route(session, message, payload.get("carrier"), route, refund, now)
    session.flush()
    return Recorded(message.id, MessageState(message.state), message.carrier_id, already_recorded=False)


def _new_message(payload: dict[str, Any]) -> Message:
    message = Message(
        id=payload["id"],
        account_id=payload["account_id"],
        client_message_id=payload["client_message_id"],
        phone_number=payload["phone_number"],
        sender=payload["sender"],
        text=payload["message"],
        priority=payload["priority"],
        receipt=payload["receipt"],
        app_id=payload["app_id"],
        conversation_id=payload["conversation_id"],
        requested_carrier_id=payload["carrier"],
        encoding=payload.get("encoding"),
        flash=bool(payload.get("flash", False)),
        options=delivery_options(payload),
        state=MessageState.ACCEPTED,
        accepted_at=_utc(payload["accepted_at"]),
        submits=[],
    )
    attachments = tuple(Attachment(ct, base64.b64decode(content)) for ct, content in payload["attachments"])
    if attachments:
        mms = build_mms(attachments, payload["message"])
        message.mms_content_type = mms.content_type
        message.parts = [
            MessagePart(position=index, content_id=part.content_id, content_type=part.content_type, content=part.content)
            for index, part in enumerate(mms.parts)
        ]
    return message


def _route(
    session: Session, message: Message, requested_carrier: int | None, route: Callable[[str], int | None],
    refund: Refund, now: datetime,
) -> None:
    """A requested carrier is trusted (seed 000, ``carrier``); otherwise the longest
    matching route prefix decides (for an MMS, among carriers that carry MMS). No route
    ends the message rejected."""
    carrier_id = requested_carrier if requested_carrier is not None else route(message.phone_number)
    if carrier_id is None:
        message.state = MessageState.REJECTED
        message.result_code = NO_ROUTE_RESULT_CODE
        reason = "no route for MMS" if message.mms_content_type is not None else "no route"
        session.add(MessageEvent(message_id=message.id, at=now, kind="rejected", state=MessageState.REJECTED,
                                 detail={"reason": reason, "result_code": NO_ROUTE_RESULT_CODE}))
        refund_if_prepaid(session, refund, message.account_id, message.id, message.options.get("price"))
        queue_dr_callback(session, message, MessageState.REJECTED, NO_ROUTE_RESULT_CODE, now)
        return
    message.carrier_id = carrier_id
    session.add(MessageEvent(message_id=message.id, at=now, kind="routed", state=MessageState.ACCEPTED,
                             detail={"carrier": carrier_id, "trusted": requested_carrier is not None}))
