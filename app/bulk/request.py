"""Parsing and validating a bulk SMS API request (seed 001, ``/bulksms/bulksms`` and
``/bulksms/schedulemsg``) without any I/O.

:func:`parse_form_strict` decodes the query string or form body, keeping a value that is
not proper percent-encoded UTF-8 as :data:`GARBLED` so the parameter it belongs to can
be blamed with its own code. :func:`parse_bulk_request` then walks :data:`PARAMETERS`,
a table of (parameter, code for an invalid value, validator), in the order that
decides the code, and returns a :class:`BulkRequest` with one :class:`Destination` per
comma-separated destination, each already marked 1706 or 1041 where the request alone
decides it. Rules that need the account, the registries or Redis are applied by
:mod:`app.bulk.service`.

The codes, as smsagg decides them where the seed is terse (``docs/bulk.md`` has the
full table):

=====  ==========================  ===================================================
1701   submitted                   this destination's message is durably queued
                                   (or scheduled)
1702   invalid URL                 a parameter is missing or blank; a parameter name
                                   that is not proper percent-encoded UTF-8; the request
                                   body is larger than the gateway's limit; ``date``,
                                   ``time`` or ``gmt`` missing, unparseable or further
                                   ahead than the horizon
1703   invalid username/password   the value cannot be a credential: longer than 64
                                   (username) / 128 (password) characters, control
                                   characters, or not valid UTF-8. Not retryable.
1704   invalid type                not one of 0, 1, 2, 4, 5, 6, 7 (3 is reserved)
1705   invalid message             not valid UTF-8; characters the type's alphabet
                                   cannot write (type 0/1: GSM 03.38, 5/7: ISO-8859-1);
                                   longer than the account's maximum length; type 4
                                   not ``URL [text]`` or too long for a push
1706   invalid destination         per destination: not 3 to 15 digits (E.164, an
                                   optional leading ``+``, no leading 0). For the whole
                                   request: more destinations than the configured
                                   maximum, or a destination list that is not valid
                                   UTF-8
1707   invalid source              not numeric (up to 18 digits, an optional ``+``) or
                                   alphanumeric (up to 11 of ``A-Z a-z 0-9 space .&_-``,
                                   at least one letter); or not a sender registered to
                                   this account
1708   invalid dlr                 not 0 or 1
1709   user validation failed      well-formed credentials that do not match an
                                   enabled account (the only retryable code: a password
                                   being rotated, an account being re-enabled)
1710   internal error              Redis or the database could not be reached before
                                   anything was queued; nothing was queued or charged
1715   response timeout            Redis received the request but its answer was lost
                                   and a follow-up could not learn the outcome: the
                                   message may have been queued, do NOT resubmit
1725   insufficient credit         a prepaid account's balance does not cover every
                                   otherwise-accepted destination of the request:
                                   those all get 1725 and nothing is queued or charged
1732   DND reject                  the destination is on the operator's
                                   do-not-disturb registry (every account)
1028   spam message                the text matches an operator spam rule
1041   duplicate message           the same account sent the same text to this
                                   destination within the duplicate window (also a
                                   destination repeated within one request)
1042   explicit DND destination    the destination opted out of this account (an MO
                                   STOP, or the operator on its behalf)
1033   template mismatch           the account sends only registered templates and the
                                   text matches none
16     IP blacklisted              the client IP is on the operator's denylist
18     non-whitelisted user IP     the account has an IP allowlist and the client IP
                                   is not on it
69, 8  internal error              never returned at submission: they are SMPP 3.4
                                   ``command_status`` values (0x45 submit failed, 0x08
                                   system error) the seed lets through; smsagg answers
                                   before the SMSC is involved, so SMPP outcomes reach the
                                   client as delivery reports
=====  ==========================  ===================================================
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import unquote_to_bytes

from app.domain import wap_push
from app.domain.encoding import Encoding, UnencodableText, plan_encoding
from app.domain.states import DrMask
from app.bulk.schedule import InvalidSchedule, parse_schedule

MAX_USERNAME_LENGTH = 64
MAX_PASSWORD_LENGTH = 128
_E164 = re.compile(r"[1-9][0-9]{2,14}")
_NUMERIC_SOURCE = re.compile(r"\+?[0-9]{1,18}")
_ALPHANUMERIC_SOURCE = re.compile(r"[A-Za-z0-9 .&_-]{1,11}")
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
SCHEDULE_PARAMETERS = ("date", "time", "gmt")


class BulkCode(enum.IntEnum):
    SUBMITTED = 1701
    INVALID_URL = 1702
    INVALID_CREDENTIALS = 1703
    INVALID_TYPE = 1704
    INVALID_MESSAGE = 1705
    INVALID_DESTINATION = 1706
    INVALID_SOURCE = 1707
    INVALID_DLR = 1708
    USER_VALIDATION_FAILED = 1709
    INTERNAL_ERROR = 1710
    RESPONSE_TIMEOUT = 1715
    INSUFFICIENT_CREDIT = 1725
    DND_REJECT = 1732
    SPAM = 1028
    DUPLICATE = 1041
    EXPLICIT_DND = 1042
    TEMPLATE_MISMATCH = 1033
    SMPP_SUBMIT_FAILED = 69
    SMPP_SYSTEM_ERROR = 8
    IP_BLACKLISTED = 16
    IP_NOT_WHITELISTED = 18


class BulkRejected(Exception):
    """The whole request refused with ``code``; ``reason`` is for logs and docs only."""

    def __init__(self, code: BulkCode, reason: str):
        super().__init__(f"{int(code)}: {reason}")
        self.code = code
        self.reason = reason


class _Garbled(str):
    """A value that was not proper percent-encoded UTF-8 (compares unequal to any text)."""


GARBLED = _Garbled("\x00garbled\x00")


@dataclass(frozen=True)
class MessageType:
    """One row of the seed's ``type`` table and how it goes out."""

    code: int
    name: str
    encoding: Encoding | None
    flash: bool = False
    wap_push: bool = False


MESSAGE_TYPES: Mapping[str, MessageType] = {
    "0": MessageType(0, "plain text, GSM 03.38", Encoding.GSM7),
    "1": MessageType(1, "flash, GSM 03.38", Encoding.GSM7, flash=True),
    "2": MessageType(2, "Unicode", Encoding.UCS2),
    "4": MessageType(4, "WAP Push", None, wap_push=True),
    "5": MessageType(5, "plain text, ISO-8859-1", Encoding.LATIN1),
    "6": MessageType(6, "Unicode flash", Encoding.UCS2, flash=True),
    "7": MessageType(7, "flash, ISO-8859-1", Encoding.LATIN1, flash=True),
}


@dataclass(frozen=True)
class MessagePlan:
    """How the text goes out: SMPP data_coding and the parts billed per destination."""

    data_coding: int
    segments: int


@dataclass(frozen=True)
class Destination:
    """One entry of ``destination``: ``number`` is E.164 digits (no ``+``) when valid;
    ``code`` is set when the request alone already decides this entry (1706, 1041)."""

    index: int
    given: str
    number: str | None
    code: BulkCode | None = None


@dataclass(frozen=True)
class BulkRequest:
    username: str
    password: str
    message_type: MessageType
    dlr: bool
    source: str
    message: str
    plan: MessagePlan
    destinations: tuple[Destination, ...]
    scheduled_at: datetime | None = None
    dr_mask: DrMask | None = None
    """The REST API's ``dr_mask``; the bulk API has none (seed 001's ``dlr`` is only on or
    off), so its messages follow the account's mask."""

    @property
    def candidates(self) -> tuple[Destination, ...]:
        return tuple(d for d in self.destinations if d.code is None)


def parse_form_strict(raw: bytes | str) -> dict[str, str]:
    """``application/x-www-form-urlencoded`` to the first value of each name.

    A value with a malformed ``%`` escape or bytes that are not UTF-8 becomes
    :data:`GARBLED`; a malformed name refuses the request (1702).
    """
    if isinstance(raw, bytes):
        try:
            raw = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BulkRejected(BulkCode.INVALID_URL, "the request is not UTF-8") from exc
    params: dict[str, str] = {}
    for pair in raw.split("&"):
        if not pair:
            continue
        name, _, value = pair.partition("=")
        decoded_name = _decode(name)
        if decoded_name is GARBLED:
            raise BulkRejected(BulkCode.INVALID_URL, f"malformed parameter name {name[:40]!r}")
        params.setdefault(decoded_name, _decode(value))
    return params


def _decode(component: str) -> str:
    if _BAD_ESCAPE.search(component):
        return GARBLED
    try:
        return unquote_to_bytes(component.replace("+", " ")).decode("utf-8")
    except UnicodeDecodeError:
        return GARBLED


def wants_schedule(params: Mapping[str, str]) -> bool:
    """The seed's own scheduler examples call ``/bulksms/bulksms`` with date/time/gmt:
    any of them present makes a request a scheduled one, on either path."""
    return any(params.get(name) for name in SCHEDULE_PARAMETERS)


# --- validators: each returns the cleaned value or raises BulkRejected with its code ---------

def _credential(limit: int) -> Callable[[str], str]:
    def check(value: str) -> str:
        if value is GARBLED or len(value) > limit or _CONTROL.search(value):
            raise BulkRejected(BulkCode.INVALID_CREDENTIALS, "username or password is not a possible credential")
        return value

    return check


def _message_type(value: str) -> MessageType:
    try:
        return MESSAGE_TYPES[value]
    except KeyError:
        raise BulkRejected(BulkCode.INVALID_TYPE, f"type {value[:10]!r} is not 0, 1, 2, 4, 5, 6 or 7") from None


def _dlr(value: str) -> bool:
    if value not in ("0", "1"):
        raise BulkRejected(BulkCode.INVALID_DLR, f"dlr {value[:10]!r} is not 0 or 1")
    return value == "1"


def normalize_source(value: str) -> str | None:
    """The source as it goes out (numeric without ``+``), or ``None`` if invalid."""
    if value is GARBLED:
        return None
    stripped = value.strip()
    if _NUMERIC_SOURCE.fullmatch(stripped):
        return stripped.lstrip("+")
    if _ALPHANUMERIC_SOURCE.fullmatch(stripped) and any(c.isalpha() for c in stripped):
        return stripped
    return None


def _source(value: str) -> str:
    source = normalize_source(value)
    if source is None:
        raise BulkRejected(BulkCode.INVALID_SOURCE, "source is neither numeric (<= 18) nor alphanumeric (<= 11)")
    return source


def _message(value: str) -> str:
    if value is GARBLED:
        raise BulkRejected(BulkCode.INVALID_MESSAGE, "message is not valid UTF-8 percent-encoding")
    return value


def plan_message(text: str, message_type: MessageType) -> MessagePlan:
    """Encoding and part count for ``text`` sent as ``message_type`` (1705 if impossible)."""
    if message_type.wap_push:
        try:
            _, _, parts = wap_push.plan(text)
        except wap_push.InvalidWapPush as exc:
            raise BulkRejected(BulkCode.INVALID_MESSAGE, str(exc)) from exc
        return MessagePlan(data_coding=wap_push.DATA_CODING_8BIT, segments=parts)
    try:
        plan = plan_encoding(text, requested=message_type.encoding, flash=message_type.flash)
    except UnencodableText as exc:
        raise BulkRejected(BulkCode.INVALID_MESSAGE, f"type {message_type.code}: {exc}") from exc
    return MessagePlan(data_coding=plan.data_coding, segments=plan.segments)


def normalize_destination(given: str) -> str | None:
    """E.164 digits for one destination entry (``+`` optional), or ``None``."""
    number = given.strip()
    number = number[1:] if number.startswith("+") else number
    return number if _E164.fullmatch(number) else None


def echo(given: str) -> str:
    """A destination as it may appear in a reply entry (no separators, bounded)."""
    return _CONTROL.sub("", given.strip()).replace("|", "").replace(",", "")[:32]


def parse_destinations(value: str, *, max_destinations: int) -> tuple[Destination, ...]:
    if value is GARBLED:
        raise BulkRejected(BulkCode.INVALID_DESTINATION, "destination is not valid UTF-8 percent-encoding")
    entries = [entry for entry in value.split(",") if entry.strip()]
    if not entries:
        raise BulkRejected(BulkCode.INVALID_URL, "destination is blank")
    if len(entries) > max_destinations:
        raise BulkRejected(BulkCode.INVALID_DESTINATION, f"{len(entries)} destinations; at most {max_destinations}")
    seen: set[str] = set()
    destinations = []
    for index, entry in enumerate(entries):
        number = normalize_destination(entry)
        code = None
        if number is None:
            code = BulkCode.INVALID_DESTINATION
        elif number in seen:
            code = BulkCode.DUPLICATE
        else:
            seen.add(number)
        destinations.append(Destination(index, echo(entry), number, code))
    return tuple(destinations)


@dataclass(frozen=True)
class Parameter:
    name: str
    validate: Callable[[str], object]


PARAMETERS: tuple[Parameter, ...] = (
    Parameter("username", _credential(MAX_USERNAME_LENGTH)),   # 1703
    Parameter("password", _credential(MAX_PASSWORD_LENGTH)),   # 1703
    Parameter("type", _message_type),                          # 1704
    Parameter("dlr", _dlr),                                    # 1708
    Parameter("source", _source),                              # 1707
    Parameter("message", _message),                            # 1705
    Parameter("destination", lambda value: value),             # 1706, checked last
)
"""Mandatory parameters, in the order that decides the code: first any missing or blank
one (1702), then each value's own code in this order, then the message against its type
(1705), then the schedule (1702), then the destination list (1706 per entry)."""


def parse_bulk_request(
    params: Mapping[str, str], *, max_destinations: int, scheduled: bool = False
) -> BulkRequest:
    for parameter in PARAMETERS + tuple(Parameter(n, str) for n in SCHEDULE_PARAMETERS if scheduled):
        value = params.get(parameter.name)
        if value is None or (value is not GARBLED and not value.strip()):
            raise BulkRejected(BulkCode.INVALID_URL, f"{parameter.name} is missing or blank")
    values = {p.name: p.validate(params[p.name]) for p in PARAMETERS}
    message_type: MessageType = values["type"]
    plan = plan_message(values["message"], message_type)
    scheduled_at = None
    if scheduled:
        if any(params[name] is GARBLED for name in SCHEDULE_PARAMETERS):
            raise BulkRejected(BulkCode.INVALID_URL, "date, time or gmt is not valid UTF-8 percent-encoding")
        try:
            scheduled_at = parse_schedule(params["date"], params["time"], params["gmt"])
        except InvalidSchedule as exc:
            raise BulkRejected(BulkCode.INVALID_URL, exc.reason) from exc
    return BulkRequest(
        username=values["username"],
        password=values["password"],
        message_type=message_type,
        dlr=values["dlr"],
        source=values["source"],
        message=values["message"],
        plan=plan,
        destinations=parse_destinations(params["destination"], max_destinations=max_destinations),
        scheduled_at=scheduled_at,
    )


def format_entries(entries: list[tuple[int, str, str]]) -> str:
    """The seed's reply: ``<code>|<destination>|<message_id>`` entries, comma-separated."""
    return ",".join(f"{int(code)}|{destination}|{message_id}" for code, destination, message_id in entries)


def format_refusal(code: BulkCode) -> str:
    """A whole request refused: one entry, destination and message id empty."""
    return f"{int(code)}||"
