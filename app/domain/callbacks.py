"""DR and MO callbacks to clients: the body, the signature, the retry decision and the
address policy. Pure: no I/O, no clock (``now`` is passed in).

Body (`encode_fields`)
    ``application/x-www-form-urlencoded``, UTF-8, the fields in the order given (the
    seed's parameter tables, seed 000 "Receiving a Delivery Receipt" / "... Mobile
    Originated Message"). Spaces become ``+`` (the HTML form encoding every form parser
    reads). A field whose value is ``None`` is left out ("if a value had been provided").

Signature (`signature`, `verify_signature`)
    Every POST carries two headers::

        X-Smsagg-Timestamp: 1718000000          (Unix seconds, ASCII digits)
        X-Smsagg-Signature: 5f0c...e1           (64 lower-case hex digits)

    where the signature is ``hex(HMAC-SHA256(key=secret, msg=timestamp + body))``: the
    timestamp's ASCII bytes immediately followed by the raw body bytes, nothing between
    them. The key is the account's callback secret as shown by ``smsagg account show``,
    taken as its UTF-8 bytes (it is not hex-decoded). Each attempt is signed anew with its
    own timestamp; the body is the same on every attempt. A client recomputes the HMAC
    over the body bytes it received (before any form parsing), compares in constant time
    and rejects timestamps further than ``tolerance`` seconds from its clock, which bounds
    replays of a captured request.

Retry decision (`next_step`)
    Seed 000, "MO and DR Retry Strategy": any 2xx is accepted; everything else (another
    status, a timeout, a network error) is retried every ``retry_interval`` seconds until
    it succeeds or has been retried ``max_retries`` times: ``1 + max_retries`` attempts in
    all, then it is dead-lettered. An attempt that cannot succeed by retrying (the URL is
    refused by the address policy, or is not an http(s) URL) is dead-lettered at once:
    the operator fixes the cause and replays it (`smsagg callbacks replay`).

Address policy (`is_forbidden_address`)
    A callback may not reach loopback, link-local, private (RFC 1918, CGNAT 100.64/10),
    unique-local (fc00::/7), multicast, unspecified, reserved or otherwise non-global
    addresses, nor such an IPv4 address inside IPv6 (``::ffff:a.b.c.d``, 6to4, Teredo),
    unless the operator allows private callbacks: the gateway must not be a way into the
    operator's own network (DESIGN.md, "Callbacks").
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

TIMESTAMP_HEADER = "X-Smsagg-Timestamp"
SIGNATURE_HEADER = "X-Smsagg-Signature"
CONTENT_TYPE = "application/x-www-form-urlencoded"
DEFAULT_TOLERANCE_SECONDS = 300

Fields = Sequence[Sequence[object]]  # [[name, value], ...]


def encode_fields(fields: Iterable[Sequence[object]]) -> bytes:
    """The form body for ``[[name, value], ...]``, in that order; ``None`` values omitted."""
    pairs = [(str(name), str(value)) for name, value in fields if value is not None]
    return urlencode(pairs, encoding="utf-8").encode("ascii")


def signature(secret: str, timestamp: str, body: bytes) -> str:
    """``hex(HMAC-SHA256(secret, timestamp_ascii + body))``."""
    return hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + body, hashlib.sha256).hexdigest()


def signed_headers(secret: str, now: float, body: bytes) -> dict[str, str]:
    """The headers of one attempt sent at ``now`` (Unix seconds)."""
    timestamp = str(int(now))
    return {
        "Content-Type": CONTENT_TYPE,
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: signature(secret, timestamp, body),
    }


def verify_signature(
    secret: str, timestamp: str, body: bytes, signature_hex: str, now: float,
    tolerance: float = DEFAULT_TOLERANCE_SECONDS,
) -> bool:
    """What a client runs: the signature matches and the timestamp is within ``tolerance``
    seconds of ``now``. Self-contained on purpose (hmac + hashlib) so it can be copied."""
    if not timestamp.isascii() or not timestamp.isdigit():
        return False
    if abs(now - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, signature_hex.strip().lower())


# --- the decision after an attempt -------------------------------------------------------


@dataclass(frozen=True)
class Deliver:
    """The client accepted it (2xx)."""


@dataclass(frozen=True)
class Retry:
    """Try again in ``countdown`` seconds."""

    countdown: int


@dataclass(frozen=True)
class DeadLetter:
    """Stop: retries are exhausted, or retrying cannot help. Replayable."""

    reason: str


Step = Deliver | Retry | DeadLetter


def is_success(status_code: int | None) -> bool:
    return status_code is not None and 200 <= status_code <= 299


def next_step(
    attempts_so_far: int, max_retries: int, status_code: int | None, error: str | None, *,
    retry_interval: int = 600, permanent: bool = False,
) -> Step:
    """After an attempt: ``attempts_so_far`` counts every attempt made, this one included.

    2xx delivers (an ``error`` alongside, such as an unread body, does not matter). A
    ``permanent`` failure dead-letters at once. Otherwise retry until ``1 + max_retries``
    attempts have been made.
    """
    if is_success(status_code):
        return Deliver()
    reason = error or (f"HTTP {status_code}" if status_code is not None else "no response")
    if permanent:
        return DeadLetter(reason)
    if attempts_so_far >= 1 + max(0, max_retries):
        return DeadLetter(f"{reason} (after {attempts_so_far} attempts)")
    return Retry(max(1, int(retry_interval)))


# --- the address policy -------------------------------------------------------------------

_CGNAT = ipaddress.ip_network("100.64.0.0/10")


def is_forbidden_address(ip: str | ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """True for any address a callback must not reach unless private callbacks are allowed.
    An unparseable address is forbidden (fail closed). An IPv6 zone (``fe80::1%eth0``) is
    ignored for the decision."""
    try:
        address = ip if not isinstance(ip, str) else ipaddress.ip_address(ip.split("%", 1)[0].strip("[]"))
    except ValueError:
        return True
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:  # ::ffff:a.b.c.d is that IPv4 address
            return is_forbidden_address(address.ipv4_mapped)
        embedded = address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None and is_forbidden_address(embedded):
            return True
    return bool(
        address.is_loopback
        or address.is_link_local
        or address.is_private
        or address.is_multicast
        or address.is_unspecified
        or address.is_reserved
        or (isinstance(address, ipaddress.IPv6Address) and address.is_site_local)
        or (isinstance(address, ipaddress.IPv4Address) and address in _CGNAT)
        or not address.is_global
    )
