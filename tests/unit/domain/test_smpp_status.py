"""SMPP 3.4 command_status classification and the retry decision (app.domain.smpp_status)."""

import pytest

from app.domain.smpp_status import (
    STATUSES,
    TRANSIENT_MAX_COUNTDOWN_SECONDS,
    Action,
    ActionKind,
    DrResultCode,
    StatusClass,
    classify,
    next_action,
    transient_countdown,
)

SMPP_34_CODES = {
    "ESME_ROK": 0x00, "ESME_RINVMSGLEN": 0x01, "ESME_RINVCMDLEN": 0x02, "ESME_RINVCMDID": 0x03,
    "ESME_RINVBNDSTS": 0x04, "ESME_RALYBND": 0x05, "ESME_RINVPRTFLG": 0x06,
    "ESME_RINVREGDLVFLG": 0x07, "ESME_RSYSERR": 0x08, "ESME_RINVSRCADR": 0x0A,
    "ESME_RINVDSTADR": 0x0B, "ESME_RINVMSGID": 0x0C, "ESME_RBINDFAIL": 0x0D,
    "ESME_RINVPASWD": 0x0E, "ESME_RINVSYSID": 0x0F, "ESME_RCANCELFAIL": 0x11,
    "ESME_RREPLACEFAIL": 0x13, "ESME_RMSGQFUL": 0x14, "ESME_RINVSERTYP": 0x15,
    "ESME_RINVNUMDESTS": 0x33, "ESME_RINVDLNAME": 0x34, "ESME_RINVDESTFLAG": 0x40,
    "ESME_RINVSUBREP": 0x42, "ESME_RINVESMCLASS": 0x43, "ESME_RCNTSUBDL": 0x44,
    "ESME_RSUBMITFAIL": 0x45, "ESME_RINVSRCTON": 0x48, "ESME_RINVSRCNPI": 0x49,
    "ESME_RINVDSTTON": 0x50, "ESME_RINVDSTNPI": 0x51, "ESME_RINVSYSTYP": 0x53,
    "ESME_RINVREPFLAG": 0x54, "ESME_RINVNUMMSGS": 0x55, "ESME_RTHROTTLED": 0x58,
    "ESME_RINVSCHED": 0x61, "ESME_RINVEXPIRY": 0x62, "ESME_RINVDFTMSGID": 0x63,
    "ESME_RX_T_APPN": 0x64, "ESME_RX_P_APPN": 0x65, "ESME_RX_R_APPN": 0x66,
    "ESME_RQUERYFAIL": 0x67, "ESME_RINVOPTPARSTREAM": 0xC0, "ESME_ROPTPARNOTALLWD": 0xC1,
    "ESME_RINVPARLEN": 0xC2, "ESME_RMISSINGOPTPARAM": 0xC3, "ESME_RINVOPTPARAMVAL": 0xC4,
    "ESME_RDELIVERYFAILURE": 0xFE, "ESME_RUNKNOWNERR": 0xFF,
}


def test_the_table_holds_exactly_the_smpp_34_statuses():
    assert {status.name: code for code, status in STATUSES.items()} == SMPP_34_CODES


def test_the_table_agrees_with_smpplib():
    consts = pytest.importorskip("smpplib.consts")
    for name, code in SMPP_34_CODES.items():
        assert getattr(consts, f"SMPP_{name}") == code


def test_result_codes_are_the_seed_dr_table():
    """Seed 000, Result Code table: 0-8, 98, 99."""
    assert [int(code) for code in DrResultCode] == [0, 1, 2, 3, 4, 5, 6, 7, 8, 98, 99]


@pytest.mark.parametrize(
    ("name", "status_class", "result_code"),
    [
        ("ESME_ROK", StatusClass.OK, 0),
        ("ESME_RTHROTTLED", StatusClass.THROTTLED, 6),
        ("ESME_RMSGQFUL", StatusClass.THROTTLED, 6),
        ("ESME_RSYSERR", StatusClass.TRANSIENT, 98),
        ("ESME_RSUBMITFAIL", StatusClass.TRANSIENT, 1),
        ("ESME_RX_T_APPN", StatusClass.TRANSIENT, 1),
        ("ESME_RDELIVERYFAILURE", StatusClass.TRANSIENT, 1),
        ("ESME_RUNKNOWNERR", StatusClass.TRANSIENT, 99),
        ("ESME_RINVBNDSTS", StatusClass.TRANSIENT, 98),
        ("ESME_RINVPASWD", StatusClass.TRANSIENT, 2),
        ("ESME_RINVMSGLEN", StatusClass.PERMANENT, 8),
        ("ESME_RINVDSTADR", StatusClass.PERMANENT, 1),
        ("ESME_RINVSRCADR", StatusClass.PERMANENT, 5),
        ("ESME_RINVSRCTON", StatusClass.PERMANENT, 4),
        ("ESME_RX_P_APPN", StatusClass.PERMANENT, 1),
        ("ESME_RINVESMCLASS", StatusClass.PERMANENT, 98),
        ("ESME_RQUERYFAIL", StatusClass.PERMANENT, 99),
    ],
)
def test_classification(name, status_class, result_code):
    """Result codes from seed 000, Result Code table (6 throttle, 8 too long, 98 internal...)."""
    status = classify(SMPP_34_CODES[name])
    assert (status.name, status.status_class, status.result_code) == (
        name,
        status_class,
        result_code,
    )


@pytest.mark.parametrize("code", [0x09, 0x400, 0x4FF, 0x500, 0xDEADBEEF])
def test_unknown_and_vendor_codes_are_transient_and_unmapped(code):
    status = classify(code)
    assert (status.code, status.status_class, status.result_code) == (
        code,
        StatusClass.TRANSIENT,
        DrResultCode.UNMAPPED,
    )


def test_vendor_codes_are_named_as_such():
    assert classify(0x401).name == "vendor-specific 0x00000401"
    assert classify(0x09).name == "unknown 0x00000009"


def test_ok_is_done():
    assert next_action(0x00, 1, 3) == Action(ActionKind.DONE, DrResultCode.SUCCESS)


@pytest.mark.parametrize("attempts", [1, 3, 100])
def test_throttled_is_always_retried_with_the_throttle_hint(attempts):
    action = next_action(0x58, attempts, 3)
    assert (action.kind, action.result_code, action.countdown_hint) == (ActionKind.RETRY, 6, 1.0)


def test_transient_is_retried_up_to_the_bound_then_rejected():
    kinds = [next_action(0x08, attempts, 3).kind for attempts in (1, 2, 3, 4)]
    assert kinds == [ActionKind.RETRY, ActionKind.RETRY, ActionKind.REJECT, ActionKind.REJECT]
    assert next_action(0x08, 3, 3) == Action(ActionKind.REJECT, DrResultCode.INTERNAL_ERROR)


def test_a_bound_of_one_means_no_retry():
    assert next_action(0x45, 1, 1).kind is ActionKind.REJECT


def test_permanent_is_rejected_at_once():
    assert next_action(0x0B, 1, 10) == Action(ActionKind.REJECT, DrResultCode.REJECTED_UPSTREAM)


def test_transient_retries_back_off_and_are_capped():
    hints = [next_action(0xFF, attempts, 100).countdown_hint for attempts in range(1, 8)]
    assert hints == [10, 20, 40, 80, 160, 300, 300]
    assert transient_countdown(10_000) == TRANSIENT_MAX_COUNTDOWN_SECONDS


@pytest.mark.parametrize("code", sorted(STATUSES))
def test_every_entry_yields_a_consistent_action(code):
    action = next_action(code, 1, 2)
    expected = {
        StatusClass.OK: ActionKind.DONE,
        StatusClass.THROTTLED: ActionKind.RETRY,
        StatusClass.TRANSIENT: ActionKind.RETRY,
        StatusClass.PERMANENT: ActionKind.REJECT,
    }[STATUSES[code].status_class]
    assert action.kind is expected
    assert (action.countdown_hint is not None) == (action.kind is ActionKind.RETRY)
