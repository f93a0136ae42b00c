"""What the REST API does, for an account its caller already authenticated; the views
in :mod:`app.api.web` only parse, call one of these and answer.

* :meth:`MessagesApi.send`: one phone number sent now (no ``send_at``, or one already
  past) goes through the MT API's admission
  (:meth:`app.services.submit.SubmitService.admit`: its account rules, its token bucket,
  its idempotency claim, one Redis round trip); several numbers or a ``send_at`` ahead
  go through the bulk API's (:meth:`app.bulk.service.BulkSubmitService.admit`:
  one script for the whole batch, credit all or nothing). There is no admission of the
  REST API's own. Answers are mapped to :mod:`app.api.errors` codes.
* :meth:`MessagesApi.get`: a message from the message log, or, for a batch whose
  messages are not recorded yet (scheduled, or fanning out), from the batch.
* :meth:`MessagesApi.list`: the account's recorded messages, newest first, keyset-paged
  on ``(accepted_at, id)`` (index ``ix_messages_account_accepted``): a page never
  repeats or skips a message because others arrived meanwhile.
* :meth:`MessagesApi.cancel`: a scheduled batch withdrawn, refunded, its duplicate
  window freed (:func:`app.bulk.batches.cancel`, as ``smsagg schedule cancel``).
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
import time
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, or_, select

from app.adapters.redis_scripts import Admission, OutcomeUnknown, RedisKeys
from app.api.errors import ApiError
from app.api.schemas import (
    CancelResponse,
    ListQuery,
    MessageDetail,
    MessagePage,
    MessageSummary,
    SendRequest,
    SendResponse,
    SentMessage,
)
from app.bulk import batches, payloads
from app.bulk.models import Batch
from app.bulk.service import BulkSubmitService, DuplicateRequest
from app.db.models import Callback, Message
from app.db.session import session_scope
from app.bulk.request import (
    MESSAGE_TYPES,
    BulkCode,
    BulkRejected,
    BulkRequest,
    Destination,
    plan_message,
)
from app.domain.encoding import Encoding, UnencodableText, plan_encoding
from app.domain.mt_request import MtRequest, parse_attachments
from app.domain.result_codes import Rejected, ResultCode
from app.domain.states import MessageState
from app.services.directory import AccountView
from app.services.submit import Refused, SubmitService

_BATCH_ID = re.compile(r"[0-9a-f]{24}")
_BATCH_MESSAGE_ID = re.compile(r"[0-9a-f]{32}")

_MT_CODES = {
    ResultCode.REQUEST_INVALID: "validation_error",
    ResultCode.AUTHENTICATION_FAILED: "forbidden",
    ResultCode.CARRIER_INVALID: "unknown_carrier",
    ResultCode.SOURCE_NOT_ALLOWED: "sender_not_allowed",
    ResultCode.SOURCE_DENIED: "sender_not_allowed",
    ResultCode.BODY_TOO_LONG: "message_too_long",
}
_MT_OUTCOMES = {Admission.OPTED_OUT: "opted_out", Admission.INSUFFICIENT_CREDIT: "insufficient_credit"}
_BULK_CODES = {
    BulkCode.INVALID_SOURCE: "sender_not_allowed",
    BulkCode.INVALID_MESSAGE: "message_too_long",
    BulkCode.TEMPLATE_MISMATCH: "template_mismatch",
    BulkCode.SPAM: "spam",
    BulkCode.INVALID_URL: "validation_error",
}
_DESTINATION_CODES = {
    int(BulkCode.DND_REJECT): ("dnd", "on the operator's do-not-disturb registry"),
    int(BulkCode.EXPLICIT_DND): ("opted_out", "opted out of this account"),
    int(BulkCode.DUPLICATE): ("duplicate_content", "the same text went to this number within the duplicate window"),
    int(BulkCode.INSUFFICIENT_CREDIT): ("insufficient_credit", "the balance does not cover the batch"),
}


def _utc(moment: datetime | None) -> datetime | None:
    """Database times as aware UTC (SQLite hands them back naive)."""
    if moment is None:
        return None
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment.astimezone(timezone.utc)


def _epoch(value: float | str) -> datetime:
    return datetime.fromtimestamp(float(value), tz=timezone.utc)


class MessagesApi:
    def __init__(self, submit: SubmitService, bulk: Callable[[], BulkSubmitService], *,
                 database_url: str, claim_ttl_seconds: int, max_destinations: int,
                 clock: Callable[[], float] = time.time):
        self.submit = submit
        self.clock = clock
        self._bulk = bulk
        self.database_url = database_url
        self.claim_ttl_seconds = claim_ttl_seconds
        self.max_destinations = max_destinations
        self.keys: RedisKeys = submit.store.keys

    @property
    def bulk(self) -> BulkSubmitService:
        return self._bulk()

    # --- send ---------------------------------------------------------------------------

    def send(self, account: AccountView, request: SendRequest, key: str | None, client_ip: str | None) -> SendResponse:
        """A ``send_at`` already past is "now": one phone number then goes the MT API's way."""
        scheduled = request.send_at is not None and request.send_at.timestamp() > self.clock()
        if len(request.phone_numbers) > 1 or scheduled:
            return self._send_batch(account, request, key)
        return self._send_one(account, request, key, client_ip)

    def _send_one(self, account: AccountView, request: SendRequest, key: str | None,
                  client_ip: str | None) -> SendResponse:
        phone_number = request.phone_numbers[0]
        mt = MtRequest(
            login=account.login, password="",  # the API key authenticated the request
            phone_number=phone_number, sender=request.sender, message=request.message, message_id=key,
            carrier=request.carrier, receipt=request.receipt, app_id=request.app_id,
            conversation_id=request.conversation_id, priority=request.priority,
            attachments=_attachments(request), dr_mask=request.dr_mask,
        )
        try:
            admitted = self.submit.admit(account, mt, client_ip)
        except Refused as refused:
            raise _refused(refused, key) from refused
        except Rejected as rejected:
            raise ApiError(_MT_CODES.get(rejected.code, "validation_error"), rejected.reason) from rejected
        return SendResponse(batch_id=None, message_id=key, send_at=None, messages=[
            SentMessage(id=admitted.message_id, phone_number=phone_number, status="accepted")])

    def _send_batch(self, account: AccountView, request: SendRequest, key: str | None) -> SendResponse:
        if len(request.phone_numbers) > self.max_destinations:
            raise ApiError("validation_error", f"at most {self.max_destinations} phone numbers",
                           {"errors": [{"field": "phone_numbers", "message": "too many phone numbers"}]})
        message_type = _automatic_type(request.message)
        try:
            batch = BulkRequest(
                username=account.login, password="",  # the API key authenticated the request
                message_type=message_type, dlr=request.receipt, source=request.sender, message=request.message,
                plan=plan_message(request.message, message_type),
                destinations=tuple(Destination(i, number, number) for i, number in enumerate(request.phone_numbers)),
                scheduled_at=request.send_at, dr_mask=request.dr_mask,
            )
            decision = self.bulk.admit(
                account, batch, priority=request.priority or account.default_priority,
                claim_key=self.keys.idempotency(account.id, key) if key else "",
                claim_ttl_seconds=self.claim_ttl_seconds)
        except DuplicateRequest as duplicate:
            raise _duplicate(key, duplicate.existing_id) from duplicate
        except BulkRejected as rejected:
            raise ApiError(_BULK_CODES.get(rejected.code, "validation_error"), rejected.reason) from rejected
        except OutcomeUnknown as lost:
            raise ApiError("outcome_unknown", "Redis took the batch and its answer was lost") from lost
        sent = [_sent(code, number, message_id) for code, number, message_id in decision.entries]
        if not any(entry.status == "accepted" for entry in sent):
            raise _all_refused(sent)
        return SendResponse(batch_id=decision.batch_id, message_id=key,
                            send_at=_epoch(decision.due) if decision.scheduled else None, messages=sent)

    # --- read ---------------------------------------------------------------------------

    def get(self, account: AccountView, message_id: str) -> MessageDetail:
        _lookable(message_id)
        with session_scope(self.database_url) as session:
            message = session.scalars(select(Message).where(
                Message.account_id == account.id,
                or_(Message.client_message_id == message_id, Message.id == message_id),
            ).limit(1)).first()
            if message is not None:
                callbacks = list(session.scalars(select(Callback).where(Callback.message_id == message.id)
                                                 .order_by(Callback.created_at, Callback.id)))
                return describe_message(message, callbacks)
            if _BATCH_MESSAGE_ID.fullmatch(message_id):
                waiting = self._batch_message(session, account.id, message_id)
                if waiting is not None:
                    return waiting
        raise ApiError("not_found", f"no message {message_id!r} for this account "
                                    "(a message accepted a moment ago is recorded within a second)")

    def _batch_message(self, session, account_id: int, message_id: str) -> MessageDetail | None:
        batch = self._batch(session, account_id, payloads.batch_of(message_id))
        if batch is None:
            return None
        status, due, meta, destinations = batch
        number = next((n for n, mid, _ in destinations if mid == message_id), None)
        if number is None:
            return None
        state = MessageState.DELETED if status == "cancelled" else MessageState.ACCEPTED
        return MessageDetail(
            id=message_id, message_id=None, phone_number=number, sender=meta["source"], priority=meta["priority"],
            state=int(state), state_name=state.name.lower(), result_code=None, carrier=None,
            segments=meta.get("segments"), accepted_at=_epoch(meta["accepted_at"]), batch_id=meta["batch_id"],
            send_at=_epoch(due), schedule_status=status, segment_submits=[], events=[], callbacks=[])

    def _batch(self, session, account_id: int, batch_id: str) -> tuple[str, float, dict, list] | None:
        """(status, due epoch, meta, destinations) of the account's batch: Redis is the
        live truth, the database row the durable one."""
        client = self.submit.store.client
        status, account, due, meta = client.hmget(self.keys.batch(batch_id), "state", "account", "due", "meta")
        if status is not None and meta is not None:
            if int(account) != account_id:
                return None
            entries = [raw.decode().split("|") for raw in client.lrange(self.keys.batch_destinations(batch_id), 0, -1)]
            return status.decode(), float(due), json.loads(meta), entries
        row = session.get(Batch, batch_id)
        if row is None or row.account_id != account_id:
            return None
        return row.status, _utc(row.due_at).timestamp(), row.meta, row.destinations

    def list(self, account: AccountView, query: ListQuery) -> MessagePage:
        statement = select(Message).where(Message.account_id == account.id)
        if query.state is not None:
            statement = statement.where(Message.state == int(MessageState[query.state.upper()]))
        if query.since is not None:
            statement = statement.where(Message.accepted_at >= query.since.astimezone(timezone.utc))
        if query.until is not None:
            statement = statement.where(Message.accepted_at < query.until.astimezone(timezone.utc))
        if query.cursor is not None:
            at, last_id = decode_cursor(query.cursor)
            statement = statement.where(or_(Message.accepted_at < at,
                                            and_(Message.accepted_at == at, Message.id < last_id)))
        statement = statement.order_by(Message.accepted_at.desc(), Message.id.desc()).limit(query.limit + 1)
        with session_scope(self.database_url) as session:
            rows = list(session.scalars(statement))
            page = [summarize(message) for message in rows[:query.limit]]
        more = len(rows) > query.limit
        return MessagePage(messages=page, next_cursor=encode_cursor(page[-1].accepted_at, page[-1].id) if more else None)

    # --- cancel -------------------------------------------------------------------------

    def cancel(self, account: AccountView, message_id: str) -> CancelResponse:
        _lookable(message_id)
        batch_id = _batch_id_of(message_id)
        if batch_id is not None:
            with session_scope(self.database_url) as session:
                _, state = batches.cancel(session, self.bulk.store, batch_id, account.id)
            if state == "cancelled":
                count = self.submit.store.client.hget(self.keys.batch(batch_id), "count")
                return CancelResponse(batch_id=batch_id, status="cancelled", messages=int(count or 0))
            if state != "missing":
                raise ApiError("not_cancellable", f"batch {batch_id} is {state}", {"state": state})
        with session_scope(self.database_url) as session:
            recorded = session.scalar(select(Message.id).where(
                Message.account_id == account.id,
                or_(Message.client_message_id == message_id, Message.id == message_id)).limit(1))
        if recorded is not None:
            raise ApiError("not_cancellable", f"message {message_id!r} was not scheduled", {"state": "sent"})
        raise ApiError("not_found", f"no scheduled batch or message {message_id!r} for this account")


# --- mapping ------------------------------------------------------------------------------

def _attachments(request: SendRequest):
    """The MT API's own attachment rules (numbering, MIME type, strict base64)."""
    params = {}
    for index, attachment in enumerate(request.attachments):
        params[f"mms_attachment[{index}].content_type"] = attachment.content_type
        params[f"mms_attachment[{index}].content"] = attachment.content
    try:
        return parse_attachments(params)
    except Rejected as rejected:
        raise ApiError("validation_error", rejected.reason,
                       {"errors": [{"field": "attachments", "message": rejected.reason}]}) from rejected


def _automatic_type(text: str):
    """The bulk ``type`` the MT API's automatic choice amounts to: GSM 03.38 when the
    text fits it, else Unicode."""
    try:
        encoding = plan_encoding(text).encoding
    except UnencodableText as exc:
        raise ApiError("validation_error", str(exc), {"errors": [{"field": "message", "message": str(exc)}]}) from exc
    return MESSAGE_TYPES["0"] if encoding is Encoding.GSM7 else MESSAGE_TYPES["2"]


def _duplicate(key: str | None, existing_id: str | None) -> ApiError:
    return ApiError("duplicate", f"message_id {key!r} was used before", {"existing_id": existing_id})


def _refused(refused: Refused, key: str | None) -> ApiError:
    if refused.outcome is Admission.DUPLICATE:
        return _duplicate(key, refused.existing_message_id)
    if refused.outcome is Admission.THROTTLED:
        wait = max(refused.wait_seconds, 0.001)
        return ApiError("throttled", refused.reason, {"retry_after": wait},
                        headers={"Retry-After": str(math.ceil(wait))})
    return ApiError(_MT_OUTCOMES[refused.outcome], refused.reason)


def _sent(code: int, number: str, message_id: str) -> SentMessage:
    if code == BulkCode.SUBMITTED:
        return SentMessage(id=message_id, phone_number=number, status="accepted")
    error, reason = _DESTINATION_CODES[code]
    return SentMessage(id=None, phone_number=number, status="refused", error=error, message=reason)


def _all_refused(sent: list[SentMessage]) -> ApiError:
    reasons = {entry.error for entry in sent}
    code = reasons.pop() if len(reasons) == 1 else "destinations_refused"
    details = [entry.model_dump(mode="json") for entry in sent]
    return ApiError(code, "every phone number was refused", {"destinations": details})


def _lookable(message_id: str) -> None:
    """No id holds U+0000, and PostgreSQL refuses it in a query: answer before asking."""
    if "\x00" in message_id:
        raise ApiError("not_found", "no message id contains U+0000")


def _batch_id_of(message_id: str) -> str | None:
    if _BATCH_ID.fullmatch(message_id):
        return message_id
    if _BATCH_MESSAGE_ID.fullmatch(message_id):
        return payloads.batch_of(message_id)
    return None


def encode_cursor(accepted_at: datetime, message_id: str) -> str:
    raw = json.dumps([accepted_at.astimezone(timezone.utc).isoformat(), message_id], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        at, message_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None or not isinstance(message_id, str):
            raise ValueError("not a cursor")
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError) as exc:
        raise ApiError("validation_error", "cursor is not one this API returned",
                       {"errors": [{"field": "cursor", "message": "not a cursor this API returned"}]}) from exc
    return moment.astimezone(timezone.utc), message_id


# --- views of the message log ----------------------------------------------------------------

def _summary_fields(message: Message) -> dict[str, Any]:
    state = MessageState(message.state)
    return {
        "id": message.id, "message_id": message.client_message_id, "phone_number": message.phone_number,
        "sender": message.sender, "priority": message.priority, "state": int(state),
        "state_name": state.name.lower(), "result_code": message.result_code, "carrier": message.carrier_id,
        "segments": message.segments, "accepted_at": _utc(message.accepted_at),
        "batch_id": (message.options or {}).get("batch_id"),
    }


def summarize(message: Message) -> MessageSummary:
    return MessageSummary(**_summary_fields(message))


def describe_message(message: Message, callbacks: list[Callback]) -> MessageDetail:
    return MessageDetail(
        **_summary_fields(message),
        segment_submits=[{"seq": s.seq, "carrier": s.carrier_id, "smsc_message_id": s.smsc_message_id,
                          "state": s.state, "submitted_at": _utc(s.submitted_at)} for s in message.submits],
        events=[{"at": _utc(e.at), "kind": e.kind, "state": e.state, "detail": e.detail} for e in message.events],
        callbacks=[{"id": c.id, "kind": c.kind, "status": c.status, "fields": dict(c.fields), "attempts": [
            {"at": _utc(a.at), "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}
            for a in c.attempt_log]} for c in callbacks],
    )
