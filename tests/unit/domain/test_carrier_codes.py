"""The DR result_code of refused submits and failure receipts, default and per carrier.

The codes are seed 000's "Result Code" table (Receiving a Delivery Receipt): 1 rejected by
the upstream provider, 3 carrier invalid, 4 alphanumeric not permitted, 5 shortcode not
allowed, 6 throttle, 7 duplicate, 8 body too long, 98 internal service error, 99 unmapped.
"""

import pytest

from app.domain.carrier_codes import DEFAULT_TABLE, InvalidCodeTable, ResultCodeTable, normalize_err
from app.domain.receipts import parse_receipt
from app.domain.states import MessageState

S = MessageState


@pytest.mark.parametrize("status, code", [
    (0x0B, 1),    # ESME_RINVDSTADR: check the number (seed: "rejected by the upstream provider")
    (0x50, 1),    # ESME_RINVDSTTON
    (0x45, 1),    # ESME_RSUBMITFAIL
    (0x48, 4),    # ESME_RINVSRCTON: an alphanumeric sender the carrier refuses
    (0x0A, 5),    # ESME_RINVSRCADR: "the shortcode is not allowed for this carrier"
    (0x49, 5),    # ESME_RINVSRCNPI
    (0x58, 6),    # ESME_RTHROTTLED
    (0x14, 6),    # ESME_RMSGQFUL
    (0x01, 8),    # ESME_RINVMSGLEN: "the message body is too long"
    (0x08, 98),   # ESME_RSYSERR
    (0x0C, 99),   # ESME_RINVMSGID: not a submit's status at all
    (0x401, 99),  # vendor-specific
    (0xDEAD, 99),  # unknown
])
def test_default_command_status_table(status, code):
    assert DEFAULT_TABLE.for_command_status(status) == code


@pytest.mark.parametrize("text, code", [
    ("id:1 sub:001 dlvrd:001 submit date:2612011200 done date:2612011201 stat:DELIVRD err:000 text:hi", 0),
    ("id:1 stat:ACCEPTD err:000", 0),
    ("id:1 stat:ENROUTE err:000", 0),
    ("id:1 stat:UNKNOWN err:999", 0),
    ("id:1 stat:UNDELIV err:001", 1),   # a plain numeric err is carrier-specific: the stat decides
    ("id:1 stat:REJECTD err:027", 1),
    ("id:1 stat:EXPIRED err:000", 1),
    ("id:1 stat:DELETED err:000", 99),
    ("id:1 stat:UNDELIV", 1),           # no err at all
    ("id:1 stat:UNDELIV err:", 1),      # an empty one
    ("id:1 stat:REJECTD err:%$#", 1),   # garbage
    ("id:1 stat:REJECTD err:0x00000058", 6),        # an explicit command_status: ESME_RTHROTTLED
    ("id:1 stat:REJECTD err:0x0b", 1),              # ESME_RINVDSTADR
    ("id:1 stat:UNDELIV err:0x00000048", 4),        # ESME_RINVSRCTON
    ("id:1 stat:REJECTD err:ESME_RINVSRCADR", 5),
    ("id:1 stat:REJECTD err:esme_rinvmsglen", 8),
    ("id:1 stat:REJECTD err:0x00000000", 1),        # ESME_ROK is no reason: the stat decides
    ("id:1 stat:REJECTD err:0xZZ", 1),
    ("id:1 stat:DELIVRD err:0x00000058", 0),        # delivered is delivered
])
def test_default_receipt_table(text, code):
    receipt = parse_receipt(text)
    assert DEFAULT_TABLE.for_receipt(receipt.state, receipt.err) == code


CARRIER = ResultCodeTable.parse({
    "command_status": {"0x0B": 3, "ESME_RINVSRCADR": 4, "1025": 6},
    "receipt": {"UNDELIV:001": 3, "REJECTD:*": 5, "*:088": 6, "EXPIRED": 98, "UNDELIVERABLE:0x45": 8},
})


@pytest.mark.parametrize("status, code", [
    (0x0B, 3), (0x0A, 4), (1025, 6),
    (0x58, 6), (0x01, 8), (0x400, 99),  # not overridden: the default table
])
def test_carrier_command_status_overrides(status, code):
    assert CARRIER.for_command_status(status) == code


@pytest.mark.parametrize("state, err, code", [
    (S.UNDELIVERABLE, "001", 3),   # (stat, err)
    (S.UNDELIVERABLE, "1", 3),     # leading zeros do not matter
    (S.UNDELIVERABLE, " 0001 ", 3),
    (S.UNDELIVERABLE, "088", 6),   # (any stat, err)
    (S.REJECTED, "088", 6),        # (any stat, err) before (stat, any)
    (S.REJECTED, "777", 5),        # (stat, any)
    (S.REJECTED, None, 5),
    (S.EXPIRED, "0x58", 98),       # (stat, any) before an explicit command_status
    (S.UNDELIVERABLE, "0x45", 8),  # a rule may name an explicit err too
    (S.UNDELIVERABLE, "0x0B", 3),  # explicit command_status, through the carrier's own statuses
    (S.UNDELIVERABLE, "002", 1),   # unknown err: the stat default
    (S.DELETED, "001", 99),
    (S.DELIVERED, "088", 0),       # no table changes a success
])
def test_carrier_receipt_overrides(state, err, code):
    assert CARRIER.for_receipt(state, err) == code


def test_normalize_err():
    assert [normalize_err(e) for e in ("000", "0", "", None, " 01A ", "0x0b", "٣")] == \
        ["0", "0", "", "", "01A", "0X0B", "٣"]


@pytest.mark.parametrize("raw, complaint", [
    ([], "an object"),
    ({"statuses": {}}, "an object"),
    ({"receipt": []}, '"receipt" must be an object'),
    ({"command_status": {"0x0B": 0}}, "not a failure result code"),      # 0 is success
    ({"command_status": {"0x0B": 42}}, "not a failure result code"),
    ({"command_status": {"0x0B": "3"}}, "not a failure result code"),
    ({"command_status": {"0x0B": True}}, "not a failure result code"),
    ({"command_status": {"ESME_RNOPE": 3}}, "use 0x hex"),
    ({"command_status": {"0xZZ": 3}}, "use 0x hex"),
    ({"receipt": {"DELIVRD:000": 1}}, "the stat must be a failure"),
    ({"receipt": {"NOPE": 1}}, "the stat must be a failure"),
    ({"receipt": {"*:*": 1}}, "would hide every stat"),
    ({"receipt": {"*": 1}}, "would hide every stat"),
])
def test_bad_tables_are_refused_with_where(raw, complaint):
    with pytest.raises(InvalidCodeTable, match=complaint):
        ResultCodeTable.parse(raw)


def test_no_table_is_the_default():
    assert ResultCodeTable.parse(None) is DEFAULT_TABLE
    assert ResultCodeTable.parse({}) == DEFAULT_TABLE
