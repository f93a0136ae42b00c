"""The SMPP 3.4 codec: round trips, wire layout, TLVs, framing and garbage."""

import pytest

from app.smpp.pdu import (
    MAX_COMMAND_LENGTH,
    BindTransceiver,
    BindTransceiverResp,
    BindTransmitter,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EnquireLinkResp,
    FramingError,
    GenericNack,
    MessageState,
    PduDecodeError,
    PduFramer,
    SubmitSm,
    SubmitSmResp,
    Tag,
    Unbind,
    UnbindResp,
    decode,
    encode,
)

SUBMIT = SubmitSm(
    sequence_number=7,
    source_addr="12345",
    dest_addr_ton=1,
    dest_addr_npi=1,
    destination_addr="33612345678",
    registered_delivery=1,
    short_message=b"Hello",
    tlvs={Tag.USER_MESSAGE_REFERENCE: 42},
)

EVERY_PDU = [
    BindTransmitter(sequence_number=1, system_id="smsagg", password="secret", system_type="VMA"),
    BindTransceiver(sequence_number=2, system_id="x", address_range="^336"),
    BindTransceiverResp(sequence_number=2, system_id="SMSC", tlvs={Tag.SC_INTERFACE_VERSION: 0x34}),
    Unbind(sequence_number=3),
    UnbindResp(sequence_number=3),
    EnquireLink(sequence_number=0x7FFFFFFF),
    EnquireLinkResp(sequence_number=0x7FFFFFFF),
    SUBMIT,
    SubmitSmResp(sequence_number=7, message_id="a1b2c3d4"),
    DeliverSm(
        sequence_number=9,
        esm_class=0x04,
        short_message=b"id:a1 sub:001 dlvrd:001",
        tlvs={Tag.RECEIPTED_MESSAGE_ID: "a1", Tag.MESSAGE_STATE: MessageState.DELIVERED},
    ),
    DeliverSmResp(sequence_number=9),
    GenericNack(sequence_number=11, command_status=CommandStatus.ESME_RINVCMDID),
]


@pytest.mark.parametrize("pdu", EVERY_PDU, ids=lambda pdu: type(pdu).__name__)
def test_every_pdu_survives_a_round_trip(pdu):
    assert decode(encode(pdu)) == pdu


def test_submit_sm_wire_layout_matches_the_spec():
    expected = bytes.fromhex(
        "0000003c" "00000004" "00000000" "00000007"  # header
        "00" "00" "00" "313233343500"  # service_type, source ton/npi, source_addr
        "01" "01" "333336313233343536373800"  # dest ton/npi, destination_addr
        "00" "00" "00" "00" "00"  # esm_class, protocol_id, priority, schedule, validity
        "01" "00" "00" "00"  # registered_delivery, replace, data_coding, default msg id
        "05" "48656c6c6f"  # sm_length, short_message
        "0204" "0002" "002a"  # user_message_reference TLV
    )
    assert encode(SUBMIT) == expected


def test_sar_and_payload_tlvs_are_typed():
    payload = "é".encode("utf-16-be") * 200
    pdu = SubmitSm(
        tlvs={
            Tag.SAR_MSG_REF_NUM: 0x1234,
            Tag.SAR_TOTAL_SEGMENTS: 3,
            Tag.SAR_SEGMENT_SEQNUM: 2,
            Tag.MESSAGE_PAYLOAD: payload,
        }
    )
    tlvs = decode(encode(pdu)).tlvs
    assert tlvs == {
        Tag.SAR_MSG_REF_NUM: 0x1234,
        Tag.SAR_TOTAL_SEGMENTS: 3,
        Tag.SAR_SEGMENT_SEQNUM: 2,
        Tag.MESSAGE_PAYLOAD: payload,
    }


def test_unknown_tlv_is_kept_as_raw_octets():
    network_error_code = 0x0423
    pdu = DeliverSm(tlvs={network_error_code: b"\x03\x00\x01"})
    assert decode(encode(pdu)).tlvs == {network_error_code: b"\x03\x00\x01"}


def test_receipted_message_id_without_terminator_is_accepted():
    frame = bytearray(encode(DeliverSm()))
    frame += bytes.fromhex("001e" "0004") + b"abcd"
    frame[0:4] = len(frame).to_bytes(4, "big")
    assert decode(bytes(frame)).tlvs == {Tag.RECEIPTED_MESSAGE_ID: "abcd"}


def test_error_response_has_no_body_and_decodes_with_defaults():
    frame = encode(SubmitSmResp(sequence_number=5, command_status=CommandStatus.ESME_RTHROTTLED, message_id="x"))
    assert len(frame) == 16
    assert decode(frame) == SubmitSmResp(sequence_number=5, command_status=CommandStatus.ESME_RTHROTTLED)


def test_response_builds_the_matching_resp_with_the_same_sequence():
    resp = SUBMIT.response(message_id="ff")
    assert resp == SubmitSmResp(sequence_number=7, message_id="ff")


@pytest.mark.parametrize(
    "pdu, field_name",
    [
        (BindTransmitter(system_id="x" * 16), "system_id"),
        (SubmitSm(short_message=b"x" * 255), "short_message"),
        (SubmitSm(esm_class=256), "esm_class"),
        (SubmitSm(tlvs={Tag.SAR_TOTAL_SEGMENTS: 300}), "0x020e"),
    ],
)
def test_encode_names_the_field_that_does_not_fit(pdu, field_name):
    with pytest.raises(ValueError, match=field_name):
        encode(pdu)


def test_unknown_command_id_says_to_answer_rinvcmdid():
    frame = bytes.fromhex("00000010" "00000103" "00000000" "0000002a")  # submit_multi
    with pytest.raises(PduDecodeError) as caught:
        decode(frame)
    assert (caught.value.status, caught.value.sequence_number) == (CommandStatus.ESME_RINVCMDID, 42)


@pytest.mark.parametrize(
    "mangle, status",
    [
        (lambda frame: frame[:-3], CommandStatus.ESME_RINVCMDLEN),  # length field disagrees
        (lambda frame: _with_length(frame[:20]), CommandStatus.ESME_RINVCMDLEN),  # body cut short
        (lambda frame: _with_length(frame + b"\x02\x04\x00"), CommandStatus.ESME_RINVOPTPARSTREAM),
        (lambda frame: _with_length(frame + b"\x02\x04\x00\x09\x00"), CommandStatus.ESME_RINVOPTPARSTREAM),
        (lambda frame: _with_length(frame + b"\x02\x0e\x00\x02\x00\x01"), CommandStatus.ESME_RINVPARLEN),
    ],
)
def test_malformed_frames_raise_with_the_status_to_answer(mangle, status):
    with pytest.raises(PduDecodeError) as caught:
        decode(mangle(encode(SubmitSm(sequence_number=3))))
    assert caught.value.status == status
    assert caught.value.sequence_number == 3


def test_unterminated_c_octet_string_is_malformed():
    frame = _with_length(encode(BindTransmitter())[:16] + b"x" * 40)
    with pytest.raises(PduDecodeError, match="not terminated"):
        decode(frame)


def _with_length(frame: bytes) -> bytes:
    return len(frame).to_bytes(4, "big") + frame[4:]


def test_framer_reassembles_one_octet_at_a_time():
    framer = PduFramer()
    stream = encode(SUBMIT) + encode(EnquireLink(sequence_number=8))
    frames = [frame for octet in stream for frame in framer.feed(bytes([octet]))]
    assert [decode(frame) for frame in frames] == [SUBMIT, EnquireLink(sequence_number=8)]


def test_framer_splits_several_pdus_in_one_read_and_keeps_the_tail():
    framer = PduFramer()
    link = encode(EnquireLink(sequence_number=1))
    assert framer.feed(link * 3 + link[:5]) == [link] * 3
    assert framer.feed(link[5:]) == [link]


@pytest.mark.parametrize(
    "garbage",
    [b"GET / HTTP/1.1\r\n", b"\x00\x00\x00\x08", (MAX_COMMAND_LENGTH + 1).to_bytes(4, "big")],
)
def test_framer_rejects_an_implausible_command_length_at_once(garbage):
    with pytest.raises(FramingError, match="command_length"):
        PduFramer().feed(garbage)
