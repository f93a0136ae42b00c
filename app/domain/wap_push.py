"""WAP Push Service Indication over SMS (bulk API ``type=4``), as pure functions.

What goes out, for a message whose text is ``"<URL>"`` or ``"<URL> <text>"``:

* an SI document (WAP-167-ServiceInd-20010731-a) in WBXML 1.2: public id 0x05
  (``-//WAPFORUM//DTD SI 1.0//EN``), charset UTF-8 (MIBenum 106 = 0x6A), no string
  table; ``<si><indication href="URL" action="signal-medium">text</indication></si>``.
  The href is tokenised as section 8.3 says: the longest known prefix (``http://``,
  ``http://www.``, ``https://``, ``https://www.``) becomes an attribute-start token and
  ``.com/ .edu/ .net/ .org/`` become attribute-value tokens; the rest is inline strings.
* behind a WSP connectionless Push PDU header (WAP-230 8.2.4.1): transaction id, PDU
  type 0x06 (Push), headers length 1, content type 0xAE
  (``application/vnd.wap.sic``, well-known 0x2E).
* in an 8-bit SMS (SMPP ``data_coding`` 0x04) whose user data header carries
  application port addressing with 16-bit addresses (IEI 0x05): destination port 2948
  (WAP Push, connectionless WSP), origin port 9200 (WAP WSP). ``esm_class`` has UDHI
  (0x40) set. A payload longer than one part (133 bytes after the 7-byte UDH) is cut
  into parts of 128 bytes, each with a 12-byte UDH: the port element plus the 8-bit
  concatenation element ``00 03 ref total seq`` (TS 23.040 9.2.3.24.1).

Message format (decided here; the seed says only "4 : WAP Push"): the first
whitespace-separated word of the text is the URL (``http://`` or ``https://``, at most
:data:`MAX_URL_LENGTH` characters); anything after the first run of whitespace is the
indication text shown to the user. See ``docs/bulk.md``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

WAP_PUSH_PORT = 2948
WAP_WSP_PORT = 9200
DATA_CODING_8BIT = 0x04
ESM_CLASS_UDHI = 0x40
MAX_URL_LENGTH = 512
MAX_PARTS = 4
SINGLE_PART_BYTES = 140 - 7
PART_BYTES = 140 - 12

# WBXML global tokens (WBXML 1.3 section 7.1) and SI tokens (WAP-167 section 8).
_WBXML_VERSION_1_2 = 0x02
_PUBLIC_ID_SI_1_0 = 0x05
_CHARSET_UTF8 = 0x6A
_END = 0x01
_STR_I = 0x03
_OPAQUE = 0xC3
_TAG_SI_WITH_CONTENT = 0x45
_TAG_INDICATION_WITH_ATTRS_AND_CONTENT = 0xC6

ACTIONS = {"signal-none": 0x05, "signal-low": 0x06, "signal-medium": 0x07, "signal-high": 0x08, "delete": 0x09}
_ATTR_CREATED = 0x0A
_ATTR_HREF = 0x0B
_HREF_PREFIXES = (("https://www.", 0x0F), ("http://www.", 0x0D), ("https://", 0x0E), ("http://", 0x0C))
_ATTR_SI_EXPIRES = 0x10
_ATTR_SI_ID = 0x11
_HREF_VALUE_TOKENS = {".com/": 0x85, ".edu/": 0x86, ".net/": 0x87, ".org/": 0x88}
_HREF_VALUE_SPLIT = re.compile("(" + "|".join(re.escape(t) for t in _HREF_VALUE_TOKENS) + ")")

_WSP_PUSH = 0x06
_CONTENT_TYPE_SIC = 0xAE
_URL = re.compile(r"https?://[^\s\x00]+", re.IGNORECASE)


class InvalidWapPush(ValueError):
    """The text is not ``URL`` or ``URL text``, or the push does not fit."""


@dataclass(frozen=True)
class WapPush:
    url: str
    text: str | None


def parse_wap_push_text(message: str) -> WapPush:
    """``"http://x.example/a Hello"`` -> url + text (see the module docstring)."""
    stripped = message.strip()
    parts = stripped.split(None, 1)
    url = parts[0] if parts else ""
    rest = parts[1].strip() if len(parts) > 1 else ""
    if not _URL.fullmatch(url) or len(url) > MAX_URL_LENGTH:
        raise InvalidWapPush("a WAP Push message starts with an http:// or https:// URL")
    if "\x00" in rest:
        raise InvalidWapPush("the text may not contain NUL")
    return WapPush(url=url, text=rest or None)


def _inline(text: str) -> bytes:
    return bytes([_STR_I]) + text.encode("utf-8") + b"\x00"


def _href(url: str) -> bytes:
    token, rest = _ATTR_HREF, url
    for prefix, prefix_token in _HREF_PREFIXES:
        if url.lower().startswith(prefix):
            token, rest = prefix_token, url[len(prefix):]
            break
    encoded = bytearray([token])
    for piece in _HREF_VALUE_SPLIT.split(rest):
        if piece in _HREF_VALUE_TOKENS:
            encoded.append(_HREF_VALUE_TOKENS[piece])
        elif piece:
            encoded += _inline(piece)
    return bytes(encoded)


def _datetime_opaque(moment: datetime) -> bytes:
    """WAP-167 section 8.2.2: the 14 digits YYYYMMDDhhmmss as BCD, trailing zero octets dropped."""
    digits = moment.strftime("%Y%m%d%H%M%S")
    octets = bytes(int(digits[i : i + 2], 16) for i in range(0, 14, 2)).rstrip(b"\x00")
    return bytes([_OPAQUE, len(octets)]) + octets


def si_document(
    href: str,
    text: str | None = None,
    *,
    action: str | None = "signal-medium",
    si_id: str | None = None,
    created: datetime | None = None,
    expires: datetime | None = None,
) -> bytes:
    """The WBXML SI document (times are UTC; ``action=None`` leaves the attribute out)."""
    body = bytearray([_WBXML_VERSION_1_2, _PUBLIC_ID_SI_1_0, _CHARSET_UTF8, 0x00])
    body += bytes([_TAG_SI_WITH_CONTENT, _TAG_INDICATION_WITH_ATTRS_AND_CONTENT])
    body += _href(href)
    if action is not None:
        body.append(ACTIONS[action])
    if si_id is not None:
        body += bytes([_ATTR_SI_ID]) + _inline(si_id)
    if created is not None:
        body += bytes([_ATTR_CREATED]) + _datetime_opaque(created)
    if expires is not None:
        body += bytes([_ATTR_SI_EXPIRES]) + _datetime_opaque(expires)
    body.append(_END)  # end of the attribute list
    if text:
        body += _inline(text)
    body += bytes([_END, _END])  # </indication></si>
    return bytes(body)


def wsp_push_header(transaction_id: int = 0x01) -> bytes:
    """Connectionless WSP Push: TID, PDU type, headers length, content type SIC."""
    return bytes([transaction_id & 0xFF, _WSP_PUSH, 0x01, _CONTENT_TYPE_SIC])


def wap_push_payload(url: str, text: str | None = None, *, transaction_id: int = 0x01) -> bytes:
    """The 8-bit payload (WSP header + SI) for ``url`` and an optional indication text."""
    return wsp_push_header(transaction_id) + si_document(url, text)


def _port_element() -> bytes:
    return bytes([0x05, 0x04]) + WAP_PUSH_PORT.to_bytes(2, "big") + WAP_WSP_PORT.to_bytes(2, "big")


def count_parts(payload_length: int) -> int:
    if payload_length <= SINGLE_PART_BYTES:
        return 1
    return -(-payload_length // PART_BYTES)


def segment_payload(payload: bytes, ref: int = 0) -> list[bytes]:
    """SMS user data (UDH included) for each part; send with data_coding 0x04 and UDHI set."""
    total = count_parts(len(payload))
    if total > 255:
        raise InvalidWapPush("payload too long")
    if total == 1:
        header = _port_element()
        return [bytes([len(header)]) + header + payload]
    parts = []
    for seq in range(1, total + 1):
        header = _port_element() + bytes([0x00, 0x03, ref % 0x100, total, seq])
        chunk = payload[(seq - 1) * PART_BYTES : seq * PART_BYTES]
        parts.append(bytes([len(header)]) + header + chunk)
    return parts


def plan(message: str) -> tuple[WapPush, bytes, int]:
    """Parse, build and count a WAP Push text; raises :class:`InvalidWapPush`."""
    push = parse_wap_push_text(message)
    payload = wap_push_payload(push.url, push.text)
    parts = count_parts(len(payload))
    if parts > MAX_PARTS:
        raise InvalidWapPush(f"the push needs {parts} parts; at most {MAX_PARTS}")
    return push, payload, parts
