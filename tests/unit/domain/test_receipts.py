"""Delivery receipt parsing, SMSC id matching and the state lattice (app.domain.receipts)."""

from datetime import datetime
from itertools import pairwise, product

import pytest

from app.domain.receipts import (
    MalformedReceipt,
    Receipt,
    ReceiptText,
    combine_segment_states,
    may_transition,
    normalize_smsc_id,
    parse_receipt,
    parse_receipt_date,
    parse_receipt_text,
    result_code_for_state,
    smsc_id_candidates,
    state_from_stat,
    state_from_tlv,
)
from app.domain.states import MessageState as S

FINAL = [S.DELIVERED, S.EXPIRED, S.DELETED, S.UNDELIVERABLE, S.REJECTED]
INTERMEDIATE_IN_ORDER = [S.ACCEPTED, S.ENROUTE, S.UNKNOWN]

STANDARD = (
    "id:0123456789 sub:001 dlvrd:001 submit date:2401311200 done date:2401311201 "
    "stat:DELIVRD err:000 text:Hello world"
)

# --- receipt text ------------------------------------------------------------------------


def test_parse_the_standard_receipt():
    """SMPP 3.4 Appendix B format."""
    assert parse_receipt_text(STANDARD) == ReceiptText(
        message_id="0123456789",
        stat="DELIVRD",
        submitted=1,
        delivered=1,
        submit_date=datetime(2024, 1, 31, 12, 0),
        done_date=datetime(2024, 1, 31, 12, 1),
        err="000",
        text="Hello world",
    )


@pytest.mark.parametrize(
    "text",
    [
        STANDARD.upper().replace("HELLO WORLD", "Hello world"),
        STANDARD.replace(" ", "   ").replace("Hello   world", "Hello world"),
        STANDARD.replace("text:", "Text:"),
        STANDARD.replace("submit date", "submit_date").replace("done date", "done_date"),
        STANDARD.replace("submit date", "SubmitDate").replace("done date", "DoneDate"),
        STANDARD.replace(":", " : ").replace("Hello world", "Hello world"),
        "stat:DELIVRD id:0123456789 err:000 done date:2401311201 sub:001 dlvrd:001 "
        "submit date:2401311200 text:Hello world",
    ],
)
def test_parse_tolerates_case_spacing_spelling_and_order(text):
    receipt = parse_receipt_text(text)
    assert (receipt.message_id, receipt.stat, receipt.err) == ("0123456789", "DELIVRD", "000")
    assert receipt.done_date == datetime(2024, 1, 31, 12, 1)
    assert receipt.text.lower() == "hello world"


def test_missing_fields_are_none():
    receipt = parse_receipt_text("id:abc stat:UNDELIV")
    assert receipt == ReceiptText(message_id="abc", stat="UNDELIV")
    assert receipt.state is S.UNDELIVERABLE


def test_text_is_everything_after_the_text_key():
    receipt = parse_receipt_text("id:1 stat:DELIVRD err:0 text:stat:REJECTD id:2 err:9")
    assert (receipt.message_id, receipt.stat) == ("1", "DELIVRD")
    assert receipt.text == "stat:REJECTD id:2 err:9"


def test_keys_inside_other_words_are_not_keys():
    receipt = parse_receipt_text("msgid:zzz id:1 substat:x stat:ACCEPTD")
    assert (receipt.message_id, receipt.stat) == ("1", "ACCEPTD")


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("2401311200", datetime(2024, 1, 31, 12, 0)),
        ("240131120059", datetime(2024, 1, 31, 12, 0, 59)),
        ("20240131120059", datetime(2024, 1, 31, 12, 0, 59)),
        ("2402301200", None),
        ("24013112", None),
        ("24-01-31", None),
        ("", None),
        (None, None),
    ],
)
def test_receipt_dates(value, parsed):
    assert parse_receipt_date(value) == parsed


def test_a_twelve_digit_date_in_a_receipt():
    receipt = parse_receipt_text(
        "id:9 submit date:240131120005 done date:240131120107 stat:EXPIRED"
    )
    assert receipt.submit_date == datetime(2024, 1, 31, 12, 0, 5)
    assert receipt.done_date == datetime(2024, 1, 31, 12, 1, 7)


@pytest.mark.parametrize(
    "text", ["", "hello there", "id:123 err:000", "stat:DELIVRD", "id: stat:DELIVRD"]
)
def test_a_text_without_id_or_stat_is_malformed(text):
    with pytest.raises(MalformedReceipt):
        parse_receipt_text(text)


# --- TLVs over text ----------------------------------------------------------------------


def test_receipt_from_text_alone():
    receipt = parse_receipt(STANDARD)
    assert receipt == Receipt(
        smsc_id="0123456789",
        state=S.DELIVERED,
        err="000",
        submit_date=datetime(2024, 1, 31, 12, 0),
        done_date=datetime(2024, 1, 31, 12, 1),
    )
    assert receipt.result_code == 0


def test_tlvs_take_precedence_over_the_text():
    receipt = parse_receipt(STANDARD, receipted_message_id="75BCD15", message_state=5)
    assert (receipt.smsc_id, receipt.state, receipt.err) == ("75BCD15", S.UNDELIVERABLE, "000")
    assert receipt.result_code == 1


@pytest.mark.parametrize("text", [None, "", "garbage"])
def test_tlvs_alone_make_a_receipt(text):
    receipt = parse_receipt(text, receipted_message_id="abc", message_state=2)
    assert (receipt.smsc_id, receipt.state) == ("abc", S.DELIVERED)


def test_a_tlv_may_fill_in_what_the_text_lacks():
    assert parse_receipt("stat:DELIVRD", receipted_message_id="7").smsc_id == "7"
    assert parse_receipt("id:7", message_state=3).state is S.EXPIRED


@pytest.mark.parametrize(
    ("text", "tlvs"),
    [
        (None, {}),
        ("garbage", {"message_state": 2}),
        ("stat:DELIVRD", {}),
        (None, {"receipted_message_id": "1"}),
    ],
)
def test_a_receipt_without_id_or_state_is_malformed(text, tlvs):
    with pytest.raises(MalformedReceipt):
        parse_receipt(text, **tlvs)


# --- states ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stat", "state"),
    [
        ("DELIVRD", 2), ("EXPIRED", 3), ("DELETED", 4), ("UNDELIV", 5), ("ACCEPTD", 6),
        ("UNKNOWN", 7), ("REJECTD", 8), ("ENROUTE", 1), ("delivrd", 2), ("Delivered", 2),
        ("UNDELIVERABLE", 5), ("REJECTED", 8), ("EN_ROUTE", 1), ("WHATEVER", 7),
    ],
)
def test_stat_words_map_to_the_seed_message_state(stat, state):
    """Seed 000, Message State table: 1 en-route ... 8 rejected."""
    assert state_from_stat(stat) == state


@pytest.mark.parametrize(
    ("value", "state"),
    [(0, 6), (1, 1), (2, 2), (3, 3), (4, 4), (5, 5), (6, 6), (7, 7), (8, 8), (9, 5), (42, 7)],
)
def test_message_state_tlv_maps_to_the_seed_message_state(value, state):
    """SMPP 3.4 5.2.28 numbers 1-8 as seed 000 does; 0 and 9 are SMPP 5.0 additions."""
    assert state_from_tlv(value) == state


@pytest.mark.parametrize(
    ("state", "result_code"),
    [(S.DELIVERED, 0), (S.ENROUTE, 0), (S.ACCEPTED, 0), (S.UNKNOWN, 0), (S.UNDELIVERABLE, 1),
     (S.REJECTED, 1), (S.EXPIRED, 1), (S.DELETED, 99)],
)
def test_result_code_for_state(state, result_code):
    """Seed 000, Result Code table: 0 success, 1 rejected upstream, 99 unmapped."""
    assert result_code_for_state(state) == result_code


def test_states_move_forward_through_the_intermediates():
    for lower, higher in pairwise(INTERMEDIATE_IN_ORDER):
        assert may_transition(lower, higher)
        assert not may_transition(higher, lower)


@pytest.mark.parametrize(("current", "new"), list(product(FINAL, list(S))))
def test_final_states_are_terminal(current, new):
    assert not may_transition(current, new)


@pytest.mark.parametrize(("current", "new"), list(product(INTERMEDIATE_IN_ORDER, FINAL)))
def test_every_intermediate_state_may_become_final(current, new):
    assert may_transition(current, new)


@pytest.mark.parametrize("state", list(S))
def test_repeating_a_state_is_not_a_transition_and_anything_may_be_first(state):
    assert not may_transition(state, state)
    assert may_transition(None, state)


def test_a_late_enroute_never_overwrites_unknown_or_delivered():
    assert not may_transition(S.UNKNOWN, S.ENROUTE)
    assert not may_transition(S.DELIVERED, S.ENROUTE)


@pytest.mark.parametrize(
    ("states", "combined"),
    [
        ([S.DELIVERED], S.DELIVERED),
        ([S.DELIVERED, S.DELIVERED, S.DELIVERED], S.DELIVERED),
        ([S.DELIVERED, S.ENROUTE], S.ENROUTE),
        ([S.UNKNOWN, S.DELIVERED, S.ACCEPTED, S.ENROUTE], S.ACCEPTED),
        ([S.DELIVERED, S.UNKNOWN], S.UNKNOWN),
        ([S.DELIVERED, S.EXPIRED, S.REJECTED], S.EXPIRED),
        ([S.ENROUTE, S.UNDELIVERABLE], S.UNDELIVERABLE),
        ([S.REJECTED, S.DELIVERED], S.REJECTED),
    ],
)
def test_combine_segment_states(states, combined):
    assert combine_segment_states(states) is combined


def test_combining_no_states_is_an_error():
    with pytest.raises(ValueError):
        combine_segment_states([])


@pytest.mark.parametrize("states", list(product(list(S), repeat=3)))
def test_a_combined_state_is_one_of_its_parts_and_never_runs_ahead(states):
    """Final only when a part failed or all were delivered; otherwise the least advanced."""
    combined = combine_segment_states(states)
    failed = [s for s in states if s.is_final and s is not S.DELIVERED]
    assert combined in states
    assert combined.is_final == (bool(failed) or all(s is S.DELIVERED for s in states))
    if not combined.is_final:
        assert not any(may_transition(s, combined) for s in states)


# --- SMSC ids ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [("0001A2B", "1a2b"), (" 1A2B ", "1a2b"), ("000", "0"), ("00123", "123"),
     ("Msg-0001", "msg-0001"), ("abc-DEF", "abc-def")],
)
def test_normalize_smsc_id(raw, canonical):
    assert normalize_smsc_id(raw) == canonical


def test_an_empty_smsc_id_is_an_error():
    with pytest.raises(ValueError):
        normalize_smsc_id("  ")


@pytest.mark.parametrize(
    ("raw", "candidates"),
    [
        ("1A2B", ("1a2b", "6699")),
        ("00006699", ("6699", "26265", "1a2b")),
        ("10", ("10", "16", "a")),
        ("0", ("0",)),
        ("msg-1", ("msg-1",)),
    ],
)
def test_smsc_id_candidates(raw, candidates):
    assert smsc_id_candidates(raw) == candidates


@pytest.mark.parametrize(
    ("submit_resp_id", "receipt_id"),
    [
        ("1A2B", "6699"),
        ("6699", "1A2B"),
        ("0000001a2b", "6699"),
        ("0123456789", "123456789"),
        ("75bcd15", "0123456789"),
        ("A1B2C3", "00A1B2C3"),
    ],
)
def test_a_receipt_id_in_another_base_or_padding_finds_the_stored_id(submit_resp_id, receipt_id):
    """Ids are stored under normalize_smsc_id and looked up under every candidate."""
    stored = {normalize_smsc_id(submit_resp_id): "our-message"}
    hits = [stored[key] for key in smsc_id_candidates(receipt_id) if key in stored]
    assert hits[:1] == ["our-message"]


def test_fields_we_do_not_know_are_ignored():
    receipt = parse_receipt_text(
        "id:42 sub:001 dlvrd:001 submit date:2401311200 done date:2401311201 "
        "stat:DELIVRD err:000 mccmnc:23410 imsi:234101234567890 text:x"
    )
    assert (receipt.message_id, receipt.err, receipt.text) == ("42", "000", "x")
