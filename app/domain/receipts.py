"""Delivery receipts: parsing them, matching their ids, and moving message states forward.

Receipt text (`parse_receipt_text`)
    The de-facto SMPP 3.4 receipt format (Appendix B)::

        id:IIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm stat:DDDDDDD
        err:E text:...

    is read tolerantly: keys in any case, any spacing around and between fields,
    ``submit_date``/``submitdate`` spellings, fields missing, added or in another order,
    dates of 10 (YYMMDDhhmm), 12 (with seconds) or 14 (YYYYMMDDhhmmss) digits. A field's
    value is the first word after its key; everything after ``text:`` is the text, whatever
    it contains. A date that is not a valid date reads as None (it is informational); a
    text without ``id`` or ``stat`` raises `MalformedReceipt`.

Receipt (`parse_receipt`)
    The deliver_sm TLVs ``receipted_message_id`` and ``message_state`` win over the text.
    With both present the text may be absent or unreadable.

Stat words and TLV values to the seed's ``message_state`` (seed 000, Message State)
    DELIVRD 2, EXPIRED 3, DELETED 4, UNDELIV 5, ACCEPTD 6, UNKNOWN 7, REJECTD 8, ENROUTE 1;
    the spelled-out words (DELIVERED, UNDELIVERABLE, ...) are accepted too. A word we do not
    know is UNKNOWN (7): the receipt still reached us and says nothing we can rely on.
    The message_state TLV (SMPP 3.4 5.2.28) uses the same numbers 1-8 as the seed. SMPP 5.0
    adds 0 SCHEDULED, read as ACCEPTED (held by the SMSC, not yet sent), and 9 SKIPPED
    ("not transmitted"), read as UNDELIVERABLE; other numbers read as UNKNOWN.

SMSC message ids (`normalize_smsc_id`, `smsc_id_candidates`)
    An SMSC may answer submit_sm_resp with an id in hex and quote it in decimal in the
    receipt, or the other way round, with or without leading zeros. The canonical form is
    the id stripped of surrounding blanks and lower-cased, and, when it is all hex digits,
    without leading zeros ("0" stays "0"). Ids are stored under their canonical form. A
    receipt's id is looked up under each of its candidates, in order: the canonical form;
    its value read as hex, written in decimal; its value read as decimal, written in hex.
    An id of decimal digits only is ambiguous (is "123" 123 or 0x123?); the lookup does not
    decide but tries every reading, literal first, and takes the first hit. Keys scoped by
    carrier, with a TTL, keep a wrong hit to ids of the same SMSC that are alive at the same
    time.

The state lattice (`may_transition`, `combine_segment_states`)
    A state only moves forward: ACCEPTED (6) < ENROUTE (1) < UNKNOWN (7) < the final states
    DELIVERED 2, EXPIRED 3, DELETED 4, UNDELIVERABLE 5, REJECTED 8. UNKNOWN is not final:
    SMSCs send it when they lost track of a message, and a later DELIVRD or UNDELIV must
    still count; it sits above ENROUTE so that a late en-route receipt cannot undo it.
    A final state is terminal, even against another final state. Repeating the current
    state is not a transition.

Result codes for a receipt (`result_code_for_state`, seed 000 Result Code)
    States that are not failures (delivered, accepted, en-route, unknown) give 0.
    UNDELIVERABLE, REJECTED and EXPIRED give 1 ("rejected by the upstream provider. Check
    the phone number and carrier and try again": the handset could not be reached).
    DELETED, an operator's action, gives 99 (unmapped; ask the account manager).
    This is the default by state alone; :mod:`app.domain.carrier_codes` reads the ``err``
    field too, through the carrier's own table, and falls back to this.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from app.domain.smpp_status import DrResultCode
from app.domain.states import MessageState


class MalformedReceipt(ValueError):
    """A delivery receipt we cannot read an id and a state from."""


@dataclass(frozen=True)
class ReceiptText:
    """The fields of a receipt's text; those the SMSC left out are None."""

    message_id: str
    stat: str
    submitted: int | None = None
    delivered: int | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None
    err: str | None = None
    text: str | None = None

    @property
    def state(self) -> MessageState:
        return state_from_stat(self.stat)


@dataclass(frozen=True)
class Receipt:
    """A delivery receipt: whose (`smsc_id`, as received) and what happened."""

    smsc_id: str
    state: MessageState
    err: str | None = None
    submit_date: datetime | None = None
    done_date: datetime | None = None

    @property
    def result_code(self) -> DrResultCode:
        return result_code_for_state(self.state)


STAT_STATES: dict[str, MessageState] = {
    "ENROUTE": MessageState.ENROUTE,
    "EN_ROUTE": MessageState.ENROUTE,
    "DELIVRD": MessageState.DELIVERED,
    "DELIVERED": MessageState.DELIVERED,
    "EXPIRED": MessageState.EXPIRED,
    "DELETED": MessageState.DELETED,
    "UNDELIV": MessageState.UNDELIVERABLE,
    "UNDELIVERABLE": MessageState.UNDELIVERABLE,
    "ACCEPTD": MessageState.ACCEPTED,
    "ACCEPTED": MessageState.ACCEPTED,
    "UNKNOWN": MessageState.UNKNOWN,
    "REJECTD": MessageState.REJECTED,
    "REJECTED": MessageState.REJECTED,
}

TLV_STATES: dict[int, MessageState] = {
    0: MessageState.ACCEPTED,
    **{int(state): state for state in MessageState},
    9: MessageState.UNDELIVERABLE,
}

_RANK = {MessageState.ACCEPTED: 0, MessageState.ENROUTE: 1, MessageState.UNKNOWN: 2}
_FINAL_RANK = 3

_FAILURE_RESULT = {
    MessageState.UNDELIVERABLE: DrResultCode.REJECTED_UPSTREAM,
    MessageState.REJECTED: DrResultCode.REJECTED_UPSTREAM,
    MessageState.EXPIRED: DrResultCode.REJECTED_UPSTREAM,
    MessageState.DELETED: DrResultCode.UNMAPPED,
}

_KEY = re.compile(
    r"(?<![a-z_])(id|sub|dlvrd|submit[\s_]*date|done[\s_]*date|stat|err|text)\s*:",
    re.IGNORECASE,
)
_DATE_LENGTHS = (10, 12, 14)
_HEX_DIGITS = frozenset("0123456789abcdef")


def parse_receipt_text(text: str) -> ReceiptText:
    """The fields of a receipt text (module docstring); MalformedReceipt without id or stat."""
    fields = _fields(text)
    if not fields.get("id") or not fields.get("stat"):
        raise MalformedReceipt(f"receipt text without id or stat: {text!r}")
    return ReceiptText(
        message_id=fields["id"],
        stat=fields["stat"].upper(),
        submitted=_int_or_none(fields.get("sub")),
        delivered=_int_or_none(fields.get("dlvrd")),
        submit_date=parse_receipt_date(fields.get("submitdate")),
        done_date=parse_receipt_date(fields.get("donedate")),
        err=fields.get("err"),
        text=fields.get("text"),
    )


def parse_receipt(
    text: str | None,
    *,
    receipted_message_id: str | None = None,
    message_state: int | None = None,
) -> Receipt:
    """A receipt from deliver_sm text and TLVs; the TLVs win where both give a value."""
    fields = _fields(text or "")
    smsc_id = receipted_message_id or fields.get("id")
    if message_state is not None:
        state = state_from_tlv(message_state)
    elif fields.get("stat"):
        state = state_from_stat(fields["stat"])
    else:
        state = None
    if not smsc_id or state is None:
        raise MalformedReceipt(f"receipt without id or state: {text!r}")
    return Receipt(
        smsc_id=smsc_id,
        state=state,
        err=fields.get("err"),
        submit_date=parse_receipt_date(fields.get("submitdate")),
        done_date=parse_receipt_date(fields.get("donedate")),
    )


def parse_receipt_date(value: str | None) -> datetime | None:
    """YYMMDDhhmm[ss] or YYYYMMDDhhmmss as a naive datetime (SMSC time); None if invalid.
    A two-digit year reads as ``strptime``'s ``%y`` does: 69-99 are 1969-1999, 00-68 are 2000-2068."""
    if not value or len(value) not in _DATE_LENGTHS or not value.isascii() or not value.isdigit():
        return None
    if len(value) == 14:
        year, rest = int(value[:4]), value[4:]
    else:
        year, rest = int(value[:2]), value[2:]
        year += 1900 if year >= 69 else 2000
    fields = [int(rest[i:i + 2]) for i in range(0, len(rest), 2)]
    try:
        return datetime(year, *fields)
    except ValueError:
        return None


def state_from_stat(stat: str) -> MessageState:
    return STAT_STATES.get(stat.strip().upper(), MessageState.UNKNOWN)


def state_from_tlv(message_state: int) -> MessageState:
    return TLV_STATES.get(message_state, MessageState.UNKNOWN)


def normalize_smsc_id(raw: str) -> str:
    """The canonical form of an SMSC message id (module docstring)."""
    canonical = raw.strip().lower()
    if not canonical:
        raise ValueError("empty SMSC message id")
    if set(canonical) <= _HEX_DIGITS:
        return canonical.lstrip("0") or "0"
    return canonical


def smsc_id_candidates(raw: str) -> tuple[str, ...]:
    """Keys to look an SMSC id up under, most literal first, without repeats."""
    canonical = normalize_smsc_id(raw)
    candidates = [canonical]
    if set(canonical) <= _HEX_DIGITS:
        candidates.append(str(int(canonical, 16)))
    if canonical.isdigit():
        candidates.append(format(int(canonical), "x"))
    return tuple(dict.fromkeys(candidates))


def may_transition(current: MessageState | None, new: MessageState) -> bool:
    """Whether a message in `current` (None: no state yet) may move to `new`."""
    if current is None:
        return True
    return not current.is_final and _rank(new) > _rank(current)


def combine_segment_states(states: Sequence[MessageState]) -> MessageState:
    """The state of a multi-part message from its parts' states, in part order.

    Delivered when every part is; the first failed part decides a failure; otherwise the
    least advanced intermediate state. Pass ACCEPTED for a part with no receipt yet.
    """
    if not states:
        raise ValueError("a message has at least one part")
    if len(states) == 1:
        return states[0]
    failures = [s for s in states if s.is_final and s is not MessageState.DELIVERED]
    if failures:
        return failures[0]
    pending = [s for s in states if s is not MessageState.DELIVERED]
    if not pending:
        return MessageState.DELIVERED
    return min(pending, key=_rank)


def result_code_for_state(state: MessageState) -> DrResultCode:
    """The DR result_code sent with `state` (module docstring)."""
    return _FAILURE_RESULT.get(state, DrResultCode.SUCCESS)


def _rank(state: MessageState) -> int:
    return _FINAL_RANK if state.is_final else _RANK[state]


def _fields(text: str) -> dict[str, str]:
    """Key (lower-case, no blanks or '_') to value; the first occurrence of a key wins.

    A value is the first word after its key (words after it belong to fields we do not
    know), except for text, which runs to the end.
    """
    matches = list(_KEY.finditer(text))
    fields: dict[str, str] = {}
    for index, match in enumerate(matches):
        key = re.sub(r"[\s_]", "", match.group(1).lower())
        if key == "text":
            fields.setdefault(key, text[match.end() :].strip())
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        words = text[match.end() : end].split()
        fields.setdefault(key, words[0] if words else "")
    return fields


def _int_or_none(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None
