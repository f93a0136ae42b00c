"""SMPP 3.4 PDUs as dataclasses, their binary codec, and stream framing.

What this module promises:

* Every PDU smsagg speaks is a dataclass: ``BindTransmitter``, ``BindReceiver``,
  ``BindTransceiver`` and their ``...Resp``; ``Unbind``/``UnbindResp``;
  ``EnquireLink``/``EnquireLinkResp``; ``SubmitSm``/``SubmitSmResp``;
  ``DeliverSm``/``DeliverSmResp``; ``GenericNack``. Field names are those of the
  SMPP 3.4 specification (section 4), so the specification documents them.
* ``encode(pdu)`` returns the PDU's bytes and ``decode(frame)`` returns the PDU:
  ``decode(encode(pdu)) == pdu`` for every PDU whose values fit their fields.
* C-octet strings are ``str`` (ASCII by the specification; decoded as Latin-1 so
  that no byte sequence fails), octet strings are ``bytes``, integers ``int``.
  ``short_message`` is the octets alone: ``sm_length`` is derived from it.
* Optional parameters live in ``pdu.tlvs``, a dict from tag to value. Tags listed
  in ``Tag`` are typed (``int``, ``str`` or ``bytes`` as the specification says);
  any other tag is kept as raw ``bytes`` and encoded back unchanged, so nothing a
  peer sends is lost on the way through.
* A response whose ``command_status`` is not ``ESME_ROK`` is encoded without a
  body, as SMPP 3.4 requires. Decoding a response accepts a body that stops early
  at a field boundary (SMSCs differ here) and leaves the rest at the defaults.
* ``encode`` raises ``ValueError`` naming the field whose value does not fit
  (a 17-character system_id, a 255-octet short_message).
* ``decode`` raises ``PduDecodeError`` for a malformed frame; the error carries
  the header and the ``command_status`` to answer with (``generic_nack`` or the
  request's response), so a session can reply instead of guessing.
* ``PduFramer`` cuts a byte stream into frames: feed it whatever a read returned
  (a fragment, several PDUs at once) and it hands back each complete frame once,
  in order. A ``command_length`` below 16 or above the framer's maximum raises
  ``FramingError`` as soon as its four octets arrive: such a stream cannot be
  resynchronised and the connection must be dropped.

No I/O and no clock here: sessions live in ``app.smpp.client`` and
``app.smpp.simulator``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, fields
from enum import IntEnum
from typing import Any, ClassVar, Protocol

from app.domain.smpp_status import CommandStatus  # noqa: F401  (the one table's names, re-exported)

HEADER_LENGTH = 16
# Room for a full message_payload TLV (its length field is 16 bits) plus every
# mandatory field and a few more TLVs; anything longer is garbage, not a PDU.
MAX_COMMAND_LENGTH = HEADER_LENGTH + 0xFFFF + 1024
RESPONSE_BIT = 0x8000_0000
INTERFACE_VERSION_34 = 0x34

_HEADER = struct.Struct(">IIII")
_TLV_HEADER = struct.Struct(">HH")


class CommandId(IntEnum):
    """The command_id of every PDU this module encodes and decodes."""

    GENERIC_NACK = 0x8000_0000
    BIND_RECEIVER = 0x0000_0001
    BIND_RECEIVER_RESP = 0x8000_0001
    BIND_TRANSMITTER = 0x0000_0002
    BIND_TRANSMITTER_RESP = 0x8000_0002
    SUBMIT_SM = 0x0000_0004
    SUBMIT_SM_RESP = 0x8000_0004
    DELIVER_SM = 0x0000_0005
    DELIVER_SM_RESP = 0x8000_0005
    UNBIND = 0x0000_0006
    UNBIND_RESP = 0x8000_0006
    BIND_TRANSCEIVER = 0x0000_0009
    BIND_TRANSCEIVER_RESP = 0x8000_0009
    ENQUIRE_LINK = 0x0000_0015
    ENQUIRE_LINK_RESP = 0x8000_0015


class Tag(IntEnum):
    """Optional parameter tags this codec types; others travel as raw bytes."""

    RECEIPTED_MESSAGE_ID = 0x001E
    USER_MESSAGE_REFERENCE = 0x0204
    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    SC_INTERFACE_VERSION = 0x0210
    MESSAGE_PAYLOAD = 0x0424
    MESSAGE_STATE = 0x0427


class MessageState(IntEnum):
    """Values of the message_state TLV (SMPP 3.4 section 5.2.28)."""

    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8


class EsmClass:
    """esm_class bits the gateway and the simulator look at."""

    DELIVERY_RECEIPT = 0x04
    UDH_INDICATOR = 0x40


TlvValue = int | str | bytes


class FramingError(ValueError):
    """The byte stream does not start with a plausible command_length."""


class PduDecodeError(ValueError):
    """A frame could not be decoded; says how the peer should be answered."""

    def __init__(self, reason: str, command_id: int, sequence_number: int, status: int):
        super().__init__(f"{reason} (command_id=0x{command_id:08x}, sequence={sequence_number})")
        self.command_id = command_id
        self.sequence_number = sequence_number
        self.status = status


class _Malformed(ValueError):
    """Raised inside decoding; decode() adds the header and makes a PduDecodeError."""

    def __init__(self, reason: str, status: int = CommandStatus.ESME_RINVCMDLEN):
        super().__init__(reason)
        self.status = status


# --- Field codecs: each appends its value to a bytearray and reads it back. ---


class _FieldCodec(Protocol):
    def encode(self, value: Any, out: bytearray) -> None: ...

    def decode(self, data: bytes, pos: int) -> tuple[Any, int]: ...


class _Integer:
    __slots__ = ("_struct",)

    def __init__(self, fmt: str):
        self._struct = struct.Struct(fmt)

    def encode(self, value: int, out: bytearray) -> None:
        try:
            out += self._struct.pack(value)
        except struct.error as exc:
            raise ValueError(f"{value!r} does not fit {self._struct.size} octet(s)") from exc

    def decode(self, data: bytes, pos: int) -> tuple[int, int]:
        end = pos + self._struct.size
        if end > len(data):
            raise _Malformed(f"body ends inside a {self._struct.size}-octet integer")
        return self._struct.unpack_from(data, pos)[0], end


class _CString:
    """A NUL-terminated string whose size, NUL included, is at most max_size."""

    __slots__ = ("_max_size",)

    def __init__(self, max_size: int):
        self._max_size = max_size

    def encode(self, value: str, out: bytearray) -> None:
        octets = value.encode("latin-1")
        if len(octets) >= self._max_size or b"\0" in octets:
            raise ValueError(f"{value!r} is not a C-octet string of at most {self._max_size - 1} octets")
        out += octets
        out.append(0)

    def decode(self, data: bytes, pos: int) -> tuple[str, int]:
        end = data.find(b"\0", pos, pos + self._max_size)
        if end < 0:
            raise _Malformed(f"C-octet string not terminated within {self._max_size} octets")
        return data[pos:end].decode("latin-1"), end + 1


class _ShortMessage:
    """sm_length (one octet) followed by that many octets of short_message."""

    __slots__ = ()
    MAX_OCTETS = 254

    def encode(self, value: bytes, out: bytearray) -> None:
        if len(value) > self.MAX_OCTETS:
            raise ValueError(f"{len(value)} octets exceed {self.MAX_OCTETS}; use message_payload")
        out.append(len(value))
        out += value

    def decode(self, data: bytes, pos: int) -> tuple[bytes, int]:
        if pos >= len(data):
            raise _Malformed("body ends before sm_length")
        end = pos + 1 + data[pos]
        if end > len(data):
            raise _Malformed("short_message is longer than the body")
        return data[pos + 1 : end], end


_UINT8 = _Integer(">B")
_UINT32 = _Integer(">I")
_BODY_CODEC = "smpp_codec"


def _cstring(max_size: int) -> Any:
    return field(default="", metadata={_BODY_CODEC: _CString(max_size)})


def _uint8(default: int = 0) -> Any:
    return field(default=default, metadata={_BODY_CODEC: _UINT8})


def _short_message() -> Any:
    return field(default=b"", metadata={_BODY_CODEC: _ShortMessage()})


# --- TLV codecs: value types per known tag. ---


class _TlvOctets:
    __slots__ = ()

    def encode(self, value: bytes) -> bytes:
        return bytes(value)

    def decode(self, raw: bytes) -> bytes:
        return raw


class _TlvCString:
    """Tolerates a missing terminator on decode: several SMSCs omit it."""

    __slots__ = ()

    def encode(self, value: str) -> bytes:
        return value.encode("latin-1") + b"\0"

    def decode(self, raw: bytes) -> str:
        return raw.removesuffix(b"\0").decode("latin-1")


class _TlvInteger:
    __slots__ = ("_size",)

    def __init__(self, size: int):
        self._size = size

    def encode(self, value: int) -> bytes:
        try:
            return value.to_bytes(self._size, "big")
        except OverflowError as exc:
            raise ValueError(f"{value!r} does not fit {self._size} octet(s)") from exc

    def decode(self, raw: bytes) -> int:
        if len(raw) != self._size:
            raise _Malformed(f"expected {self._size} octet(s), got {len(raw)}", CommandStatus.ESME_RINVPARLEN)
        return int.from_bytes(raw, "big")


_TLV_CODECS: dict[int, _TlvOctets | _TlvCString | _TlvInteger] = {
    Tag.RECEIPTED_MESSAGE_ID: _TlvCString(),
    Tag.USER_MESSAGE_REFERENCE: _TlvInteger(2),
    Tag.SAR_MSG_REF_NUM: _TlvInteger(2),
    Tag.SAR_TOTAL_SEGMENTS: _TlvInteger(1),
    Tag.SAR_SEGMENT_SEQNUM: _TlvInteger(1),
    Tag.SC_INTERFACE_VERSION: _TlvInteger(1),
    Tag.MESSAGE_PAYLOAD: _TlvOctets(),
    Tag.MESSAGE_STATE: _TlvInteger(1),
}
_RAW_TLV = _TlvOctets()


def _encode_tlvs(tlvs: dict[int, TlvValue], out: bytearray) -> None:
    for tag, value in tlvs.items():
        try:
            raw = _TLV_CODECS.get(tag, _RAW_TLV).encode(value)  # type: ignore[arg-type]
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"TLV 0x{tag:04x}: {exc}") from exc
        if len(raw) > 0xFFFF:
            raise ValueError(f"TLV 0x{tag:04x}: {len(raw)} octets exceed 65535")
        out += _TLV_HEADER.pack(tag, len(raw))
        out += raw


def _decode_tlvs(data: bytes, pos: int) -> dict[int, TlvValue]:
    tlvs: dict[int, TlvValue] = {}
    while pos < len(data):
        if pos + 4 > len(data):
            raise _Malformed("truncated TLV header", CommandStatus.ESME_RINVOPTPARSTREAM)
        tag, length = _TLV_HEADER.unpack_from(data, pos)
        start, pos = pos + 4, pos + 4 + length
        if pos > len(data):
            raise _Malformed(f"TLV 0x{tag:04x} runs past the body", CommandStatus.ESME_RINVOPTPARSTREAM)
        codec = _TLV_CODECS.get(tag)
        raw = data[start:pos]
        tlvs[Tag(tag) if codec else tag] = codec.decode(raw) if codec else raw
    return tlvs


# --- The PDUs. ---

_PDU_CLASSES: dict[int, type[Pdu]] = {}


@dataclass(slots=True, kw_only=True)
class Pdu:
    """Header fields and TLVs shared by every PDU; subclasses add the body."""

    command_id: ClassVar[CommandId]
    body_codecs: ClassVar[tuple[tuple[str, _FieldCodec], ...]] = ()

    sequence_number: int = 0
    command_status: int = CommandStatus.ESME_ROK
    tlvs: dict[int, TlvValue] = field(default_factory=dict)

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & RESPONSE_BIT)

    def response(self, command_status: int = CommandStatus.ESME_ROK, **body: Any) -> Pdu:
        """The matching response, carrying this request's sequence number."""
        if self.is_response:
            raise TypeError(f"{type(self).__name__} is a response; it has none of its own")
        response_class = _PDU_CLASSES[self.command_id | RESPONSE_BIT]
        return response_class(sequence_number=self.sequence_number, command_status=command_status, **body)


def _register(cls: type[Pdu]) -> type[Pdu]:
    """Record the body layout (fields carrying a codec, in order) and the command_id."""
    cls.body_codecs = tuple((f.name, f.metadata[_BODY_CODEC]) for f in fields(cls) if _BODY_CODEC in f.metadata)
    _PDU_CLASSES[cls.command_id] = cls
    return cls


@dataclass(slots=True, kw_only=True)
class BindPdu(Pdu):
    """bind_transmitter, bind_receiver and bind_transceiver share one body."""

    system_id: str = _cstring(16)
    password: str = _cstring(9)
    system_type: str = _cstring(13)
    interface_version: int = _uint8(INTERFACE_VERSION_34)
    addr_ton: int = _uint8()
    addr_npi: int = _uint8()
    address_range: str = _cstring(41)


@_register
@dataclass(slots=True, kw_only=True)
class BindTransmitter(BindPdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER


@_register
@dataclass(slots=True, kw_only=True)
class BindReceiver(BindPdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER


@_register
@dataclass(slots=True, kw_only=True)
class BindTransceiver(BindPdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER


@dataclass(slots=True, kw_only=True)
class BindRespPdu(Pdu):
    system_id: str = _cstring(16)


@_register
@dataclass(slots=True, kw_only=True)
class BindTransmitterResp(BindRespPdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSMITTER_RESP


@_register
@dataclass(slots=True, kw_only=True)
class BindReceiverResp(BindRespPdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_RECEIVER_RESP


@_register
@dataclass(slots=True, kw_only=True)
class BindTransceiverResp(BindRespPdu):
    command_id: ClassVar[CommandId] = CommandId.BIND_TRANSCEIVER_RESP


@dataclass(slots=True, kw_only=True)
class ShortMessagePdu(Pdu):
    """submit_sm and deliver_sm share one body layout (spec 4.4.1 and 4.6.1)."""

    service_type: str = _cstring(6)
    source_addr_ton: int = _uint8()
    source_addr_npi: int = _uint8()
    source_addr: str = _cstring(21)
    dest_addr_ton: int = _uint8()
    dest_addr_npi: int = _uint8()
    destination_addr: str = _cstring(21)
    esm_class: int = _uint8()
    protocol_id: int = _uint8()
    priority_flag: int = _uint8()
    schedule_delivery_time: str = _cstring(17)
    validity_period: str = _cstring(17)
    registered_delivery: int = _uint8()
    replace_if_present_flag: int = _uint8()
    data_coding: int = _uint8()
    sm_default_msg_id: int = _uint8()
    short_message: bytes = _short_message()


@_register
@dataclass(slots=True, kw_only=True)
class SubmitSm(ShortMessagePdu):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM


@_register
@dataclass(slots=True, kw_only=True)
class DeliverSm(ShortMessagePdu):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM


@_register
@dataclass(slots=True, kw_only=True)
class SubmitSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.SUBMIT_SM_RESP
    message_id: str = _cstring(65)


@_register
@dataclass(slots=True, kw_only=True)
class DeliverSmResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.DELIVER_SM_RESP
    message_id: str = _cstring(65)


@_register
@dataclass(slots=True, kw_only=True)
class Unbind(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND


@_register
@dataclass(slots=True, kw_only=True)
class UnbindResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.UNBIND_RESP


@_register
@dataclass(slots=True, kw_only=True)
class EnquireLink(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK


@_register
@dataclass(slots=True, kw_only=True)
class EnquireLinkResp(Pdu):
    command_id: ClassVar[CommandId] = CommandId.ENQUIRE_LINK_RESP


@_register
@dataclass(slots=True, kw_only=True)
class GenericNack(Pdu):
    command_id: ClassVar[CommandId] = CommandId.GENERIC_NACK


# --- The codec. ---


def encode(pdu: Pdu) -> bytes:
    """The PDU's bytes; an error response gets no body, as the spec requires."""
    body = bytearray()
    if not (pdu.is_response and pdu.command_status):
        _encode_body(pdu, body)
        _encode_tlvs(pdu.tlvs, body)
    header = _HEADER.pack(HEADER_LENGTH + len(body), pdu.command_id, pdu.command_status, pdu.sequence_number)
    return header + body


def _encode_body(pdu: Pdu, out: bytearray) -> None:
    for name, codec in pdu.body_codecs:
        try:
            codec.encode(getattr(pdu, name), out)
        except (ValueError, TypeError, AttributeError) as exc:
            raise ValueError(f"{type(pdu).__name__}.{name}: {exc}") from exc


def decode(frame: bytes) -> Pdu:
    """The PDU in one complete frame (as cut by PduFramer)."""
    if len(frame) < HEADER_LENGTH:
        raise PduDecodeError("frame shorter than the header", 0, 0, CommandStatus.ESME_RINVCMDLEN)
    length, command_id, status, sequence = _HEADER.unpack_from(frame)
    pdu_class = _PDU_CLASSES.get(command_id)
    try:
        if length != len(frame):
            raise _Malformed(f"command_length {length} but the frame has {len(frame)} octets")
        if pdu_class is None:
            raise _Malformed("unknown command_id", CommandStatus.ESME_RINVCMDID)
        body, pos = _decode_body(pdu_class, frame)
        tlvs = _decode_tlvs(frame, pos)
    except _Malformed as exc:
        raise PduDecodeError(str(exc), command_id, sequence, exc.status) from None
    return pdu_class(sequence_number=sequence, command_status=status, tlvs=tlvs, **body)


def _decode_body(pdu_class: type[Pdu], frame: bytes) -> tuple[dict[str, Any], int]:
    values: dict[str, Any] = {}
    pos = HEADER_LENGTH
    may_stop_early = bool(pdu_class.command_id & RESPONSE_BIT)
    for name, codec in pdu_class.body_codecs:
        if pos == len(frame) and may_stop_early:
            break
        values[name], pos = codec.decode(frame, pos)
    return values, pos


class PduFramer:
    """Cuts a TCP byte stream into whole PDU frames."""

    def __init__(self, max_command_length: int = MAX_COMMAND_LENGTH):
        self._max_command_length = max_command_length
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Every frame completed by data, in order; a partial tail waits for more."""
        self._buffer += data
        frames: list[bytes] = []
        pos = 0
        while len(self._buffer) - pos >= 4:
            length = int.from_bytes(self._buffer[pos : pos + 4], "big")
            self._check_length(length)
            if len(self._buffer) - pos < length:
                break
            frames.append(bytes(self._buffer[pos : pos + length]))
            pos += length
        del self._buffer[:pos]
        return frames

    def _check_length(self, length: int) -> None:
        if not HEADER_LENGTH <= length <= self._max_command_length:
            raise FramingError(
                f"command_length {length} outside {HEADER_LENGTH}..{self._max_command_length}: "
                "not an SMPP stream, or out of sync"
            )
