"""Recording an accepted MT in the message log: the first worker stage.

The ingress queued the whole request in Redis; this stage writes the message, its
MMS parts and its first events, and routes it. It is idempotent: a redelivered task
(``acks_late``) finds the message already recorded and does nothing twice.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.db.models import Message, MessageEvent, MessagePart
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment
from app.domain.states import MessageState
from app.services.callback_outbox import queue_dr_callback
from app.services.credit import refund_if_prepaid

log = logging.getLogger(__name__)

DELIVERY_OPTION_KEYS = ("api", "batch_id", "wap_push", "price", "dlr")
NO_ROUTE_RESULT_CODE = 3  # seed 000, DR Result Code table: "The carrier is invalid."


@dataclass(frozen=True)
class Recorded:
    message_id: str
    state: MessageState
    carrier_id: int | None
    already_recorded: bool


def _utc(epoch_seconds: float) -> datetime:
    return datetime.fromtimestamp(epoch_seconds, tz=timezone.utc)


def record_accepted(
    session: Session, payload: dict[str, Any], *, now: datetime, route: Callable[[str], int | None]
) -> Recorded:
    """Record the accepted ``payload``; ``route(phone_number)`` picks the carrier when the
    client did not (longest prefix, weighted round robin: :mod:`app.domain.routing`)."""
    existing = session.get(Message, payload["id"])
    if existing is not None:
        return Recorded(existing.id, MessageState(existing.state), existing.carrier_id, already_recorded=True)
    message = _new_message(payload)
    session.add(message)
    session.add(MessageEvent(message_id=message.id, at=message.accepted_at, kind="accepted",
                             state=MessageState.ACCEPTED, detail={"priority": message.priority}))
    _route(session, message, payload.get("carrier"), route, now)
    try:
        session.flush()
    except IntegrityError:
        # Same client message_id recorded under another id: its Redis claim had
        # expired. The first one was accepted and is being delivered; drop this one.
        session.rollback()
        log.warning("duplicate message_id %r for account %s past its claim TTL; not recorded",
                    payload["client_message_id"], payload["account_id"])
        return Recorded(payload["id"], MessageState.REJECTED, None, already_recorded=True)
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
        options={key: payload[key] for key in DELIVERY_OPTION_KEYS if payload.get(key) is not None},
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
    session: Session, message: Message, requested_carrier: int | None, route: Callable[[str], int | None], now: datetime
) -> None:
    """A requested carrier is trusted (seed 000, ``carrier``); otherwise the longest
    matching route prefix decides. No route ends the message rejected."""
    carrier_id = requested_carrier if requested_carrier is not None else route(message.phone_number)
    if carrier_id is None:
        message.state = MessageState.REJECTED
        message.result_code = NO_ROUTE_RESULT_CODE
        session.add(MessageEvent(message_id=message.id, at=now, kind="rejected", state=MessageState.REJECTED,
                                 detail={"reason": "no route", "result_code": NO_ROUTE_RESULT_CODE}))
        refund_if_prepaid(session, message.account_id, message.id, message.options.get("price"))
        queue_dr_callback(session, message, MessageState.REJECTED, NO_ROUTE_RESULT_CODE, now)
        return
    message.carrier_id = carrier_id
    session.add(MessageEvent(message_id=message.id, at=now, kind="routed", state=MessageState.ACCEPTED,
                             detail={"carrier": carrier_id, "trusted": requested_carrier is not None}))
