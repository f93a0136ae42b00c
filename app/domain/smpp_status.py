"""SMPP 3.4 ``command_status`` classified as data, and what to do about each.

One table, `STATUSES`, gives every command_status of SMPP 3.4 (section 5.1.3) a name, a
`StatusClass` and the Genesys DR ``result_code`` (`DrResultCode`, seed 000 "Result Code"
table) that a message ended by that status reports:

* ``OK``: ESME_ROK; the SMSC took the message.
* ``THROTTLED``: RTHROTTLED, RMSGQFUL. The SMSC is busy, not refusing the message: retry
  later, after at least the wait the carrier's token bucket computes. Throttled attempts are
  not counted against the retry bound; the message's validity period, which the caller
  enforces with its clock, is what ends them. If it does, the result code is 6.
* ``TRANSIENT``: the SMSC failed (RSYSERR, RSUBMITFAIL, RX_T_APPN, RDELIVERYFAILURE,
  RUNKNOWNERR) or our session is in a state a new bind repairs (RINVBNDSTS, RALYBND,
  RBINDFAIL, RINVPASWD, RINVSYSID). Retry a bounded number of times.
* ``PERMANENT``: the same PDU would fail again (bad address, bad parameter, too long).
  End the message rejected.

Result codes: address and sender problems get the specific codes (1 for a destination the
upstream refuses, 4 for a source TON the carrier refuses, i.e. an alphanumeric sender,
5 for a source address or NPI it refuses), 8 for RINVMSGLEN, 6 for throttling, 2 for
bind authentication, 98 for the SMSC's own system error and for PDUs we built wrong (our
fault, "try again and contact your account manager"), 1 for the other rejections the
SMSC makes of the message, 99 for statuses that do not belong to a submit at all.

Codes not in the table (the vendor-specific range 0x400-0x4FF, and anything else) are
``TRANSIENT`` with result code 99. An error response means the SMSC did not take the
message, so a retry can never duplicate it; the bound keeps a vendor code that really is
permanent to a few wasted attempts, while treating an unknown code as permanent would
reject, for good, messages a carrier only failed to take for a moment.

`next_action` turns a status and the attempt count into a retry, reject or done `Action`.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, IntEnum

THROTTLE_COUNTDOWN_SECONDS = 1.0
"""Countdown hint for a throttled submit; the carrier bucket's own wait wins when longer."""

TRANSIENT_BASE_COUNTDOWN_SECONDS = 10.0
TRANSIENT_MAX_COUNTDOWN_SECONDS = 300.0
"""Transient retries back off 10, 20, 40 ... s, never above this (well under the broker's
visibility timeout, DESIGN.md "Time")."""

VENDOR_SPECIFIC = range(0x400, 0x500)


class DrResultCode(IntEnum):
    """The DR ``result_code`` values (seed 000, "Receiving a Delivery Receipt", Result Code)."""

    SUCCESS = 0
    REJECTED_UPSTREAM = 1
    AUTHENTICATION_FAILURE = 2
    CARRIER_INVALID = 3
    ALPHANUMERIC_NOT_PERMITTED = 4
    SHORTCODE_NOT_ALLOWED = 5
    THROTTLED = 6
    DUPLICATE = 7
    BODY_TOO_LONG = 8
    INTERNAL_ERROR = 98
    UNMAPPED = 99


class StatusClass(Enum):
    OK = "ok"
    THROTTLED = "throttled"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


class ActionKind(Enum):
    DONE = "done"
    RETRY = "retry"
    REJECT = "reject"


class CommandStatus(IntEnum):
    """SMPP 3.4 command_status values (section 5.1.3), named as in the spec."""

    ESME_ROK = 0x00
    ESME_RINVMSGLEN = 0x01
    ESME_RINVCMDLEN = 0x02
    ESME_RINVCMDID = 0x03
    ESME_RINVBNDSTS = 0x04
    ESME_RALYBND = 0x05
    ESME_RINVPRTFLG = 0x06
    ESME_RINVREGDLVFLG = 0x07
    ESME_RSYSERR = 0x08
    ESME_RINVSRCADR = 0x0A
    ESME_RINVDSTADR = 0x0B
    ESME_RINVMSGID = 0x0C
    ESME_RBINDFAIL = 0x0D
    ESME_RINVPASWD = 0x0E
    ESME_RINVSYSID = 0x0F
    ESME_RCANCELFAIL = 0x11
    ESME_RREPLACEFAIL = 0x13
    ESME_RMSGQFUL = 0x14
    ESME_RINVSERTYP = 0x15
    ESME_RINVNUMDESTS = 0x33
    ESME_RINVDLNAME = 0x34
    ESME_RINVDESTFLAG = 0x40
    ESME_RINVSUBREP = 0x42
    ESME_RINVESMCLASS = 0x43
    ESME_RCNTSUBDL = 0x44
    ESME_RSUBMITFAIL = 0x45
    ESME_RINVSRCTON = 0x48
    ESME_RINVSRCNPI = 0x49
    ESME_RINVDSTTON = 0x50
    ESME_RINVDSTNPI = 0x51
    ESME_RINVSYSTYP = 0x53
    ESME_RINVREPFLAG = 0x54
    ESME_RINVNUMMSGS = 0x55
    ESME_RTHROTTLED = 0x58
    ESME_RINVSCHED = 0x61
    ESME_RINVEXPIRY = 0x62
    ESME_RINVDFTMSGID = 0x63
    ESME_RX_T_APPN = 0x64
    ESME_RX_P_APPN = 0x65
    ESME_RX_R_APPN = 0x66
    ESME_RQUERYFAIL = 0x67
    ESME_RINVOPTPARSTREAM = 0xC0
    ESME_ROPTPARNOTALLWD = 0xC1
    ESME_RINVPARLEN = 0xC2
    ESME_RMISSINGOPTPARAM = 0xC3
    ESME_RINVOPTPARAMVAL = 0xC4
    ESME_RDELIVERYFAILURE = 0xFE
    ESME_RUNKNOWNERR = 0xFF


@dataclass(frozen=True)
class StatusEntry:
    code: int
    name: str
    status_class: StatusClass
    result_code: DrResultCode


@dataclass(frozen=True)
class Action:
    """What to do after a response: `result_code` is the DR code if the message ends now."""

    kind: ActionKind
    result_code: DrResultCode
    countdown_hint: float | None = None


_OK, _THR, _TRA, _PER = (
    StatusClass.OK,
    StatusClass.THROTTLED,
    StatusClass.TRANSIENT,
    StatusClass.PERMANENT,
)
_R = DrResultCode


def _entry(status: CommandStatus, status_class: StatusClass, result_code: DrResultCode) -> StatusEntry:
    return StatusEntry(int(status), status.name, status_class, result_code)

STATUSES: dict[int, StatusEntry] = {
    status.code: status
    for status in (
        _entry(CommandStatus.ESME_ROK, _OK, _R.SUCCESS),
        _entry(CommandStatus.ESME_RINVMSGLEN, _PER, _R.BODY_TOO_LONG),
        _entry(CommandStatus.ESME_RINVCMDLEN, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVCMDID, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVBNDSTS, _TRA, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RALYBND, _TRA, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVPRTFLG, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVREGDLVFLG, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RSYSERR, _TRA, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVSRCADR, _PER, _R.SHORTCODE_NOT_ALLOWED),
        _entry(CommandStatus.ESME_RINVDSTADR, _PER, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RINVMSGID, _PER, _R.UNMAPPED),
        _entry(CommandStatus.ESME_RBINDFAIL, _TRA, _R.AUTHENTICATION_FAILURE),
        _entry(CommandStatus.ESME_RINVPASWD, _TRA, _R.AUTHENTICATION_FAILURE),
        _entry(CommandStatus.ESME_RINVSYSID, _TRA, _R.AUTHENTICATION_FAILURE),
        _entry(CommandStatus.ESME_RCANCELFAIL, _PER, _R.UNMAPPED),
        _entry(CommandStatus.ESME_RREPLACEFAIL, _PER, _R.UNMAPPED),
        _entry(CommandStatus.ESME_RMSGQFUL, _THR, _R.THROTTLED),
        _entry(CommandStatus.ESME_RINVSERTYP, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVNUMDESTS, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVDLNAME, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVDESTFLAG, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVSUBREP, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVESMCLASS, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RCNTSUBDL, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RSUBMITFAIL, _TRA, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RINVSRCTON, _PER, _R.ALPHANUMERIC_NOT_PERMITTED),
        _entry(CommandStatus.ESME_RINVSRCNPI, _PER, _R.SHORTCODE_NOT_ALLOWED),
        _entry(CommandStatus.ESME_RINVDSTTON, _PER, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RINVDSTNPI, _PER, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RINVSYSTYP, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVREPFLAG, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVNUMMSGS, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RTHROTTLED, _THR, _R.THROTTLED),
        _entry(CommandStatus.ESME_RINVSCHED, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVEXPIRY, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVDFTMSGID, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RX_T_APPN, _TRA, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RX_P_APPN, _PER, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RX_R_APPN, _PER, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RQUERYFAIL, _PER, _R.UNMAPPED),
        _entry(CommandStatus.ESME_RINVOPTPARSTREAM, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_ROPTPARNOTALLWD, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVPARLEN, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RMISSINGOPTPARAM, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RINVOPTPARAMVAL, _PER, _R.INTERNAL_ERROR),
        _entry(CommandStatus.ESME_RDELIVERYFAILURE, _TRA, _R.REJECTED_UPSTREAM),
        _entry(CommandStatus.ESME_RUNKNOWNERR, _TRA, _R.UNMAPPED),
    )
}


def classify(code: int) -> StatusEntry:
    """The table entry for `code`; unknown codes are TRANSIENT with result code 99."""
    if code in STATUSES:
        return STATUSES[code]
    prefix = "vendor-specific" if code in VENDOR_SPECIFIC else "unknown"
    return StatusEntry(code, f"{prefix} 0x{code:08x}", _TRA, _R.UNMAPPED)


def next_action(status: int, attempts_so_far: int, max_transient_attempts: int) -> Action:
    """What to do after a submit answered with `status`.

    `attempts_so_far` counts the submits made, this one included, that ended TRANSIENT
    (throttled attempts are not counted, see the module docstring). A transient status
    is retried while fewer than `max_transient_attempts` have been made.
    """
    entry = classify(status)
    if entry.status_class is StatusClass.OK:
        return Action(ActionKind.DONE, entry.result_code)
    if entry.status_class is StatusClass.THROTTLED:
        return Action(ActionKind.RETRY, entry.result_code, THROTTLE_COUNTDOWN_SECONDS)
    if entry.status_class is StatusClass.TRANSIENT and attempts_so_far < max_transient_attempts:
        return Action(ActionKind.RETRY, entry.result_code, transient_countdown(attempts_so_far))
    return Action(ActionKind.REJECT, entry.result_code)


def transient_countdown(attempts_so_far: int) -> float:
    """Exponential backoff after the `attempts_so_far`-th transient failure, capped."""
    exponent = min(max(attempts_so_far - 1, 0), 16)
    return min(TRANSIENT_BASE_COUNTDOWN_SECONDS * 2**exponent, TRANSIENT_MAX_COUNTDOWN_SECONDS)
