"""The REST API's request and response bodies as pydantic models: they validate what
comes in (strict JSON types, unknown fields refused) and, as JSON Schema, are the
``components/schemas`` of the OpenAPI document (:mod:`app.api.spec`).

Constraints shared with the MT API are the MT API's: a phone number is 3 to 15 digits
without ``+`` or a leading 0 (:mod:`app.domain.mt_request`), client ids are at most
:data:`~app.domain.mt_request.MAX_ID_LENGTH` characters. No string may hold U+0000
(PostgreSQL text cannot store it).
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, model_validator

from app.api.errors import ERROR_CODES, REFUSAL_CODES
from app.domain.mt_request import MAX_ID_LENGTH
from app.domain.priorities import Priority
from app.domain.states import DrMask, MessageState

MAX_PHONE_NUMBERS = 100_000
"""A ceiling above any sensible SMSAGG_BULK_MAX_DESTINATIONS (checked by the service): a
longer list is refused before its items are validated one by one."""
MAX_PAGE_SIZE = 200
DEFAULT_PAGE_SIZE = 50
_NO_NUL = r"^[^\x00]*$"

_RFC3339 = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?([Zz]|[+-][0-9]{2}:[0-9]{2})")


def _rfc3339(value: object) -> object:
    """Only RFC 3339 date-times with an offset (pydantic alone also takes epoch numbers)."""
    if not isinstance(value, str):
        return value
    if not _RFC3339.fullmatch(value):
        raise ValueError("not an RFC 3339 date-time with an offset, e.g. 2026-12-01T09:30:00Z")
    try:
        return datetime.fromisoformat(value.upper()).astimezone(timezone.utc)
    except OverflowError as exc:
        raise ValueError("out of range once converted to UTC") from exc


def _digits(value: object) -> object:
    """Only plain decimal digits in a query integer (pydantic alone also takes ' +5', '5.0', '5_0')."""
    if not isinstance(value, str):
        return value
    if not re.fullmatch(r"[0-9]{1,6}", value):
        raise ValueError("not a decimal integer")
    return int(value)


DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339)]
PhoneNumber = Annotated[str, StringConstraints(pattern=r"^[1-9][0-9]{2,14}$")]
ClientId = Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH, pattern=_NO_NUL)]
Text = Annotated[str, StringConstraints(pattern=_NO_NUL)]
StateName = Literal[tuple(state.name.lower() for state in MessageState)]  # type: ignore[valid-type]
ErrorCode = Literal[tuple(ERROR_CODES)]  # type: ignore[valid-type]
RefusalCode = Literal[tuple(REFUSAL_CODES)]  # type: ignore[valid-type]


class _Request(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class Attachment(_Request):
    """An MMS part, as the MT API's `mms_attachment[n]` pair."""

    content_type: Annotated[str, StringConstraints(min_length=1, max_length=255, pattern=_NO_NUL)]
    content: Annotated[str, StringConstraints(min_length=1)] = Field(description="base64")


class SendRequest(_Request):
    """One message to one or many phone numbers, now or at `send_at`.

    One phone number sent now (no `send_at`, or one already past) goes the MT API's way
    (its account rules, token bucket and idempotency claim). Several phone numbers, or a
    `send_at` ahead, make a batch that goes the bulk API's way (its content rules, DND
    registry and duplicate window; no token bucket); `carrier`, `app_id`,
    `conversation_id` and `attachments` are only for one phone number without
    `send_at`."""

    phone_numbers: list[PhoneNumber] = Field(
        min_length=1, max_length=MAX_PHONE_NUMBERS, json_schema_extra={"uniqueItems": True},
        description="Destinations, E.164 digits without '+'; at most SMSAGG_BULK_MAX_DESTINATIONS "
                    "(10,000 by default)")
    sender: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=_NO_NUL)] = Field(
        description="A sender registered to the account")
    message: Text = Field(description="The text; may be empty only with attachments")
    message_id: ClientId | None = Field(
        default=None, description="Idempotency key, unique per account (the MT API's message_id); "
                                  "the Idempotency-Key header may carry it instead")
    priority: Priority | None = Field(default=None, description="Default: the account's priority")
    receipt: bool = Field(default=False, description="Send delivery reports to the account's DR URL")
    dr_mask: DrMask | None = Field(
        default=None, description="With receipt: which states are called back, `all` (6 when the SMSC accepts "
                                  "the message, then the final state) or `final` (the final state only). "
                                  "Default: the account's mask (`smsagg account update --dr-mask`)")
    send_at: DateTime | None = Field(
        default=None, description="RFC 3339 with an offset; a moment already past sends now")
    carrier: Annotated[int, Field(ge=0, le=999_999_999)] | None = None
    app_id: ClientId | None = None
    conversation_id: ClientId | None = None
    attachments: list[Attachment] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> "SendRequest":
        if len(set(self.phone_numbers)) != len(self.phone_numbers):
            raise ValueError("phone_numbers repeats a number")
        if not self.message and not self.attachments:
            raise ValueError("message is empty and there are no attachments")
        if self.is_batch and (self.carrier is not None or self.app_id or self.conversation_id or self.attachments):
            raise ValueError("carrier, app_id, conversation_id and attachments are only for one phone number "
                             "without send_at")
        return self

    @property
    def is_batch(self) -> bool:
        return len(self.phone_numbers) > 1 or self.send_at is not None


class SentMessage(BaseModel):
    id: str | None = Field(description="smsagg's message id; null when refused")
    phone_number: str
    status: Literal["accepted", "refused"]
    error: RefusalCode | None = None
    message: str | None = Field(default=None, description="Why it was refused")


class SendResponse(BaseModel):
    batch_id: str | None = Field(description="Set for a batch (several numbers or scheduled)")
    message_id: str | None = Field(description="The idempotency key, as given")
    send_at: datetime | None = Field(description="When a scheduled batch is due (UTC)")
    messages: list[SentMessage]


class SegmentSubmit(BaseModel):
    seq: int
    carrier: int
    smsc_message_id: str | None
    state: int
    submitted_at: datetime | None


class Event(BaseModel):
    at: datetime
    kind: str
    state: int | None
    detail: dict[str, Any]


class CallbackAttempt(BaseModel):
    at: datetime
    status_code: int | None
    latency_ms: float | None
    error: str | None


class Callback(BaseModel):
    id: str
    kind: Literal["dr", "mo"]
    status: Literal["pending", "delivered", "dead"]
    fields: dict[str, str]
    attempts: list[CallbackAttempt]


class MessageSummary(BaseModel):
    id: str
    message_id: str | None = Field(description="The client's message_id (idempotency key)")
    phone_number: str
    sender: str
    priority: Priority
    state: int = Field(ge=1, le=8, description="The Genesys DR message_state")
    state_name: StateName
    result_code: int | None
    carrier: int | None
    segments: int | None
    accepted_at: datetime
    batch_id: str | None


class MessageDetail(MessageSummary):
    """A message and its timeline. A message of a batch not recorded yet (waiting for
    its time, or being fanned out) is shown from the batch, with `schedule_status`."""

    send_at: datetime | None = Field(default=None, description="A batch's due time (UTC)")
    schedule_status: Literal["scheduled", "released", "cancelled"] | None = None
    segment_submits: list[SegmentSubmit]
    events: list[Event]
    callbacks: list[Callback]


class MessagePage(BaseModel):
    messages: list[MessageSummary]
    next_cursor: str | None = Field(description="Pass as cursor for the next page; null on the last one")


class ListQuery(BaseModel):
    """Query parameters of the paged list (strings in the URL, so not strict)."""

    model_config = ConfigDict(extra="forbid")

    state: StateName | None = None
    since: DateTime | None = Field(default=None, description="accepted_at >= since (RFC 3339)")
    until: DateTime | None = Field(default=None, description="accepted_at < until (RFC 3339)")
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE_SIZE), BeforeValidator(_digits)] = DEFAULT_PAGE_SIZE
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=200)] | None = None


class CancelResponse(BaseModel):
    batch_id: str
    status: Literal["cancelled"]
    messages: int = Field(description="How many messages the batch held")


class FieldError(BaseModel):
    field: str
    message: str


class Error(BaseModel):
    error: ErrorCode
    message: str
    errors: list[FieldError] | None = Field(default=None, description="validation_error, unknown_field")
    existing_id: str | None = Field(default=None, description="duplicate: the message or batch holding the key")
    retry_after: float | None = Field(default=None, description="throttled: seconds to wait")
    state: str | None = Field(default=None, description="not_cancellable: why")
    destinations: list[SentMessage] | None = Field(default=None, description="every phone number refused")
