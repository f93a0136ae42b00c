"""The pure core of the mobile services (GMS-compatible, seed 003). No I/O, no clock.

What this module promises:

* **Errors are data.** Every refusal is a :class:`GmsError` carrying its HTTP status,
  a stable machine code and, when a request parameter is at fault, the parameter's
  name. The web layer only serialises them.
* **Parameters.** A create request is split into control parameters (names starting
  with ``_``) and application data (everything else). Booleans, integers and TTLs are
  parsed here with bounds, so a negative or absurd value never reaches Redis.
* **Configured services win, but not everywhere.** A custom service from ``gms.ini``
  fixes some control parameters; as the seed says, a configured value supersedes the
  value passed on the request (:func:`effective_parameters`). The exception is
  ``_booking_expiration_timeout``, which the seed (request-access) says "will override
  the value in Resource options and in CME options": the request's value wins, then the
  resource group's, then the service's configured one (:func:`booking_seconds`).
* **Access codes** come from :mod:`secrets` (:func:`new_access_codes`).
* **Matching** a call to a reservation (:func:`reservation_matches`) and the chat
  transcript (:class:`TranscriptEntry`, :func:`chat_response`) are value logic.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field

# --- errors --------------------------------------------------------------------------


class GmsError(Exception):
    """A refused GMS request: ``status`` is the HTTP status, ``code`` a stable token."""

    status = 400
    code = "bad_request"

    def __init__(self, message: str, *, parameter: str | None = None, retry_after: int | None = None):
        super().__init__(message)
        self.message = message
        self.parameter = parameter
        self.retry_after = retry_after

    def to_json(self) -> dict:
        body = {"error": self.code, "message": self.message}
        if self.parameter is not None:
            body["parameter"] = self.parameter
        return body


class MissingParameter(GmsError):
    status, code = 400, "missing_parameter"

    def __init__(self, name: str, why: str = ""):
        super().__init__(f"parameter {name} is mandatory{': ' + why if why else ''}", parameter=name)


class InvalidParameter(GmsError):
    status, code = 400, "invalid_parameter"

    def __init__(self, name: str, why: str):
        super().__init__(f"parameter {name} is invalid: {why}", parameter=name)


class Unauthorized(GmsError):
    status, code = 401, "unauthorized"


class Forbidden(GmsError):
    status, code = 403, "forbidden"


class UnknownService(GmsError):
    status, code = 404, "unknown_service"

    def __init__(self, name: str):
        super().__init__(f"no service named {name!r} is defined", parameter="service")


class ServiceNotFound(GmsError):
    status, code = 404, "service_not_found"


class StorageNotFound(GmsError):
    status, code = 404, "storage_not_found"


class NoMatch(GmsError):
    status, code = 404, "no_match"


class ChatNotFound(GmsError):
    status, code = 404, "chat_not_found"


class ChatStateConflict(GmsError):
    status, code = 409, "chat_state"


class ResourceExhausted(GmsError):
    """Every access number of the group is reserved: 503 with ``Retry-After``."""

    status, code = 503, "resource_group_exhausted"


class AccessCodesExhausted(GmsError):
    status, code = 503, "access_codes_exhausted"


class AuthenticationBusy(GmsError):
    """Every password check slot of the process is taken (docs/security.md): 503 with
    ``Retry-After``, at once, instead of a request thread queued behind the KDF."""

    status, code = 503, "authentication_busy"


class AuthenticationUnavailable(GmsError):
    """The failed-login counts (Redis) cannot be read, so the password is not checked."""

    status, code = 503, "authentication_unavailable"


class PayloadTooLarge(GmsError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(GmsError):
    status, code = 415, "unsupported_media_type"


# --- parameter parsing -----------------------------------------------------------------

_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")
_PHONE = re.compile(r"^\+?[0-9()\-. ]{1,32}$")
_DIGITS = re.compile(r"^[0-9]{1,32}$")


def parse_bool(name: str, raw: str | None, default: bool | None = None) -> bool | None:
    if raw is None or raw.strip() == "":
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise InvalidParameter(name, f"{raw!r} is not a boolean (true/false)")


def parse_int(name: str, raw: str | int | None, *, minimum: int, maximum: int, default: int | None = None) -> int | None:
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        return default
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise InvalidParameter(name, f"{raw!r} is not an integer") from None
    if value < minimum or value > maximum:
        raise InvalidParameter(name, f"{value} is outside {minimum}..{maximum}")
    return value


def parse_ttl(raw: str | int | None, *, maximum: int, name: str = "ttl") -> int:
    """A time to live in whole seconds, 1..``maximum``; ``None`` is missing."""
    if raw is None or (isinstance(raw, str) and raw.strip() == ""):
        raise MissingParameter(name)
    value = parse_int(name, raw, minimum=1, maximum=maximum)
    assert value is not None
    return value


def validate_name(name: str, what: str, parameter: str) -> str:
    if not _NAME.match(name or ""):
        raise InvalidParameter(parameter, f"{what} {name!r} must be 1-64 letters, digits, '_', '.', '-'")
    return name


def normalise_phone(name: str, raw: str | None) -> str | None:
    """A phone number reduced to its digits (a leading ``+`` and formatting dropped)."""
    if raw is None or raw.strip() == "":
        return None
    if not _PHONE.match(raw.strip()):
        raise InvalidParameter(name, f"{raw!r} is not a phone number")
    digits = re.sub(r"[^0-9]", "", raw)
    if not digits:
        raise InvalidParameter(name, f"{raw!r} is not a phone number")
    return digits


def normalise_access_number(name: str, raw: str) -> str:
    digits = re.sub(r"[^0-9]", "", raw or "")
    if not digits or not _PHONE.match((raw or "").strip()):
        raise InvalidParameter(name, f"{raw!r} is not an access number")
    return digits


def phones_match(a: str | None, b: str | None) -> bool:
    """Caller ids arrive with or without country code: equal digits match, and so does a
    suffix of at least 7 digits (``6504669999`` matches ``16504669999``)."""
    if not a or not b:
        return False
    if a == b:
        return True
    shorter, longer = sorted((a, b), key=len)
    return len(shorter) >= 7 and longer.endswith(shorter)


@dataclass(frozen=True)
class UploadedFile:
    """A file part of a multipart request, read into memory (the size is bounded)."""

    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class CreateRequest:
    """A service create request, split: ``control`` holds the ``_`` parameters,
    ``data`` the application data (strings), ``files`` the uploaded application files."""

    control: dict[str, str]
    data: dict[str, str]
    files: dict[str, UploadedFile] = field(default_factory=dict)


MAX_PARAMETER_NAME = 128


def split_parameters(fields: Mapping[str, str], files: Mapping[str, UploadedFile] | None = None) -> CreateRequest:
    control: dict[str, str] = {}
    data: dict[str, str] = {}
    for raw_name, value in fields.items():
        name = raw_name.strip()
        if not name or len(name) > MAX_PARAMETER_NAME:
            raise InvalidParameter(raw_name[:MAX_PARAMETER_NAME] or "(empty)", "parameter names are 1-128 characters")
        (control if name.startswith("_") else data)[name] = value
    uploaded: dict[str, UploadedFile] = {}
    for raw_name, upload in (files or {}).items():
        name = raw_name.strip()
        if not name or len(name) > MAX_PARAMETER_NAME or name.startswith("_"):
            raise InvalidParameter(raw_name[:MAX_PARAMETER_NAME] or "(empty)", "file parts need a name not starting with '_'")
        uploaded[name] = upload
    return CreateRequest(control=control, data=data, files=uploaded)


# --- services --------------------------------------------------------------------------


class Builtin(str, enum.Enum):
    REQUEST_INTERACTION = "request-interaction"
    REQUEST_ACCESS = "request-access"
    MATCH_INTERACTION = "match-interaction"
    REQUEST_CHAT = "request-chat"


DEFAULT_TTL = {
    Builtin.REQUEST_INTERACTION: 30,  # the seed's default
    Builtin.REQUEST_ACCESS: 30,
    Builtin.MATCH_INTERACTION: 30,
    Builtin.REQUEST_CHAT: 3600,  # a chat outlives a call's 30 s; refreshed on activity
}

# Options of a configured service that fix a control parameter of its built-in.
CONFIGURABLE = {
    "provide_code": "_provide_code",
    "resource_group": "_resource_group",
    "phone_number": "_phone_number",
    "booking_expiration_timeout": "_booking_expiration_timeout",
    "chat_endpoint": "_chat_endpoint",
}
# ... except these, which a configured service only defaults: the request's value wins.
REQUEST_OVERRIDES = frozenset({"booking_expiration_timeout"})
MAX_BOOKING_SECONDS = 86400
DEFAULT_CHAT_ENDPOINT = "default"


@dataclass(frozen=True)
class ServiceDefinition:
    """A service the API can create: a built-in under its own name, or a custom
    service from ``gms.ini`` (``[service:NAME]``) with fixed options."""

    name: str
    builtin: Builtin
    ttl: int | None = None
    options: Mapping[str, str] = field(default_factory=dict)
    access_code_length: int | None = None

    @property
    def effective_ttl(self) -> int:
        return self.ttl if self.ttl is not None else DEFAULT_TTL[self.builtin]


BUILTINS = {b.value: ServiceDefinition(name=b.value, builtin=b) for b in Builtin}


def effective_parameters(definition: ServiceDefinition, control: Mapping[str, str]) -> dict[str, str]:
    """The control parameters a service runs with: the request's, with every value the
    configuration fixes put over it (the seed: configured values supersede passed ones),
    but for :data:`REQUEST_OVERRIDES`, which :func:`booking_seconds` resolves."""
    merged = dict(control)
    for option, parameter in CONFIGURABLE.items():
        if option in definition.options and option not in REQUEST_OVERRIDES:
            merged[parameter] = definition.options[option]
    return merged


def booking_seconds(control: Mapping[str, str], group: ResourceGroup, definition: ServiceDefinition,
                    default: int) -> int:
    """How long an access number is reserved. Seed 003, request-access,
    ``_booking_expiration_timeout``: "This parameter will override the value in Resource
    options and in CME options". So: the request's value, else the resource group's
    ``booking_timeout``, else the service's configured ``booking_expiration_timeout``,
    else ``[gms] booking_expiration_timeout`` (``default``)."""
    requested = parse_int("_booking_expiration_timeout", control.get("_booking_expiration_timeout"),
                          minimum=1, maximum=MAX_BOOKING_SECONDS)
    configured = parse_int("booking_expiration_timeout", definition.options.get("booking_expiration_timeout"),
                           minimum=1, maximum=MAX_BOOKING_SECONDS)
    return requested or group.booking_timeout or configured or default


def chat_endpoint_name(raw: str | None, parameter: str = "_chat_endpoint") -> str | None:
    """The endpoint (agent group) a chat is routed to. GMS names one ``tenant:endpoint``
    (``Environment:default``); smsagg serves one tenant, so only the part after the last
    ``:`` names it. ``None`` when not given."""
    if raw is None or raw.strip() == "":
        return None
    name = raw.strip().rpartition(":")[2].strip()
    return validate_name(name, "chat endpoint", parameter)


# --- access information ----------------------------------------------------------------

DEFAULT_ACCESS_CODE_LENGTH = 6
MAX_ACCESS_CODE_LENGTH = 12


def new_access_codes(length: int, count: int = 8) -> list[str]:
    """``count`` distinct candidate codes of ``length`` digits from a CSPRNG; the
    reservation script takes the first one no live reservation of the number uses."""
    if not 1 <= length <= MAX_ACCESS_CODE_LENGTH:
        raise InvalidParameter("access_code_length", f"{length} is outside 1..{MAX_ACCESS_CODE_LENGTH}")
    space = 10**length
    wanted = min(count, space)
    codes: list[str] = []
    while len(codes) < wanted:
        code = str(secrets.randbelow(space)).zfill(length)
        if code not in codes:
            codes.append(code)
    return codes


class Strategy(str, enum.Enum):
    RANDOM = "random"
    ROUND_ROBIN = "round-robin"

    @classmethod
    def parse(cls, raw: str, parameter: str = "strategy") -> Strategy:
        lowered = (raw or "").strip().lower().replace("_", "-")
        if lowered in {"roundrobin", "rr"}:
            lowered = "round-robin"
        try:
            return cls(lowered)
        except ValueError:
            raise InvalidParameter(parameter, f"{raw!r} is not random or round-robin") from None


@dataclass(frozen=True)
class ResourceGroup:
    """A named pool of access numbers (DNIS)."""

    name: str
    numbers: tuple[str, ...]
    strategy: Strategy = Strategy.RANDOM
    booking_timeout: int | None = None  # seconds; None = the service's / global default
    source: str = "database"  # or "config"


def allocation_order(group: ResourceGroup) -> list[str]:
    """The order the reservation script tries numbers in. Random: a fresh CSPRNG
    shuffle. Round robin: the configured order (the script rotates the start)."""
    numbers = list(group.numbers)
    if group.strategy is Strategy.RANDOM:
        secrets.SystemRandom().shuffle(numbers)
    return numbers


@dataclass(frozen=True)
class Reservation:
    """A live reservation of an access number, as stored by the reservation script."""

    number: str
    service_id: str
    app: str
    group: str
    phone: str | None
    code: str | None
    expires_ms: int

    @classmethod
    def from_json(cls, number: str, payload: Mapping) -> Reservation:
        return cls(
            number=number,
            service_id=str(payload.get("service", "")),
            app=str(payload.get("app", "")),
            group=str(payload.get("group", "")),
            phone=payload.get("phone") or None,
            code=payload.get("code") or None,
            expires_ms=int(payload.get("expires", 0)),
        )


def reservation_matches(reservation: Reservation, *, phone: str | None, code: str | None) -> bool:
    """Whether a call to ``reservation.number`` from ``phone`` with ``code`` belongs to
    the reservation, whichever app reserved it (seed 003: match-interaction looks
    through ALL services). A code, when one was handed out, must be presented and equal;
    a phone, when both sides have one, must match (:func:`phones_match`)."""
    if reservation.code is not None:
        if code is None or not secrets.compare_digest(reservation.code, code):
            return False
    elif code is not None:
        return False
    return phone is None or reservation.phone is None or phones_match(phone, reservation.phone)


# --- chat ------------------------------------------------------------------------------


class ChatEvent(str, enum.Enum):
    TEXT = "Message.Text"
    JOINED = "Notice.Joined"
    LEFT = "Notice.Left"
    TYPING_STARTED = "Notice.TypingStarted"
    TYPING_STOPPED = "Notice.TypingStopped"


class PartyType(str, enum.Enum):
    CLIENT = "CLIENT"
    AGENT = "AGENT"
    EXTERNAL = "EXTERNAL"


class ChatIxnState(str, enum.Enum):
    """``chatIxnState`` of Chat API v1. A started chat is ``CONNECTED`` (to the chat
    server) whether or not an agent has joined yet; it ends ``DISCONNECTED``."""

    IDLE = "IDLE"  # request-chat created, chat not started yet
    CONNECTED = "CONNECTED"
    DISCONNECTED = "DISCONNECTED"


@dataclass(frozen=True)
class TranscriptEntry:
    event: ChatEvent
    nickname: str
    text: str
    party_id: str
    party_type: PartyType

    def to_wire(self) -> list[str]:
        return [self.event.value, self.nickname, self.text, self.party_id, self.party_type.value]

    @classmethod
    def from_wire(cls, row: list[str]) -> TranscriptEntry:
        event, nickname, text, party_id, party_type = row
        return cls(ChatEvent(event), nickname, text, party_id, PartyType(party_type))


NOTICE_TEXT = {
    ChatEvent.JOINED: "has joined the session",
    ChatEvent.LEFT: "has left the session",
    ChatEvent.TYPING_STARTED: "is typing",
    ChatEvent.TYPING_STOPPED: "stopped typing",
}


def notice(event: ChatEvent, nickname: str, party_id: str, party_type: PartyType) -> TranscriptEntry:
    return TranscriptEntry(event, nickname, NOTICE_TEXT[event], party_id, party_type)


MAX_CHAT_MESSAGE = 4096
MAX_NICKNAME = 64


@dataclass(frozen=True)
class ChatStart:
    nickname: str
    first_name: str | None
    last_name: str | None
    subject: str | None
    email: str | None
    notify_by: str | None  # "comet" pushes events over CometD; anything else: poll

    @property
    def pushes(self) -> bool:
        return (self.notify_by or "").lower() == "comet"


def parse_chat_start(fields: Mapping[str, str]) -> ChatStart:
    """Chat API v1 start parameters: a ``nickname`` or both ``firstName`` and
    ``lastName``; optional ``subject``, ``email`` (``emailAddress``), ``notify_by``."""

    def text(name: str, limit: int = 256) -> str | None:
        value = (fields.get(name) or "").strip()
        if len(value) > limit:
            raise InvalidParameter(name, f"longer than {limit} characters")
        return value or None

    nickname = text("nickname", MAX_NICKNAME)
    first, last = text("firstName", MAX_NICKNAME), text("lastName", MAX_NICKNAME)
    if nickname is None:
        if first is None or last is None:
            raise MissingParameter("nickname", "give a nickname, or both firstName and lastName")
        nickname = f"{first} {last}"[:MAX_NICKNAME]
    email = text("email") or text("emailAddress")
    if email is not None and ("@" not in email or any(c.isspace() for c in email)):
        raise InvalidParameter("email", f"{email!r} is not an email address")
    notify_by = text("notify_by", 32)
    if notify_by is not None and notify_by.lower() not in {"comet", "push", "none", "poll"}:
        raise InvalidParameter("notify_by", f"{notify_by!r} is not comet, push, poll or none")
    return ChatStart(nickname, first, last, text("subject"), email, notify_by)


def parse_chat_message(fields: Mapping[str, str], *, required: bool = True) -> str | None:
    message = fields.get("message")
    if message is None or message.strip() == "":
        if required:
            raise MissingParameter("message")
        return None
    if len(message) > MAX_CHAT_MESSAGE:
        raise InvalidParameter("message", f"longer than {MAX_CHAT_MESSAGE} characters")
    return message


def parse_transcript_position(raw: str | None) -> int:
    """1-based position of the first entry wanted; missing or 0 means from the start."""
    value = parse_int("transcriptPosition", raw, minimum=0, maximum=10**9, default=1)
    return max(1, value or 1)


def chat_response(
    *,
    state: ChatIxnState,
    session_id: str,
    entries: list[TranscriptEntry],
    total: int,
    user_id: str | None = None,
    message: str | None = None,
) -> dict:
    """The Chat API v1 response body. ``transcriptPosition`` is the position to ask
    for next (one past the last entry), so a client passes it back on ``refresh``."""
    body = {
        "chatIxnState": state.value,
        "chatSessionId": session_id,
        "transcriptPosition": str(total + 1),
        "transcriptToShow": [entry.to_wire() for entry in entries],
        "chatServiceMessage": message or "Chat service is available",
    }
    if user_id is not None:
        body["userId"] = user_id
    return body
