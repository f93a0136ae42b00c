"""Choosing an SMS encoding, counting parts, splitting into SMPP segments, decoding inbound.

Pure functions: no I/O, no clock. What this module promises:

Choosing the encoding (`plan_encoding`)
    * GSM-7 (SMPP data_coding 0) when every character is in the GSM 03.38 default alphabet or
      its extension table. Extension characters (form feed ``^ { } \\ [ ~ ] | €``) are sent
      as ESC + code and cost two septets each.
    * UCS-2 (data_coding 8, bytes are UTF-16BE) otherwise. A character outside the BMP (emoji)
      is a surrogate pair and costs two UTF-16 code units.
    * Latin-1 (ISO-8859-1, data_coding 3) only when asked for (`requested=Encoding.LATIN1`,
      bulk API types 5 and 7). A request for an encoding the text cannot be written in
      raises `UnencodableText`; the caller turns that into its "invalid message" reply.
    * Smart encoding (opt-in, `smart=True`): typographic quotes, dashes, ellipsis, unusual
      spaces and a few symbols are replaced by GSM-7 look-alikes (`SMART_REPLACEMENTS`), but
      only when the replaced text is then entirely GSM-7. Otherwise the original text goes
      out as UCS-2, untouched.
    * Flash (class 0, shown at once and not stored): data_coding 0x10 for GSM-7 and 0x18 for
      UCS-2 (GSM 03.38 general data coding group, message class 0). No data_coding means
      "Latin-1, class 0": the 0x1X group can only name GSM-7, 8-bit data and UCS-2, and 0x13,
      which some carriers use, is GSM-7 class 3, so Latin-1 bytes above 0x7F would be read as
      the wrong characters. Latin-1 flash therefore keeps data_coding 3 and asks for
      immediate display with the SMPP 3.4 TLV ``dest_addr_subunit = 0x01`` (MS display),
      which the SMSC maps to class 0 when it converts the alphabet for the air interface.

Counting parts (`count_parts`, `EncodingPlan.segments`)
    One part holds 160 GSM septets, 70 UCS-2 code units or 140 Latin-1 bytes. A longer text
    is cut into parts of 153 septets, 67 code units or 134 bytes (a 6-byte concatenation
    UDH takes the rest). A cut never separates an escape from its extension character, nor
    the two halves of a surrogate pair, so a part can hold one unit less than the maximum
    and the part count is found by cutting, not by dividing. The bulk SMS seed (001) says
    "every 153 characters are counted as one message for plain text and 268 characters for
    Unicode" (and 280 for a single Unicode message): 268 and 280 are byte counts of 134 and
    140 octets written as if they were characters. Its "140 for flash" matches only Latin-1
    flash; a flash message holds as much as any other message in its encoding. We bill by
    the real rule above.

Splitting (`segment_message`)
    Three ways to send a long message, chosen by the carrier's `concat_mode`:
    * ``udh``: each part starts with the 6-byte UDH ``05 00 03 ref total seq`` and has the
      UDHI bit (0x40) set in esm_class; `ref` is taken modulo 256.
    * ``sar``: each part carries the TLVs sar_msg_ref_num (`ref` modulo 65536),
      sar_total_segments and sar_segment_seqnum; short_message holds only text.
    * ``payload``: one submit_sm, empty short_message, the whole text in message_payload;
      the SMSC cuts it up.
    A message that fits in one part is always sent as one plain segment.
    GSM-7 bytes are unpacked (one septet per byte, what SMPP data_coding 0 normally carries).
    With ``packed=True`` septets are packed eight into seven octets (3GPP TS 23.038 6.1.2.1),
    after the UDH and its fill bits so that the septets stay aligned to the start of the
    user data (TS 23.040 9.2.3.24); seven spare bits at the end are filled with CR instead of
    zero so they cannot be read back as '@'. Packing applies to GSM-7 only.

Decoding inbound (`decode_short_message`, `parse_udh`, `reassemble`)
    The alphabet is read from data_coding: the SMPP 3.4 values 0 (GSM-7), 1 (IA5/ASCII, as
    SMPP 3.4 5.2.19 defines it), 2 and 4 (binary), 3 (Latin-1), 8 (UCS-2), and the GSM
    03.38 coding groups (general, automatic deletion, message waiting, 0xF0 class group).
    Other values raise `UnsupportedDataCoding`. Parts of a concatenated message are joined
    byte-wise before decoding, so an escape or surrogate pair split by the sender still
    decodes. GSM-7 decoding follows TS 23.038: an escape followed by a code the extension
    table does not define shows the default-alphabet character for that code.

The GSM alphabet comes from the `gsm0338` package (it registers the ``gsm03.38`` codec): its
encoder writes our unpacked GSM bytes and the two lookup tables below are read out of its
decoder. We do not use its decoder on inbound data, because it turns an escape followed by
a code the extension table lacks into U+FFFD where TS 23.038 shows the default-alphabet
character. And we treat U+001B (ESC) as not encodable, although the codec accepts it,
because a lone escape byte would swallow the next character on the handset.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum, StrEnum
from typing import NamedTuple

import gsm0338  # noqa: F401  (importing registers the 'gsm03.38' codec)

GSM_CODEC = "gsm03.38"
ESCAPE = 0x1B
CARRIAGE_RETURN = 0x0D
UDHI = 0x40
MS_DISPLAY = 0x01
"""dest_addr_subunit value asking the handset to display the message (class 0)."""

UDH_CONCAT_8BIT = 0x00
UDH_CONCAT_16BIT = 0x08


class UnencodableText(ValueError):
    """The text has characters the required encoding cannot write."""


class UnsupportedDataCoding(ValueError):
    """An inbound data_coding whose alphabet we do not decode."""


class MalformedUdh(ValueError):
    """A user data header that is shorter than it claims."""


class Encoding(Enum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"
    LATIN1 = "latin1"


class ConcatMode(StrEnum):
    UDH = "udh"
    SAR = "sar"
    PAYLOAD = "payload"


class Alphabet(Enum):
    GSM7 = "gsm7"
    ASCII = "ascii"
    LATIN1 = "latin1"
    UCS2 = "ucs2"
    BINARY = "binary"


@dataclass(frozen=True)
class _Limits:
    single: int
    per_part: int
    data_coding: int
    flash_data_coding: int


_LIMITS = {
    Encoding.GSM7: _Limits(single=160, per_part=153, data_coding=0x00, flash_data_coding=0x10),
    Encoding.UCS2: _Limits(single=70, per_part=67, data_coding=0x08, flash_data_coding=0x18),
    Encoding.LATIN1: _Limits(single=140, per_part=134, data_coding=0x03, flash_data_coding=0x03),
}


def _gsm_basic_codes() -> dict[str, int]:
    return {bytes([code]).decode(GSM_CODEC): code for code in range(0x80) if code != ESCAPE}


def _gsm_extension_codes() -> dict[str, int]:
    codes = {}
    for code in range(0x80):
        try:
            codes[bytes([ESCAPE, code]).decode(GSM_CODEC)] = code
        except UnicodeDecodeError:
            continue
    return codes


GSM_BASIC = _gsm_basic_codes()
GSM_EXTENSION = _gsm_extension_codes()
_GSM_BASIC_BY_CODE = {code: char for char, code in GSM_BASIC.items()}
_GSM_EXTENSION_BY_CODE = {code: char for char, code in GSM_EXTENSION.items()}

SMART_REPLACEMENTS: Mapping[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201a": "'", "\u201b": "'", "\u2032": "'",
    "\u2039": "'", "\u203a": "'", "\u00b4": "'", "`": "'",
    "\u201c": '"', "\u201d": '"', "\u201e": '"', "\u201f": '"', "\u2033": '"',
    "\u00ab": '"', "\u00bb": '"',
    "\u2010": "-", "\u2011": "-", "\u2012": "-", "\u2013": "-", "\u2014": "-",
    "\u2015": "-", "\u2212": "-", "\u2022": "-", "\u00b7": "-",
    "\u2026": "...",
    "\u00a0": " ", "\u2002": " ", "\u2003": " ", "\u2004": " ", "\u2005": " ",
    "\u2006": " ", "\u2007": " ", "\u2008": " ", "\u2009": " ", "\u200a": " ",
    "\u202f": " ", "\u205f": " ", "\u3000": " ", "\t": " ",
    "\u00ad": "", "\u200b": "", "\u200c": "", "\u200d": "", "\u2060": "", "\ufeff": "",
    "\u02c6": "^", "\u02dc": "~", "\u00d7": "x", "\u2044": "/",
}
"""Typographic characters and their GSM-7 stand-ins; invisible ones are dropped."""

_SMART_TABLE = str.maketrans(SMART_REPLACEMENTS)


@dataclass(frozen=True)
class EncodingPlan:
    """How a text goes out: `text` is what is sent (smart replacements applied)."""

    text: str
    encoding: Encoding
    data_coding: int
    units: int
    segments: int
    flash: bool = False


@dataclass(frozen=True)
class Segment:
    """One submit_sm worth of user data."""

    short_message: bytes
    data_coding: int
    esm_class: int
    seq: int
    total: int
    tlvs: Mapping[str, int | bytes] = field(default_factory=dict)


class Udh(NamedTuple):
    """A parsed user data header; concat_ref is None when the part is not concatenated."""

    concat_ref: int | None
    total: int
    seq: int
    payload: bytes


@dataclass(frozen=True)
class InboundPart:
    """One received short_message, UDH removed; GSM-7 bodies hold one septet per byte."""

    alphabet: Alphabet
    body: bytes
    concat_ref: int | None = None
    total: int = 1
    seq: int = 1

    @property
    def text(self) -> str | None:
        """The decoded text, or None for binary data."""
        return _decode_body(self.body, self.alphabet)


def is_gsm7(text: str) -> bool:
    return all(char in GSM_BASIC or char in GSM_EXTENSION for char in text)


def smart_substitute(text: str) -> str:
    """`text` with every `SMART_REPLACEMENTS` character replaced."""
    return text.translate(_SMART_TABLE)


def plan_encoding(
    text: str,
    *,
    requested: Encoding | None = None,
    smart: bool = False,
    flash: bool = False,
) -> EncodingPlan:
    """Choose the encoding for `text` and count its units and parts (see module docstring)."""
    sendable, encoding = _choose_encoding(text, requested=requested, smart=smart)
    limits = _LIMITS[encoding]
    costs = _unit_costs(sendable, encoding)
    return EncodingPlan(
        text=sendable,
        encoding=encoding,
        data_coding=limits.flash_data_coding if flash else limits.data_coding,
        units=sum(costs),
        segments=len(_part_bounds(costs, limits)),
        flash=flash,
    )


def count_parts(text: str, encoding: Encoding) -> int:
    """Billable parts of `text` sent in `encoding`, by the real GSM rules (module docstring)."""
    return len(_part_bounds(_unit_costs(text, encoding), _LIMITS[encoding]))


def segment_message(
    plan: EncodingPlan,
    *,
    concat_mode: ConcatMode | str = ConcatMode.UDH,
    ref: int = 0,
    packed: bool = False,
) -> list[Segment]:
    """The submit_sm user data for `plan`; `ref` identifies the parts of one message."""
    mode = ConcatMode(concat_mode)
    if ref < 0:
        raise ValueError(f"concatenation reference must not be negative: {ref}")
    if packed and plan.encoding is not Encoding.GSM7:
        raise ValueError("only GSM-7 can be packed")
    base_tlvs = _class_tlvs(plan)
    if plan.segments == 1:
        return [_single_segment(_encode(plan.text, plan.encoding, packed), plan, base_tlvs)]
    if mode is ConcatMode.PAYLOAD:
        payload = _encode(plan.text, plan.encoding, packed)
        return [_single_segment(b"", plan, {**base_tlvs, "message_payload": payload})]
    texts = _split_text(plan.text, plan.encoding)
    if mode is ConcatMode.UDH:
        return _udh_segments(texts, plan, ref % 0x100, packed, base_tlvs)
    return _sar_segments(texts, plan, ref % 0x10000, packed, base_tlvs)


def pack_septets(septets: bytes, fill_bits: int = 0) -> bytes:
    """Pack 7-bit values into octets, least significant bit first, after `fill_bits` zeros."""
    packed = bytearray()
    accumulator, bit_count = 0, fill_bits
    for septet in septets:
        accumulator |= (septet & 0x7F) << bit_count
        bit_count += 7
        while bit_count >= 8:
            packed.append(accumulator & 0xFF)
            accumulator >>= 8
            bit_count -= 8
    if bit_count == 1:
        accumulator |= CARRIAGE_RETURN << 1
    if bit_count:
        packed.append(accumulator & 0xFF)
    return bytes(packed)


def unpack_septets(packed: bytes, fill_bits: int = 0, septet_count: int | None = None) -> bytes:
    """Inverse of `pack_septets`, one septet per byte.

    Without `septet_count` (SMPP carries octets, not septets) every whole septet is read and
    a CR ending exactly on the last octet is taken for padding and dropped.
    """
    available = (len(packed) * 8 - fill_bits) // 7
    count = available if septet_count is None else septet_count
    value = int.from_bytes(packed, "little") >> fill_bits
    septets = bytes((value >> (7 * index)) & 0x7F for index in range(count))
    ends_on_octet = (fill_bits + 7 * count) % 8 == 0
    if septet_count is None and septets[-1:] == bytes([CARRIAGE_RETURN]) and ends_on_octet:
        return septets[:-1]
    return septets


def udh_fill_bits(header_octets: int) -> int:
    """Fill bits after a UDH of `header_octets` octets so septets start on a septet boundary."""
    return (7 - header_octets * 8 % 7) % 7


def parse_udh(user_data: bytes) -> Udh:
    """Split a short_message with UDHI set into its concatenation info and payload.

    Reads IEI 0x00 (8-bit reference) and 0x08 (16-bit reference); other elements are
    skipped. A concatenation element with total 0 or seq outside 1..total is ignored, as
    TS 23.040 9.2.3.24.1 says.
    """
    if not user_data or len(user_data) < 1 + user_data[0]:
        raise MalformedUdh(f"user data header longer than the data: {user_data.hex()}")
    header, payload = user_data[1 : 1 + user_data[0]], user_data[1 + user_data[0] :]
    concat = None
    for iei, value in _information_elements(header):
        if iei == UDH_CONCAT_8BIT and len(value) == 3:
            concat = (value[0], value[1], value[2])
        elif iei == UDH_CONCAT_16BIT and len(value) == 4:
            concat = (int.from_bytes(value[:2], "big"), value[2], value[3])
    if concat is None or not 1 <= concat[2] <= concat[1]:
        return Udh(concat_ref=None, total=1, seq=1, payload=payload)
    return Udh(concat_ref=concat[0], total=concat[1], seq=concat[2], payload=payload)


def alphabet_for(data_coding: int) -> Alphabet:
    """The alphabet an SMPP data_coding / GSM 03.38 DCS value names."""
    if data_coding in _SMPP_ALPHABETS:
        return _SMPP_ALPHABETS[data_coding]
    group = data_coding & 0xF0
    if 0x10 <= data_coding < 0x80 and not data_coding & 0x20:
        alphabet = _GENERAL_GROUP_ALPHABETS.get((data_coding >> 2) & 0x03)
    elif group in (0xC0, 0xD0):
        alphabet = Alphabet.GSM7
    elif group == 0xE0:
        alphabet = Alphabet.UCS2
    elif group == 0xF0:
        alphabet = Alphabet.BINARY if data_coding & 0x04 else Alphabet.GSM7
    else:
        alphabet = None
    if alphabet is None:
        raise UnsupportedDataCoding(f"data_coding 0x{data_coding:02x} is not decoded")
    return alphabet


def decode_short_message(
    short_message: bytes, data_coding: int, *, udhi: bool = False, packed: bool = False
) -> InboundPart:
    """One deliver_sm's user data as an `InboundPart` (`packed` applies to GSM-7 only)."""
    alphabet = alphabet_for(data_coding)
    udh = parse_udh(short_message) if udhi else Udh(None, 1, 1, short_message)
    body = udh.payload
    if packed and alphabet is Alphabet.GSM7:
        body = unpack_septets(body, udh_fill_bits(len(short_message) - len(body)))
    return InboundPart(alphabet, body, udh.concat_ref, udh.total, udh.seq)


def reassemble(parts: Iterable[InboundPart]) -> InboundPart:
    """Join all parts of one concatenated message, in seq order, into a single part.

    Raises ValueError when parts are missing, repeated, or belong to different messages.
    """
    ordered = sorted(parts, key=lambda part: part.seq)
    if not ordered:
        raise ValueError("no parts to reassemble")
    first = ordered[0]
    if len({(part.concat_ref, part.total, part.alphabet) for part in ordered}) > 1:
        raise ValueError("parts of different messages")
    if [part.seq for part in ordered] != list(range(1, first.total + 1)):
        raise ValueError(f"parts {[part.seq for part in ordered]} of {first.total}")
    return InboundPart(first.alphabet, b"".join(part.body for part in ordered))


_SMPP_ALPHABETS = {
    0x00: Alphabet.GSM7,
    0x01: Alphabet.ASCII,
    0x02: Alphabet.BINARY,
    0x03: Alphabet.LATIN1,
    0x04: Alphabet.BINARY,
    0x08: Alphabet.UCS2,
}
_GENERAL_GROUP_ALPHABETS = {0: Alphabet.GSM7, 1: Alphabet.BINARY, 2: Alphabet.UCS2}


def _choose_encoding(
    text: str, *, requested: Encoding | None, smart: bool
) -> tuple[str, Encoding]:
    if requested in (Encoding.UCS2, Encoding.LATIN1):
        _unit_costs(text, requested)
        return text, requested
    if is_gsm7(text):
        return text, Encoding.GSM7
    if smart and is_gsm7(substituted := smart_substitute(text)):
        return substituted, Encoding.GSM7
    if requested is Encoding.GSM7:
        raise UnencodableText(f"gsm7 cannot encode {_unencodable(text, Encoding.GSM7)!r}")
    _unit_costs(text, Encoding.UCS2)
    return text, Encoding.UCS2


def _unit_costs(text: str, encoding: Encoding) -> list[int]:
    """Units (septets, UTF-16 code units, bytes) each character of `text` costs."""
    cost = _UNIT_COST[encoding]
    costs = [cost(char) for char in text]
    if 0 in costs:
        raise UnencodableText(f"{encoding.value} cannot encode {_unencodable(text, encoding)!r}")
    return costs


def _unencodable(text: str, encoding: Encoding) -> list[str]:
    return sorted({char for char in text if _UNIT_COST[encoding](char) == 0})


def _gsm_cost(char: str) -> int:
    if char in GSM_BASIC:
        return 1
    return 2 if char in GSM_EXTENSION else 0


def _ucs2_cost(char: str) -> int:
    if 0xD800 <= ord(char) <= 0xDFFF:
        return 0
    return 2 if ord(char) > 0xFFFF else 1


def _latin1_cost(char: str) -> int:
    return 1 if ord(char) <= 0xFF else 0


_UNIT_COST = {Encoding.GSM7: _gsm_cost, Encoding.UCS2: _ucs2_cost, Encoding.LATIN1: _latin1_cost}


def _part_bounds(costs: Sequence[int], limits: _Limits) -> list[tuple[int, int]]:
    """Character index ranges of the parts; characters are never cut."""
    if sum(costs) <= limits.single:
        return [(0, len(costs))]
    bounds, start, used = [], 0, 0
    for index, cost in enumerate(costs):
        if used + cost > limits.per_part:
            bounds.append((start, index))
            start, used = index, 0
        used += cost
    bounds.append((start, len(costs)))
    return bounds


def _split_text(text: str, encoding: Encoding) -> list[str]:
    bounds = _part_bounds(_unit_costs(text, encoding), _LIMITS[encoding])
    return [text[start:end] for start, end in bounds]


def _encode(text: str, encoding: Encoding, packed: bool, fill_bits: int = 0) -> bytes:
    if encoding is Encoding.GSM7:
        septets = text.encode(GSM_CODEC)
        return pack_septets(septets, fill_bits) if packed else septets
    return text.encode("utf-16-be" if encoding is Encoding.UCS2 else "latin-1")


def _class_tlvs(plan: EncodingPlan) -> dict[str, int | bytes]:
    if plan.flash and plan.encoding is Encoding.LATIN1:
        return {"dest_addr_subunit": MS_DISPLAY}
    return {}


def _single_segment(
    short_message: bytes, plan: EncodingPlan, tlvs: dict[str, int | bytes]
) -> Segment:
    return Segment(short_message, plan.data_coding, esm_class=0, seq=1, total=1, tlvs=tlvs)


def _udh_segments(
    texts: list[str], plan: EncodingPlan, ref: int, packed: bool, tlvs: dict[str, int | bytes]
) -> list[Segment]:
    total = len(texts)
    segments = []
    for seq, text in enumerate(texts, start=1):
        header = bytes([5, UDH_CONCAT_8BIT, 3, ref, total, seq])
        body = _encode(text, plan.encoding, packed, udh_fill_bits(len(header)))
        segments.append(Segment(header + body, plan.data_coding, UDHI, seq, total, dict(tlvs)))
    return segments


def _sar_segments(
    texts: list[str], plan: EncodingPlan, ref: int, packed: bool, tlvs: dict[str, int | bytes]
) -> list[Segment]:
    total = len(texts)
    return [
        Segment(
            _encode(text, plan.encoding, packed),
            plan.data_coding,
            esm_class=0,
            seq=seq,
            total=total,
            tlvs={
                **tlvs,
                "sar_msg_ref_num": ref,
                "sar_total_segments": total,
                "sar_segment_seqnum": seq,
            },
        )
        for seq, text in enumerate(texts, start=1)
    ]


def _information_elements(header: bytes) -> Iterable[tuple[int, bytes]]:
    offset = 0
    while offset + 2 <= len(header):
        iei, length = header[offset], header[offset + 1]
        value = header[offset + 2 : offset + 2 + length]
        if len(value) < length:
            raise MalformedUdh(f"information element 0x{iei:02x} is truncated")
        yield iei, value
        offset += 2 + length


def _decode_body(body: bytes, alphabet: Alphabet) -> str | None:
    if alphabet is Alphabet.GSM7:
        return _decode_gsm(body)
    if alphabet is Alphabet.UCS2:
        return body.decode("utf-16-be", errors="replace")
    if alphabet is Alphabet.ASCII:
        return body.decode("ascii", errors="replace")
    if alphabet is Alphabet.LATIN1:
        return body.decode("latin-1")
    return None


def _decode_gsm(septets: bytes) -> str:
    """GSM-7 unpacked to text.

    An unknown escape falls back to the default alphabet, ESC ESC shows a space (TS 23.038),
    an escape with nothing after it is dropped, a byte above 0x7F is U+FFFD.
    """
    chars, escaped = [], False
    for code in septets:
        if escaped:
            chars.append(_GSM_EXTENSION_BY_CODE.get(code) or _GSM_BASIC_BY_CODE.get(code, " "))
            escaped = False
        elif code == ESCAPE:
            escaped = True
        else:
            chars.append(_GSM_BASIC_BY_CODE.get(code, "\ufffd"))
    return "".join(chars)
