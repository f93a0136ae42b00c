"""What a message becomes on the wire: pure functions from a recorded message to the
submit_sm fields of its segments. No I/O; the connector only sends what this builds.

* Addresses: an alphanumeric sender goes out with TON 5 (alphanumeric) NPI 0, a
  shortcode with TON 3 (network specific) NPI 0, a long number and every destination
  with TON 1 (international) NPI 1 (ISDN/E.164).
* ``registered_delivery`` is 1 (SMSC delivery receipt on success or failure) when the
  client asked for a receipt (``receipt=TRUE`` / ``dlr=1``), else 0.
* The text is segmented by :mod:`app.domain.encoding`; the concatenation reference is
  chosen once per message and stored with it, so rebuilding the segments after a
  redelivered task gives byte-identical PDUs.
* An MMS is one unit: its :class:`Submission` carries the MMS payload
  (:mod:`app.domain.mms`) and a single placeholder segment (seq 1 of 1, no user
  data), so it is throttled, acknowledged (the MMSC's message id) and matched to its
  delivery reports like a one-part SMS. Only MMS-capable connectors (MM7, an HTTP
  carrier that passes attachments on) are given one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from app.domain.encoding import ConcatMode, Encoding, EncodingPlan, plan_encoding, segment_message
from app.domain import wap_push
from app.domain.mms import MmsPayload
from app.domain.mt_request import SenderKind, classify_sender

TON_INTERNATIONAL, TON_NETWORK_SPECIFIC, TON_ALPHANUMERIC = 1, 3, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1


@dataclass(frozen=True)
class OutboundSegment:
    seq: int
    total: int
    short_message: bytes
    data_coding: int
    esm_class: int
    tlvs: Mapping[str, int | bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Submission:
    """One message for one carrier: the segments still to send, and the whole text
    (HTTP carriers take the text, SMPP carriers the segments); ``mms`` for an MMS."""

    message_id: str
    source: str
    source_ton: int
    source_npi: int
    destination: str
    text: str
    encoding: Encoding
    registered_delivery: int
    segments: tuple[OutboundSegment, ...]
    mms: MmsPayload | None = None
    # What an HTTP carrier that takes the text needs to name the message's type (the
    # bulk API's ``type``, seed 001); SMPP carriers read it from the segments.
    flash: bool = False
    wap_push: bool = False


def source_address_type(sender: str) -> tuple[int, int]:
    kind = classify_sender(sender)
    if kind is SenderKind.ALPHANUMERIC:
        return TON_ALPHANUMERIC, NPI_UNKNOWN
    if kind is SenderKind.SHORTCODE:
        return TON_NETWORK_SPECIFIC, NPI_UNKNOWN
    return TON_INTERNATIONAL, NPI_ISDN


def plan_for(text: str, *, encoding: str | None, flash: bool, smart: bool = False) -> EncodingPlan:
    requested = Encoding(encoding) if encoding else None
    return plan_encoding(text, requested=requested, smart=smart, flash=flash)


def build_submission(
    *,
    message_id: str,
    sender: str,
    destination: str,
    plan: EncodingPlan,
    receipt: bool,
    concat_ref: int,
    concat_mode: ConcatMode | str = ConcatMode.UDH,
    skip_seqs: frozenset[int] = frozenset(),
    wap_push: bool = False,
) -> Submission:
    """The submission of every segment not in ``skip_seqs`` (already acknowledged).

    ``wap_push``: the text is ``URL [text]`` and goes out as a WAP Push Service
    Indication (:mod:`app.domain.wap_push`: 8-bit, port-addressed UDH)."""
    ton, npi = source_address_type(sender)
    every = _wap_push_segments(plan.text, concat_ref) if wap_push else _text_segments(plan, concat_mode, concat_ref)
    segments = tuple(segment for segment in every if segment.seq not in skip_seqs)
    return Submission(
        message_id=message_id,
        source=sender,
        source_ton=ton,
        source_npi=npi,
        destination=destination,
        text=plan.text,
        encoding=plan.encoding,
        registered_delivery=1 if receipt else 0,
        segments=segments,
        flash=plan.flash and not wap_push,
        wap_push=wap_push,
    )


def build_mms_submission(*, message_id: str, sender: str, destination: str, text: str, receipt: bool,
                         mms: MmsPayload) -> Submission:
    """The submission of an MMS: the payload, and one placeholder segment (module docstring)."""
    ton, npi = source_address_type(sender)
    return Submission(
        message_id=message_id, source=sender, source_ton=ton, source_npi=npi, destination=destination, text=text,
        encoding=Encoding.UCS2,  # not read for an MMS: its text travels as a UTF-8 part
        registered_delivery=1 if receipt else 0,
        segments=(OutboundSegment(1, 1, b"", 0, 0),), mms=mms,
    )


def _text_segments(plan: EncodingPlan, concat_mode: ConcatMode | str, ref: int) -> list[OutboundSegment]:
    return [OutboundSegment(s.seq, s.total, s.short_message, s.data_coding, s.esm_class, dict(s.tlvs))
            for s in segment_message(plan, concat_mode=concat_mode, ref=ref)]


def _wap_push_segments(text: str, ref: int) -> list[OutboundSegment]:
    _, payload, _ = wap_push.plan(text)
    parts = wap_push.segment_payload(payload, ref)
    return [OutboundSegment(seq, len(parts), part, wap_push.DATA_CODING_8BIT, wap_push.ESM_CLASS_UDHI)
            for seq, part in enumerate(parts, start=1)]
