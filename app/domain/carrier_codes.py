"""What a carrier's refusal or failure receipt tells the client: the DR ``result_code``.

The client learns why a message failed from one number, the DR ``result_code`` of
seed 000 ("Receiving a Delivery Receipt", Result Code table: 1 rejected by the
upstream provider, 3 carrier invalid, 4 alphanumeric sender not permitted, 5 shortcode
not allowed, 6 throttle, 7 duplicate, 8 body too long, 98 internal service error, 99
unmapped). Carriers say why in two places, and this module turns both into that number:

* a submit refused with an SMPP ``command_status`` (an HTTP carrier's own codes are
  turned into command_status values by its connector first): the default is the table
  in :mod:`app.domain.smpp_status` (ESME_RINVDSTADR 1, ESME_RINVSRCADR 5,
  ESME_RINVSRCTON 4, ESME_RTHROTTLED / ESME_RMSGQFUL 6, ESME_RINVMSGLEN 8,
  ESME_RSUBMITFAIL 1, ESME_RSYSERR 98, unknown and vendor-specific codes 99);
* a final receipt (``stat`` and ``err``, SMPP 3.4 Appendix B), read in this order, the
  first that answers wins:

  ======================================  ==============================================
  the receipt                             result_code
  ======================================  ==============================================
  DELIVRD, ACCEPTD, ENROUTE, UNKNOWN      0: not a failure (no carrier table changes it)
  the carrier's rule for (stat, err)      its code
  the carrier's rule for (any stat, err)  its code
  the carrier's rule for (stat, any err)  its code
  ``err`` names an SMPP command_status    that status's code, as for a refused submit
  explicitly: ``0x``-prefixed hex         (the carrier's command_status rules first),
  (``err:0x00000058``) or an ESME name    when the status is an error (not ESME_ROK)
  (``err:ESME_RTHROTTLED``)
  UNDELIV, REJECTD, EXPIRED               1: the handset could not be reached; check
                                          the number and the carrier
  DELETED                                 99: an operator's action, unmapped
  ======================================  ==============================================

A plain numeric ``err`` (``err:001``, ``err:027``) is carrier-specific: SMSCs fill it
with GSM MAP errors, their own codes or nothing (``000``), in decimal or hex, so the
default does not guess what it means; a carrier whose codes are known gets a table.
An err that is missing, empty, or matches nothing falls through to the stat default;
a receipt is never refused for its err.

A carrier's table (:meth:`ResultCodeTable.parse`, stored in the carrier's settings as
``result_codes``, ``smsagg carrier result-codes``) is JSON::

    {"command_status": {"0x0B": 3, "ESME_RINVSRCADR": 4, "1025": 6},
     "receipt": {"UNDELIV:001": 3, "REJECTD:*": 5, "*:088": 6, "EXPIRED": 6}}

``command_status`` keys are ``0x`` hex, decimal or an ESME name; ``receipt`` keys are
``STAT:ERR`` with ``*`` for any, ``STAT`` alone meaning ``STAT:*``; STAT is a failure
stat word (UNDELIV, REJECTD, EXPIRED, DELETED, or their spelled-out forms). Err values
compare blank-stripped and upper-cased, and an all-digit err without its leading zeros
(``err:001``, ``err:01`` and ``err:1`` are one value). Values are seed result codes
other than 0. An override changes the code the client is told, never whether a
status is retried (that stays :mod:`app.domain.smpp_status`'s decision).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from app.domain.receipts import STAT_STATES, result_code_for_state
from app.domain.smpp_status import STATUSES, DrResultCode, classify
from app.domain.states import MessageState

ANY = "*"
FAILURE_STATES = frozenset({MessageState.UNDELIVERABLE, MessageState.REJECTED, MessageState.EXPIRED,
                            MessageState.DELETED})
_STATUS_BY_NAME = {status.name: status.code for status in STATUSES.values()}


class InvalidCodeTable(ValueError):
    """A carrier's result-code table that cannot be used; the message says where."""


@dataclass(frozen=True)
class ResultCodeTable:
    """One carrier's overrides; the empty table is the default behaviour."""

    command_status: Mapping[int, DrResultCode] = field(default_factory=dict)
    receipt: Mapping[tuple[MessageState | str, str], DrResultCode] = field(default_factory=dict)

    @classmethod
    def parse(cls, raw: Any) -> "ResultCodeTable":
        """The table from its JSON form (module docstring); InvalidCodeTable if it is wrong."""
        if raw is None:
            return DEFAULT_TABLE
        if not isinstance(raw, Mapping) or set(raw) - {"command_status", "receipt"}:
            raise InvalidCodeTable('a result-code table is an object with "command_status" and/or "receipt"')
        statuses = _section(raw, "command_status")
        receipts = _section(raw, "receipt")
        return cls(
            command_status={_status_key(key): _code(value, key) for key, value in statuses.items()},
            receipt={_receipt_key(key): _code(value, key) for key, value in receipts.items()},
        )

    def for_command_status(self, status: int) -> DrResultCode:
        """The result code of a submit refused with ``status``."""
        override = self.command_status.get(status)
        return override if override is not None else classify(status).result_code

    def for_receipt(self, state: MessageState, err: str | None) -> DrResultCode:
        """The result code of a receipt that ended a message in ``state`` (module docstring)."""
        if state not in FAILURE_STATES:
            return result_code_for_state(state)
        key = normalize_err(err)
        if key:
            for rule in ((state, key), (ANY, key)):
                if rule in self.receipt:
                    return self.receipt[rule]
        if (state, ANY) in self.receipt:
            return self.receipt[(state, ANY)]
        status = named_command_status(key)
        if status:
            return self.for_command_status(status)
        return result_code_for_state(state)


DEFAULT_TABLE = ResultCodeTable()


def normalize_err(err: str | None) -> str:
    """An err value as rules compare it: stripped, upper-cased, digits without leading zeros."""
    value = (err or "").strip().upper()
    if value.isascii() and value.isdigit():
        return value.lstrip("0") or "0"
    return value


def named_command_status(err: str) -> int | None:
    """The SMPP command_status an err names explicitly (``0x`` hex or an ESME name), else None."""
    if err.startswith("0X"):
        try:
            return int(err[2:], 16)
        except ValueError:
            return None
    return _STATUS_BY_NAME.get(err)


def _section(raw: Mapping, name: str) -> Mapping:
    section = raw.get(name)
    if section is None:
        return {}
    if not isinstance(section, Mapping):
        raise InvalidCodeTable(f'"{name}" must be an object')
    return section


def _code(value: Any, key: str) -> DrResultCode:
    if isinstance(value, bool) or not isinstance(value, int) or value not in DrResultCode._value2member_map_ \
            or value == DrResultCode.SUCCESS:
        allowed = ", ".join(str(int(code)) for code in DrResultCode if code)
        raise InvalidCodeTable(f"{key!r}: {value!r} is not a failure result code ({allowed})")
    return DrResultCode(value)


def _status_key(key: str) -> int:
    text = str(key).strip().upper()
    if text.isascii() and text.isdigit():
        return int(text)
    status = named_command_status(text)
    if status is None:
        raise InvalidCodeTable(f"command_status {key!r}: use 0x hex, decimal or an ESME_ name")
    return status


def _receipt_key(key: str) -> tuple[MessageState | str, str]:
    stat, _, err = str(key).partition(":")
    stat = stat.strip().upper()
    err_key = normalize_err(err) or ANY
    if stat == ANY:
        if err_key == ANY:
            raise InvalidCodeTable(f"receipt {key!r}: '*:*' would hide every stat; name a stat or an err")
        return ANY, err_key
    state = STAT_STATES.get(stat)
    if state not in FAILURE_STATES:
        words = ", ".join(sorted(word for word, s in STAT_STATES.items() if s in FAILURE_STATES))
        raise InvalidCodeTable(f"receipt {key!r}: the stat must be a failure ({words}) or *")
    return state, err_key
