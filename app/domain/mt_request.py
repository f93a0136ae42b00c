"""Parsing and validating a Genesys MT request (seed 000, "Sending a Mobile Terminated
(MT) Message" parameter table) without any I/O.

:func:`parse_form` turns the raw urlencoded body or query string into parameters;
:func:`parse_mt_request` checks every account-independent rule and returns an
:class:`MtRequest` or raises :class:`~app.domain.result_codes.Rejected` with the
seed's result code. Rules that need the account (sender ownership, message_id
optionality, maximum length, carrier existence) are applied by the submit service
with the helpers at the end of this module.

Decisions where the seed is silent:

* ``sender`` is the table's name, ``shortcode`` the name its own sample clients send:
  either is accepted; both with different values is ambiguous and gets 1.
* ``phone_number`` must be 3 to 15 digits without a leading ``0`` or ``+`` (E.164
  digits, "numeric and in international format").
* ``receipt`` and ``priority`` are matched case-insensitively; an empty value means
  "not given".
* The first occurrence of a repeated parameter wins.
* Message length is counted in characters (Unicode code points).
* MMS (``mms_attachment[n]``): a content type is ``type/subtype`` with optional
  parameters, all printable ASCII (it becomes a MIME header). A ``multipart/*``
  attachment is the whole MMS body as the client built it (seed 000, "Important"), so
  it must be attachment 0 and the only one, and must parse as a multipart with the
  boundary its content type names; otherwise 1. An MMS larger than the gateway's
  ``SMSAGG_MAX_MMS_BYTES`` (the decoded attachments plus the text's UTF-8 bytes)
  gets 8, "Message body too long" (:func:`check_mms_size`).
"""

from __future__ import annotations

import base64
import binascii
import email.errors
import email.policy
import enum
import re
from email.parser import BytesParser
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import parse_qsl

from app.domain.priorities import Priority
from app.domain.result_codes import Rejected, ResultCode
from app.domain.states import DrMask

MAX_ID_LENGTH = 128
_PHONE_NUMBER = re.compile(r"[1-9][0-9]{2,14}")
_ATTACHMENT_KEY = re.compile(r"mms_attachment\[(0|[1-9][0-9]*)\]\.(content_type|content)")
_MIME_TYPE = re.compile(r"[A-Za-z0-9][\w.+-]*/[A-Za-z0-9][\w.+-]*([ \t]*;[\x20-\x7e]*)?", re.ASCII)
# Numeric senders up to 18 digits: the bulk API's ``source`` (seed 001: "Max Length of 18
# if numeric"); seed 000 sets no length, and one sender registry serves both APIs.
_NUMERIC_SENDER = re.compile(r"[0-9]{3,18}")
_ALPHANUMERIC_SENDER = re.compile(r"[A-Za-z0-9 .&_-]{1,11}")


class SenderKind(str, enum.Enum):
    SHORTCODE = "shortcode"
    LONG_NUMBER = "long_number"
    ALPHANUMERIC = "alphanumeric"


@dataclass(frozen=True)
class Attachment:
    content_type: str
    content: bytes


@dataclass(frozen=True)
class MtRequest:
    login: str
    password: str
    phone_number: str
    sender: str
    message: str
    message_id: str | None
    carrier: int | None
    receipt: bool
    app_id: str | None
    conversation_id: str | None
    priority: Priority | None
    attachments: tuple[Attachment, ...]
    dr_mask: DrMask | None = None
    """The REST API's ``dr_mask``; the MT API has no such parameter (seed 000), so its
    messages follow the account's mask."""


def parse_form(raw: bytes | str) -> dict[str, str]:
    """Decode ``application/x-www-form-urlencoded`` strictly as UTF-8.

    Raises ``Rejected(REQUEST_INVALID)`` for bytes that are not UTF-8 once
    percent-decoded, instead of silently replacing them.
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("ascii")
        except UnicodeDecodeError as exc:
            raise Rejected(ResultCode.REQUEST_INVALID, "raw non-ASCII bytes in the form") from exc
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, encoding="utf-8", errors="strict")
    except (UnicodeDecodeError, ValueError) as exc:
        raise Rejected(ResultCode.REQUEST_INVALID, "parameters are not valid UTF-8") from exc
    return first_values(pairs)


def first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    params: dict[str, str] = {}
    for key, value in pairs:
        params.setdefault(key, value)
    return params


def _optional(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value if value else None


def _mandatory(params: Mapping[str, str], name: str) -> str:
    value = params.get(name)
    if not value:
        raise Rejected(ResultCode.REQUEST_INVALID, f"{name} is missing")
    return value


def _bounded(value: str | None, name: str) -> str | None:
    if value is not None and len(value) > MAX_ID_LENGTH:
        raise Rejected(ResultCode.REQUEST_INVALID, f"{name} is longer than {MAX_ID_LENGTH}")
    return value


def _sender(params: Mapping[str, str]) -> str:
    sender, shortcode = _optional(params, "sender"), _optional(params, "shortcode")
    if sender and shortcode and sender != shortcode:
        raise Rejected(ResultCode.REQUEST_INVALID, "sender and shortcode disagree")
    value = sender or shortcode
    if not value:
        raise Rejected(ResultCode.REQUEST_INVALID, "sender is missing")
    return value


def _phone_number(params: Mapping[str, str]) -> str:
    value = _mandatory(params, "phone_number")
    if not _PHONE_NUMBER.fullmatch(value):
        raise Rejected(ResultCode.REQUEST_INVALID, "phone_number is not numeric international format")
    return value


def _receipt(params: Mapping[str, str]) -> bool:
    value = _optional(params, "receipt")
    if value is None:
        return False
    lowered = value.lower()
    if lowered not in ("true", "false"):
        raise Rejected(ResultCode.REQUEST_INVALID, "receipt must be TRUE or FALSE")
    return lowered == "true"


def _priority(params: Mapping[str, str]) -> Priority | None:
    value = _optional(params, "priority")
    if value is None:
        return None
    try:
        return Priority.parse(value)
    except ValueError as exc:
        raise Rejected(ResultCode.REQUEST_INVALID, f"invalid priority {value!r}") from exc


def _carrier(params: Mapping[str, str]) -> int | None:
    value = _optional(params, "carrier")
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or len(value) > 9:
        raise Rejected(ResultCode.CARRIER_INVALID, "carrier is not an integer")
    return int(value)


def parse_attachments(params: Mapping[str, str]) -> tuple[Attachment, ...]:
    """Collect ``mms_attachment[n].content_type`` / ``.content`` pairs.

    They must be numbered consecutively from 0 (seed 000, MT table), each content
    needs its content type and the reverse, and content must be strict base64.
    """
    found: dict[int, dict[str, str]] = {}
    for key, value in params.items():
        if not key.startswith("mms_attachment"):
            continue
        match = _ATTACHMENT_KEY.fullmatch(key)
        if match is None:
            raise Rejected(ResultCode.REQUEST_INVALID, f"malformed attachment parameter {key!r}")
        found.setdefault(int(match.group(1)), {})[match.group(2)] = value
    if sorted(found) != list(range(len(found))):
        raise Rejected(ResultCode.REQUEST_INVALID, "attachments are not numbered consecutively from 0")
    return tuple(_attachment(index, found[index]) for index in range(len(found)))


def _attachment(index: int, fields: Mapping[str, str]) -> Attachment:
    content_type, content = fields.get("content_type"), fields.get("content")
    if not content_type:
        raise Rejected(ResultCode.REQUEST_INVALID, f"attachment {index} has no content type")
    if not _MIME_TYPE.fullmatch(content_type):
        raise Rejected(ResultCode.REQUEST_INVALID, f"attachment {index} content type is not a MIME type")
    if not content:
        raise Rejected(ResultCode.REQUEST_INVALID, f"attachment {index} has no content")
    try:
        data = base64.b64decode(content, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected(ResultCode.REQUEST_INVALID, f"attachment {index} is not valid base64") from exc
    return Attachment(content_type=content_type, content=data)


def _is_multipart(content_type: str) -> bool:
    return content_type.strip().lower().startswith("multipart/")


def check_mms_composition(attachments: tuple[Attachment, ...]) -> None:
    """A ``multipart/*`` attachment is the client's whole MMS body: attachment 0, alone,
    and a multipart that parses with its own boundary."""
    nested = [index for index, a in enumerate(attachments) if _is_multipart(a.content_type)]
    if not nested:
        return
    if nested != [0] or len(attachments) > 1:
        raise Rejected(ResultCode.REQUEST_INVALID, "a multipart/* attachment must be attachment 0 and the only one")
    first = attachments[0]
    entity = BytesParser(policy=email.policy.default).parsebytes(
        b"Content-Type: " + first.content_type.encode("ascii") + b"\r\n\r\n" + first.content)
    broken = (email.errors.StartBoundaryNotFoundDefect, email.errors.CloseBoundaryNotFoundDefect,
              email.errors.NoBoundaryInMultipartDefect, email.errors.MultipartInvariantViolationDefect)
    if not entity.is_multipart() or any(isinstance(d, broken) for d in entity.defects) or not entity.get_payload():
        raise Rejected(ResultCode.REQUEST_INVALID, "attachment 0 is not a multipart with the boundary it names")


def check_mms_size(attachments: tuple[Attachment, ...], message: str, max_bytes: int) -> None:
    """An MMS (attachments plus text) no larger than the gateway accepts: else 8."""
    if not attachments:
        return
    size = sum(len(a.content) for a in attachments) + len(message.encode("utf-8"))
    if size > max_bytes:
        raise Rejected(ResultCode.BODY_TOO_LONG, f"MMS of {size} bytes, limit {max_bytes}")


def parse_mt_request(params: Mapping[str, str]) -> MtRequest:
    """Apply every account-independent rule, in the order that decides the code."""
    login = _mandatory(params, "login")
    password = _mandatory(params, "password")
    phone_number = _phone_number(params)
    sender = _sender(params)
    attachments = parse_attachments(params)
    check_mms_composition(attachments)
    if "message" not in params or (not params["message"] and not attachments):
        raise Rejected(ResultCode.REQUEST_INVALID, "message is missing")
    message_id = _bounded(_optional(params, "message_id"), "message_id")
    receipt = _receipt(params)
    app_id = _bounded(_optional(params, "app_id"), "app_id")
    conversation_id = _bounded(_optional(params, "conversation_id"), "conversation_id")
    priority = _priority(params)
    return MtRequest(
        login=login,
        password=password,
        phone_number=phone_number,
        sender=sender,
        message=params["message"],
        message_id=message_id,
        carrier=_carrier(params),
        receipt=receipt,
        app_id=app_id,
        conversation_id=conversation_id,
        priority=priority,
        attachments=attachments,
    )


def classify_sender(address: str) -> SenderKind | None:
    """What kind of source address this is, or ``None`` if it is none of them.

    Up to 8 digits is a shortcode, 9 to 18 digits a long number, otherwise up to
    11 letters, digits, spaces and ``.&_-`` (with at least one letter) an
    alphanumeric sender id.
    """
    if _NUMERIC_SENDER.fullmatch(address):
        return SenderKind.SHORTCODE if len(address) <= 8 else SenderKind.LONG_NUMBER
    if _ALPHANUMERIC_SENDER.fullmatch(address) and any(c.isalpha() for c in address):
        return SenderKind.ALPHANUMERIC
    return None


def check_length(message: str, max_length: int) -> None:
    if len(message) > max_length:
        raise Rejected(ResultCode.BODY_TOO_LONG, f"message has {len(message)} characters, limit {max_length}")
