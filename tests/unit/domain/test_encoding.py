"""Encoding choice, part counting, segmentation and inbound decoding (app.domain.encoding)."""

import pytest

from app.domain.encoding import (
    GSM_EXTENSION,
    SMART_REPLACEMENTS,
    UDHI,
    Alphabet,
    ConcatMode,
    Encoding,
    InboundPart,
    MalformedUdh,
    UnencodableText,
    UnsupportedDataCoding,
    alphabet_for,
    count_parts,
    decode_short_message,
    is_gsm7,
    pack_septets,
    parse_udh,
    plan_encoding,
    reassemble,
    segment_message,
    udh_fill_bits,
    unpack_septets,
)

EMOJI = "\U0001f600"
EXTENSION_CHARS = "^{}\\[~]|€\f"


def texts_of(segments, encoding=Encoding.GSM7):
    """Decode what each segment carries, UDH removed, back to text."""
    data_coding = {Encoding.GSM7: 0, Encoding.UCS2: 8, Encoding.LATIN1: 3}[encoding]
    return [
        decode_short_message(s.short_message, data_coding, udhi=bool(s.esm_class & UDHI)).text
        for s in segments
    ]


# --- choosing the encoding ---------------------------------------------------------------


def test_the_extension_table_is_the_one_the_brief_names():
    assert set(GSM_EXTENSION) == set(EXTENSION_CHARS)


@pytest.mark.parametrize(
    ("text", "encoding", "units"),
    [
        ("@£$¥èéùìòÇØøÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ¤¡ÄÖÑÜ§¿äöñüà", Encoding.GSM7, 42),
        ("price 5€", Encoding.GSM7, 9),
        (EXTENSION_CHARS, Encoding.GSM7, 20),
        ("naïve", Encoding.UCS2, 5),
        ("hi " + EMOJI, Encoding.UCS2, 5),
        ("日本語", Encoding.UCS2, 3),
        ("", Encoding.GSM7, 0),
    ],
)
def test_encoding_and_units(text, encoding, units):
    plan = plan_encoding(text)
    assert (plan.encoding, plan.units, plan.text) == (encoding, units, text)


def test_escape_character_itself_is_not_gsm7():
    """gsm0338 encodes U+001B as a bare escape byte; sent, it would swallow the next char."""
    assert not is_gsm7("a\x1bb")
    assert plan_encoding("a\x1bb").encoding is Encoding.UCS2


@pytest.mark.parametrize(
    ("encoding", "flash", "data_coding"),
    [
        (Encoding.GSM7, False, 0x00),
        (Encoding.GSM7, True, 0x10),
        (Encoding.UCS2, False, 0x08),
        (Encoding.UCS2, True, 0x18),
        (Encoding.LATIN1, False, 0x03),
        (Encoding.LATIN1, True, 0x03),
    ],
)
def test_data_coding_per_encoding_and_class(encoding, flash, data_coding):
    """Seed 001 types 0/1 (GSM), 2/6 (Unicode), 5/7 (ISO-8859-1): plain and flash."""
    plan = plan_encoding("abc", requested=encoding, flash=flash)
    assert (plan.encoding, plan.data_coding, plan.flash) == (encoding, data_coding, flash)


def test_latin1_flash_asks_for_display_with_dest_addr_subunit():
    plan = plan_encoding("café", requested=Encoding.LATIN1, flash=True)
    [segment] = segment_message(plan)
    assert segment.data_coding == 0x03
    assert segment.tlvs == {"dest_addr_subunit": 0x01}
    assert segment.short_message == "café".encode("latin-1")


def test_gsm_and_ucs2_flash_need_no_tlv():
    for requested in (Encoding.GSM7, Encoding.UCS2):
        [segment] = segment_message(plan_encoding("hi", requested=requested, flash=True))
        assert segment.tlvs == {}


def test_latin1_is_only_used_when_asked_for():
    assert plan_encoding("naïve").encoding is Encoding.UCS2
    assert plan_encoding("naïve", requested=Encoding.LATIN1).encoding is Encoding.LATIN1


@pytest.mark.parametrize(
    ("text", "requested"),
    [("Ω Δ", Encoding.LATIN1), ("naïve", Encoding.GSM7), (EMOJI, Encoding.LATIN1),
     ("\ud800", Encoding.UCS2), ("\ud800", None)],
)
def test_a_requested_encoding_the_text_cannot_use_is_refused(text, requested):
    with pytest.raises(UnencodableText):
        plan_encoding(text, requested=requested)


def test_gsm_text_may_be_sent_as_ucs2_when_asked():
    plan = plan_encoding("hello", requested=Encoding.UCS2)
    assert (plan.encoding, plan.units) == (Encoding.UCS2, 5)


# --- smart encoding ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "sent"),
    [
        ("It\u2019s \u201cfine\u201d", "It's \"fine\""),
        ("\u201eGut\u201c \u2013 ja \u2014 nein\u2026", "\"Gut\" - ja - nein..."),
        ("10\u00a0kg \u2022 item", "10 kg - item"),
        ("soft\u00adhyphen zero\u200bwidth", "softhyphen zerowidth"),
        ("\u2018quoted\u2019 and `tick`", "'quoted' and 'tick'"),
    ],
)
def test_smart_encoding_turns_typography_into_gsm7(text, sent):
    plan = plan_encoding(text, smart=True)
    assert (plan.encoding, plan.text) == (Encoding.GSM7, sent)


def test_smart_encoding_is_opt_in():
    assert plan_encoding("It\u2019s").encoding is Encoding.UCS2


def test_smart_encoding_is_not_applied_when_the_result_is_still_not_gsm7():
    text = "\u201cnaïve\u201d"
    plan = plan_encoding(text, smart=True)
    assert (plan.encoding, plan.text) == (Encoding.UCS2, text)


def test_smart_encoding_lets_a_requested_gsm7_succeed():
    assert plan_encoding("\u201cx\u201d", requested=Encoding.GSM7, smart=True).text == '"x"'


def test_every_smart_replacement_is_gsm7():
    assert all(is_gsm7(replacement) for replacement in SMART_REPLACEMENTS.values())
    assert not any(is_gsm7(char) for char in SMART_REPLACEMENTS)


def test_smart_extension_replacement_still_costs_two_septets():
    plan = plan_encoding("a\u02dcb", smart=True)
    assert (plan.text, plan.units) == ("a~b", 4)


# --- counting parts ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "encoding", "parts"),
    [
        ("a" * 160, Encoding.GSM7, 1),
        ("a" * 161, Encoding.GSM7, 2),
        ("a" * 306, Encoding.GSM7, 2),
        ("a" * 307, Encoding.GSM7, 3),
        ("€" * 80, Encoding.GSM7, 1),
        ("€" * 81, Encoding.GSM7, 2),
        ("a" * 159 + "€", Encoding.GSM7, 2),
        ("a" * 70, Encoding.UCS2, 1),
        ("a" * 71, Encoding.UCS2, 2),
        ("a" * 134, Encoding.UCS2, 2),
        ("a" * 135, Encoding.UCS2, 3),
        (EMOJI * 35, Encoding.UCS2, 1),
        (EMOJI * 36, Encoding.UCS2, 2),
        ("a" * 140, Encoding.LATIN1, 1),
        ("a" * 141, Encoding.LATIN1, 2),
        ("a" * 268, Encoding.LATIN1, 2),
        ("a" * 269, Encoding.LATIN1, 3),
        ("", Encoding.GSM7, 1),
    ],
)
def test_count_parts_follows_gsm_rules(text, encoding, parts):
    """Seed 001, `message`: 153 per part for plain text; its '268 for Unicode' is 67 chars."""
    assert count_parts(text, encoding) == parts
    assert plan_encoding(text, requested=encoding).segments == parts


def test_an_extension_char_that_would_straddle_a_part_moves_to_the_next_part():
    """152 septets + '€' (2) would be 154: the part holds 152 and the euro starts part two."""
    text = "a" * 152 + "€" + "b" * 153
    assert count_parts(text, Encoding.GSM7) == 3
    segments = segment_message(plan_encoding(text))
    assert texts_of(segments) == ["a" * 152, "€" + "b" * 151, "bb"]
    assert [len(s.short_message) - 6 for s in segments] == [152, 153, 2]


def test_a_surrogate_pair_that_would_straddle_a_part_moves_to_the_next_part():
    text = "a" * 66 + EMOJI + "b" * 10
    segments = segment_message(plan_encoding(text))
    assert texts_of(segments, Encoding.UCS2) == ["a" * 66, EMOJI + "b" * 10]
    assert len(segments[0].short_message) == 6 + 66 * 2


def test_count_parts_refuses_text_outside_the_encoding():
    with pytest.raises(UnencodableText):
        count_parts("Ω", Encoding.LATIN1)


# --- segmentation --------------------------------------------------------------------------


@pytest.mark.parametrize("mode", list(ConcatMode))
def test_a_single_part_message_is_one_plain_segment_in_every_mode(mode):
    [segment] = segment_message(plan_encoding("a" * 160), concat_mode=mode, ref=9)
    assert (segment.short_message, segment.esm_class, segment.tlvs) == (b"a" * 160, 0, {})
    assert (segment.seq, segment.total) == (1, 1)


def test_udh_segments_carry_the_six_byte_header_and_udhi():
    segments = segment_message(plan_encoding("a" * 200), concat_mode="udh", ref=0x1FF)
    assert [s.short_message[:6] for s in segments] == [
        bytes([5, 0, 3, 0xFF, 2, 1]),
        bytes([5, 0, 3, 0xFF, 2, 2]),
    ]
    assert all(s.esm_class == UDHI and s.tlvs == {} for s in segments)
    assert [(s.seq, s.total) for s in segments] == [(1, 2), (2, 2)]
    assert "".join(texts_of(segments)) == "a" * 200


def test_sar_segments_carry_the_tlvs_and_no_header():
    segments = segment_message(plan_encoding("ж" * 100), concat_mode=ConcatMode.SAR, ref=70000)
    assert [s.tlvs for s in segments] == [
        {"sar_msg_ref_num": 70000 % 65536, "sar_total_segments": 2, "sar_segment_seqnum": 1},
        {"sar_msg_ref_num": 70000 % 65536, "sar_total_segments": 2, "sar_segment_seqnum": 2},
    ]
    assert all(s.esm_class == 0 and s.data_coding == 8 for s in segments)
    assert b"".join(s.short_message for s in segments) == ("ж" * 100).encode("utf-16-be")


def test_payload_mode_sends_the_whole_text_in_message_payload():
    text = "x€" * 100
    [segment] = segment_message(plan_encoding(text), concat_mode="payload")
    assert segment.short_message == b""
    assert segment.tlvs == {"message_payload": text.encode("gsm03.38")}
    assert (segment.esm_class, segment.total) == (0, 1)


def test_payload_mode_keeps_the_latin1_flash_tlv():
    plan = plan_encoding("é" * 200, requested=Encoding.LATIN1, flash=True)
    [segment] = segment_message(plan, concat_mode="payload")
    assert segment.tlvs["dest_addr_subunit"] == 0x01
    assert segment.tlvs["message_payload"] == ("é" * 200).encode("latin-1")


def test_latin1_flash_tlv_is_on_every_part():
    plan = plan_encoding("é" * 200, requested=Encoding.LATIN1, flash=True)
    segments = segment_message(plan, concat_mode="sar")
    assert [s.tlvs["dest_addr_subunit"] for s in segments] == [0x01, 0x01]
    assert [len(s.short_message) for s in segments] == [134, 66]


def test_unknown_concat_mode_and_negative_ref_are_refused():
    plan = plan_encoding("a" * 200)
    with pytest.raises(ValueError):
        segment_message(plan, concat_mode="smoke-signals")
    with pytest.raises(ValueError):
        segment_message(plan, ref=-1)


@pytest.mark.parametrize("length", [1, 159, 160, 161, 305, 306, 307, 459, 460, 1000])
@pytest.mark.parametrize("filler", ["a", "€", "a€"])
def test_every_gsm_part_fits_and_the_parts_rebuild_the_text(length, filler):
    text = (filler * length)[:length]
    segments = segment_message(plan_encoding(text), concat_mode="udh")
    for segment in segments:
        limit = 160 if segment.total == 1 else 6 + 153
        assert len(segment.short_message) <= limit
        assert not segment.short_message.endswith(b"\x1b")
    assert "".join(texts_of(segments)) == text


@pytest.mark.parametrize("length", [1, 69, 70, 71, 133, 134, 135, 500])
@pytest.mark.parametrize("filler", ["ж", EMOJI, "ж" + EMOJI])
def test_every_ucs2_part_fits_and_never_splits_a_surrogate_pair(length, filler):
    text = (filler * length)[:length]
    segments = segment_message(plan_encoding(text), concat_mode="udh")
    for segment in segments:
        user_data = segment.short_message[6:] if segment.total > 1 else segment.short_message
        assert len(user_data) <= (140 if segment.total == 1 else 134)
        user_data.decode("utf-16-be")  # strict: a cut surrogate pair would raise
    assert "".join(texts_of(segments, Encoding.UCS2)) == text


# --- GSM-7 packing -------------------------------------------------------------------------


def test_packing_matches_the_23038_example():
    """'hellohello' packs to E8 32 9B FD 46 97 D9 EC 37 (3GPP TS 23.038 example)."""
    assert pack_septets("hellohello".encode("gsm03.38")) == bytes.fromhex("E8329BFD4697D9EC37")


def test_seven_spare_bits_are_padded_with_carriage_return_not_at_sign():
    packed = pack_septets(b"\x61" * 7)
    assert len(packed) == 7 and packed[-1] >> 1 == 0x0D
    assert unpack_septets(packed) == b"\x61" * 7


def test_udh_fill_bits():
    assert udh_fill_bits(6) == 1
    assert udh_fill_bits(7) == 0
    assert udh_fill_bits(0) == 0


@pytest.mark.parametrize("length", [1, 7, 8, 152, 153, 160, 161, 400])
def test_packed_segments_fit_140_octets_and_round_trip(length):
    text = ("abc€" * length)[:length]
    segments = segment_message(plan_encoding(text), packed=True)
    assert all(len(s.short_message) <= 140 for s in segments)
    decoded = [
        decode_short_message(s.short_message, 0, udhi=bool(s.esm_class & UDHI), packed=True).text
        for s in segments
    ]
    assert "".join(decoded) == text


def test_packed_udh_part_starts_with_one_fill_bit():
    [first, _] = segment_message(plan_encoding("a" * 161), packed=True)
    assert first.short_message[6] == (0x61 << 1) & 0xFF
    assert len(first.short_message) == 140


def test_only_gsm7_can_be_packed():
    with pytest.raises(ValueError):
        segment_message(plan_encoding("ж"), packed=True)


# --- inbound decoding ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data_coding", "alphabet"),
    [
        (0x00, Alphabet.GSM7), (0x01, Alphabet.ASCII), (0x02, Alphabet.BINARY),
        (0x03, Alphabet.LATIN1), (0x04, Alphabet.BINARY), (0x08, Alphabet.UCS2),
        (0x10, Alphabet.GSM7), (0x11, Alphabet.GSM7), (0x14, Alphabet.BINARY),
        (0x18, Alphabet.UCS2), (0x48, Alphabet.UCS2), (0xC0, Alphabet.GSM7),
        (0xD8, Alphabet.GSM7), (0xE8, Alphabet.UCS2), (0xF0, Alphabet.GSM7),
        (0xF1, Alphabet.GSM7), (0xF4, Alphabet.BINARY), (0xF6, Alphabet.BINARY),
    ],
)
def test_alphabet_for_data_coding(data_coding, alphabet):
    assert alphabet_for(data_coding) is alphabet


@pytest.mark.parametrize("data_coding", [0x05, 0x06, 0x0E, 0x1C, 0x20, 0x30, 0x80, 0xB0])
def test_unsupported_data_codings_are_refused(data_coding):
    with pytest.raises(UnsupportedDataCoding):
        alphabet_for(data_coding)


@pytest.mark.parametrize(
    ("short_message", "data_coding", "text"),
    [
        (b"\x00\x01 x\x1be\x1b<", 0, "@£ x€["),
        (b"\x1bA", 0, "A"),  # unknown escape: default-alphabet fallback (TS 23.038)
        (b"\x1b\x1bz", 0, " z"),
        (b"@ $", 1, "@ $"),
        ("café".encode("latin-1"), 3, "café"),
        (("hi " + EMOJI).encode("utf-16-be"), 8, "hi " + EMOJI),
        (b"\x00\xff", 4, None),
    ],
)
def test_decode_short_message(short_message, data_coding, text):
    assert decode_short_message(short_message, data_coding).text == text


def test_parse_udh_8bit_reference():
    assert parse_udh(bytes([5, 0, 3, 0xAB, 3, 2]) + b"xyz") == (0xAB, 3, 2, b"xyz")


def test_parse_udh_16bit_reference():
    assert parse_udh(bytes([6, 8, 4, 0x12, 0x34, 2, 1]) + b"xy") == (0x1234, 2, 1, b"xy")


def test_parse_udh_skips_other_elements():
    port_addressing = bytes([0x05, 4, 0x0B, 0x84, 0x23, 0xF0])
    header = port_addressing + bytes([0, 3, 7, 2, 2])
    assert parse_udh(bytes([len(header)]) + header + b"p") == (7, 2, 2, b"p")


def test_parse_udh_without_concatenation():
    assert parse_udh(bytes([4, 0x05, 2, 0x0B, 0x84]) + b"p") == (None, 1, 1, b"p")


@pytest.mark.parametrize("bad_concat", [bytes([0, 3, 7, 0, 1]), bytes([0, 3, 7, 2, 3])])
def test_parse_udh_ignores_an_impossible_concatenation_element(bad_concat):
    assert parse_udh(bytes([5]) + bad_concat + b"p") == (None, 1, 1, b"p")


@pytest.mark.parametrize("data", [b"", bytes([5, 0, 3]), bytes([3, 0, 3, 1])])
def test_parse_udh_refuses_a_truncated_header(data):
    with pytest.raises(MalformedUdh):
        parse_udh(data)


def test_reassembly_decodes_a_surrogate_pair_split_by_the_sender():
    raw = ("ab" + EMOJI).encode("utf-16-be")
    parts = [
        decode_short_message(bytes([5, 0, 3, 1, 2, 2]) + raw[6:], 8, udhi=True),
        decode_short_message(bytes([5, 0, 3, 1, 2, 1]) + raw[:6], 8, udhi=True),
    ]
    assert reassemble(parts).text == "ab" + EMOJI


def test_reassembly_decodes_an_escape_split_by_the_sender():
    parts = [
        decode_short_message(bytes([5, 0, 3, 4, 2, 1]) + b"ab\x1b", 0, udhi=True),
        decode_short_message(bytes([5, 0, 3, 4, 2, 2]) + b"e", 0, udhi=True),
    ]
    assert reassemble(parts).text == "ab€"


@pytest.mark.parametrize(
    "parts",
    [
        [],
        [InboundPart(Alphabet.GSM7, b"a", 1, 2, 1)],
        [InboundPart(Alphabet.GSM7, b"a", 1, 2, 1), InboundPart(Alphabet.GSM7, b"b", 2, 2, 2)],
        [InboundPart(Alphabet.GSM7, b"a", 1, 2, 1), InboundPart(Alphabet.GSM7, b"a", 1, 2, 1)],
    ],
)
def test_reassembly_refuses_incomplete_or_mixed_parts(parts):
    with pytest.raises(ValueError):
        reassemble(parts)


def test_gsm_decoding_of_a_dangling_escape_and_bytes_above_0x7f():
    assert decode_short_message(b"ab\x1b", 0).text == "ab"
    assert decode_short_message(b"a\x80", 0).text == "a\ufffd"
