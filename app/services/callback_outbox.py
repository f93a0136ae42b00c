"""Writing the callbacks a client is owed (the outbox), in the same transaction as the
state change they report. After the commit, the ids collected in the session are
handed to the callbacks queue (:func:`take_new_callbacks`); a row whose task got lost
is found again by the callbacks sweeper, so a committed callback is never lost.

DR fields (seed 000, "Delivery Receipt Parameters"): ``type=receipt``, ``message_id``
(the client's; smsagg's own id for bulk API messages, which is what their reply
carried), ``message_state`` (seed "Message State" table), ``result_code`` (seed
"Result Code" table), and ``app_id`` / ``conversation_id`` when the MT had them.
Bulk API messages add ``destination`` and, for a multi-destination request,
``batch_id``. Only messages sent with ``receipt=TRUE`` (bulk: ``dlr=1``) get DRs, and
only for the states their DR mask passes (:class:`~app.domain.states.DrMask`: the
request's ``dr_mask`` on the REST API, else the account's): a masked state writes no
row and queues nothing, while the message log still records it.

MO fields (seed 000, "Receiving a Mobile Originated (MO) Message"): ``type=MO``,
``message_id`` (unique, the same on every retry), ``shortcode``, ``phone_number``,
``carrier``, ``message``, and ``mms_attachment[n].content_type`` /
``mms_attachment[n].content`` for MMS.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db.models import Account, Callback, MoMessage
from app.domain.states import DrMask, MessageState

log = logging.getLogger(__name__)
_NEW_CALLBACKS = "smsagg.new_callbacks"


class ReceiptSubject(Protocol):
    """What a DR callback says about its message: a ``Message`` row, or the same
    facts taken from the accepted payload before the row is read back."""

    id: str
    account_id: int
    client_message_id: str | None
    phone_number: str
    receipt: bool
    app_id: str | None
    conversation_id: str | None
    options: dict


def wants_receipts(message: ReceiptSubject) -> bool:
    return bool(message.receipt or message.options.get("dlr"))


def reported(message: ReceiptSubject, state: MessageState, account_mask: str | None) -> bool:
    """Whether ``state`` is called back for ``message``, whose account's mask is ``account_mask``."""
    return DrMask.effective(message.options.get("dr_mask"), account_mask).passes(state)


def dr_fields(message: ReceiptSubject, state: MessageState, result_code: int) -> list[list[str]]:
    is_bulk = message.options.get("api") == "bulk"
    fields = [
        ["type", "receipt"],
        ["message_id", message.id if is_bulk or not message.client_message_id else message.client_message_id],
        ["message_state", str(int(state))],
        ["result_code", str(int(result_code))],
    ]
    fields += [[name, value] for name, value in (("app_id", message.app_id), ("conversation_id", message.conversation_id))
               if value]
    if is_bulk:
        fields.append(["destination", message.phone_number])
        if message.options.get("batch_id"):
            fields.append(["batch_id", str(message.options["batch_id"])])
    return fields


def mo_fields(mo: MoMessage) -> list[list[str]]:
    fields = [["type", "MO"], ["message_id", mo.id], ["shortcode", mo.shortcode], ["phone_number", mo.phone_number],
              ["carrier", "" if mo.carrier_id is None else str(mo.carrier_id)], ["message", mo.text]]
    for index, (content_type, content) in enumerate(mo.attachments or []):
        fields += [[f"mms_attachment[{index}].content_type", content_type], [f"mms_attachment[{index}].content", content]]
    return fields


def _row(account: Account, url: str | None, kind: str, fields, now: datetime, **ids) -> dict[str, Any] | None:
    if not url:
        log.info("account %s has no %s URL; %s callback not queued", account.login, kind.upper(), kind)
        return None
    return dict(id=uuid.uuid4().hex, account_id=account.id, kind=kind, url=url, fields=fields, status="pending",
                attempts=0, max_retries=account.callback_max_retries, retry_interval=account.callback_retry_interval,
                created_at=now, next_attempt_at=now, message_id=ids.get("message_id"), mo_id=ids.get("mo_id"))


def _queue(session: Session, account: Account, url: str | None, kind: str, fields, now: datetime, **ids) -> Callback | None:
    row = _row(account, url, kind, fields, now, **ids)
    if row is None:
        return None
    callback = Callback(**row)
    session.add(callback)
    session.info.setdefault(_NEW_CALLBACKS, []).append(callback.id)
    return callback


def queue_dr_callback(session: Session, message: ReceiptSubject, state: MessageState, result_code: int,
                      now: datetime) -> Callback | None:
    if not wants_receipts(message):
        return None
    account = session.get(Account, message.account_id)
    if not reported(message, state, account.dr_mask):
        return None
    return _queue(session, account, account.dr_url, "dr", dr_fields(message, state, result_code), now,
                  message_id=message.id)


def queue_dr_callbacks(session: Session, reports: Sequence[tuple[ReceiptSubject, MessageState, int]],
                       now: datetime) -> None:
    """:func:`queue_dr_callback` for many messages in one statement (the MT stage's and
    the receipts' batches): the same rows, handed on the same way by
    :func:`take_new_callbacks`. Callbacks of one call are ``created_at`` a microsecond
    apart in their order, so two reports of one message in one batch keep their order."""
    wanted = [(message, state, code) for message, state, code in reports if wants_receipts(message)]
    if not wanted:
        return
    accounts = {a.id: a for a in session.execute(
        select(Account.id, Account.login, Account.dr_url, Account.dr_mask, Account.callback_max_retries,
               Account.callback_retry_interval).where(Account.id.in_({m.account_id for m, _, _ in wanted})))}
    rows = []
    for message, state, result_code in wanted:
        account = accounts[message.account_id]
        if not reported(message, state, account.dr_mask):
            continue
        row = _row(account, account.dr_url, "dr", dr_fields(message, state, result_code),
                   now + timedelta(microseconds=len(rows)), message_id=message.id)
        if row is not None:
            rows.append(row)
    if rows:
        session.execute(Callback.__table__.insert(), rows)
        session.info.setdefault(_NEW_CALLBACKS, []).extend(row["id"] for row in rows)


def queue_mo_callback(session: Session, mo: MoMessage, now: datetime) -> Callback | None:
    account = session.get(Account, mo.account_id)
    return _queue(session, account, account.mo_url, "mo", mo_fields(mo), now, mo_id=mo.id)


def take_new_callbacks(session: Session) -> list[str]:
    """The ids of callbacks queued in this unit of work (call it before the commit,
    hand them on after it)."""
    return session.info.pop(_NEW_CALLBACKS, [])
