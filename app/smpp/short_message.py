"""Reading and writing the text inside short messages, as the SMSC simulator does.

What this module promises:

* ``decode_text(octets, data_coding)`` reads 0 (GSM 03.38 default alphabet,
  unpacked, one septet per octet, extension table through 0x1B), 1 (IA5/ASCII),
  3 (Latin-1) and 8 (UCS-2, read as UTF-16BE so surrogate pairs survive). Any
  other data_coding is read as Latin-1, which keeps every octet visible. Bytes
  that do not decode become U+FFFD: the simulator records what it was sent, it
  does not reject it.
* ``choose_data_coding(text)`` picks GSM 03.38 when every character fits, else
  UCS-2, as a handset would.
* ``split_concatenation(pdu)`` finds where a submit_sm/deliver_sm sits in a
  concatenated message (UDH IEI 0x00 or 0x08 when esm_class has UDHI, or the SAR
  TLVs) and returns its user data, taken from message_payload when present.
* ``segment_text(text, data_coding, reference)`` encodes text in 0, 3 or 8 and
  cuts it into short_message octets: one unheaded segment when it fits (160 septets, or 140 octets), else
  segments of 153 septets or 134 octets each behind an 8-bit-reference UDH,
  never splitting a GSM escape pair or a UTF-16 surrogate pair.

This is deliberately independent of the gateway's own encoder in ``app.domain``:
the simulator is the test oracle for that code, so it must not share it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

import gsm0338  # noqa: F401  (registers the "gsm03.38" codec)

from app.smpp.pdu import EsmClass, ShortMessagePdu, Tag

GSM_CODEC = "gsm03.38"


class DataCoding(IntEnum):
    GSM7 = 0
    ASCII = 1
    LATIN1 = 3
    UCS2 = 8


_SINGLE_SEGMENT_OCTETS: dict[int, int] = {DataCoding.GSM7: 160, DataCoding.LATIN1: 140, DataCoding.UCS2: 140}
_UDH_8BIT_REFERENCE_LENGTH = 6  # UDHL, IEI 0x00, IEDL, reference, total, sequence
_IEI_CONCAT_8BIT_REFERENCE = 0x00
_IEI_CONCAT_16BIT_REFERENCE = 0x08


_CODECS: dict[int, str] = {
    DataCoding.GSM7: GSM_CODEC,
    DataCoding.ASCII: "ascii",
    DataCoding.LATIN1: "latin-1",
    DataCoding.UCS2: "utf-16-be",
}


@dataclass(frozen=True, slots=True)
class Concatenation:
    """Where a segment sits: reference number, segment count, 1-based position."""

    reference: int
    total: int
    sequence: int


def decode_text(octets: bytes, data_coding: int) -> str:
    return octets.decode(_CODECS.get(data_coding, "latin-1"), errors="replace")


def choose_data_coding(text: str) -> DataCoding:
    try:
        text.encode(GSM_CODEC)
    except UnicodeEncodeError:
        return DataCoding.UCS2
    return DataCoding.GSM7


def split_concatenation(pdu: ShortMessagePdu) -> tuple[Concatenation | None, bytes]:
    """The segment's place in its message (None when it stands alone) and its user data."""
    payload = pdu.tlvs.get(Tag.MESSAGE_PAYLOAD)
    user_data = payload if isinstance(payload, bytes) else pdu.short_message
    if pdu.esm_class & EsmClass.UDH_INDICATOR and user_data:
        header_end = 1 + user_data[0]
        return _concatenation_in_udh(user_data[1:header_end]), user_data[header_end:]
    return _concatenation_in_sar(pdu.tlvs), user_data


def _concatenation_in_udh(header: bytes) -> Concatenation | None:
    pos = 0
    while pos + 2 <= len(header):
        iei, length = header[pos], header[pos + 1]
        element = header[pos + 2 : pos + 2 + length]
        if iei == _IEI_CONCAT_8BIT_REFERENCE and length == 3:
            return Concatenation(element[0], element[1], element[2])
        if iei == _IEI_CONCAT_16BIT_REFERENCE and length == 4:
            return Concatenation(int.from_bytes(element[:2], "big"), element[2], element[3])
        pos += 2 + length
    return None


def _concatenation_in_sar(tlvs: Mapping[int, object]) -> Concatenation | None:
    reference = tlvs.get(Tag.SAR_MSG_REF_NUM)
    total = tlvs.get(Tag.SAR_TOTAL_SEGMENTS)
    sequence = tlvs.get(Tag.SAR_SEGMENT_SEQNUM)
    if isinstance(reference, int) and isinstance(total, int) and isinstance(sequence, int):
        return Concatenation(reference, total, sequence)
    return None


def segment_text(text: str, data_coding: int, reference: int) -> list[bytes]:
    """short_message octets for each deliver_sm; several mean UDHI must be set."""
    if data_coding not in _SINGLE_SEGMENT_OCTETS:
        raise ValueError(f"cannot segment text in data_coding {data_coding}; use 0, 3 or 8")
    codec = _CODECS[data_coding]
    single_limit = _SINGLE_SEGMENT_OCTETS[data_coding]
    if len(text.encode(codec)) <= single_limit:
        return [text.encode(codec)]
    bodies = _cut(text, codec, single_limit - _UDH_8BIT_REFERENCE_LENGTH - _gsm_septet_slack(data_coding))
    return [_udh(reference, len(bodies), number) + body for number, body in enumerate(bodies, start=1)]


def _gsm_septet_slack(data_coding: int) -> int:
    """A 6-octet UDH costs 7 septets in a GSM-7 segment (153, not 154, per 3GPP TS 23.040)."""
    return 1 if data_coding == DataCoding.GSM7 else 0


def _cut(text: str, codec: str, limit: int) -> list[bytes]:
    """Whole characters per body, so no escape or surrogate pair is split."""
    bodies: list[bytes] = []
    current = bytearray()
    for character in text:
        octets = character.encode(codec)
        if len(current) + len(octets) > limit:
            bodies.append(bytes(current))
            current.clear()
        current += octets
    bodies.append(bytes(current))
    return bodies


def _udh(reference: int, total: int, sequence: int) -> bytes:
    return bytes((5, _IEI_CONCAT_8BIT_REFERENCE, 3, reference & 0xFF, total, sequence))
