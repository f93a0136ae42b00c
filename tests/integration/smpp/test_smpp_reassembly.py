"""The simulator joins concatenated submits (UDH 8/16-bit, SAR, message_payload) and answers each segment."""

import asyncio

import pytest

from app.smpp.client import SmppClient
from app.smpp.pdu import EsmClass, SubmitSm, Tag
from app.smpp.simulator import SimulatorConfig, SmscSimulator
from tests.integration.workers import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]

GSM_TEXT = "Grüße {from} the [gateway] ~ 5€ " * 8  # GSM 03.38 incl. extension table: 2 octets per {}[]~€
UCS2_TEXT = "Привет, мир 👋 " * 12  # the emoji is a surrogate pair


def udh_8bit(reference: int, total: int, number: int) -> bytes:
    return bytes((5, 0x00, 3, reference, total, number))


def udh_16bit(reference: int, total: int, number: int) -> bytes:
    return bytes((6, 0x08, 4)) + reference.to_bytes(2, "big") + bytes((total, number))


def split_octets(octets: bytes, size: int) -> list[bytes]:
    return [octets[start : start + size] for start in range(0, len(octets), size)]


def udh_segments(octets: bytes, header, data_coding: int, size: int) -> list[SubmitSm]:
    chunks = split_octets(octets, size)
    return [
        SubmitSm(source_addr="SMSAGG", destination_addr="33612345678", esm_class=EsmClass.UDH_INDICATOR,
                 data_coding=data_coding, registered_delivery=1, short_message=header(0x2A, len(chunks), n) + chunk)
        for n, chunk in enumerate(chunks, start=1)
    ]


def sar_segments(octets: bytes, data_coding: int, size: int) -> list[SubmitSm]:
    chunks = split_octets(octets, size)
    return [
        SubmitSm(source_addr="SMSAGG", destination_addr="33612345678", data_coding=data_coding,
                 registered_delivery=1, short_message=chunk,
                 tlvs={Tag.SAR_MSG_REF_NUM: 0x1234, Tag.SAR_TOTAL_SEGMENTS: len(chunks), Tag.SAR_SEGMENT_SEQNUM: n})
        for n, chunk in enumerate(chunks, start=1)
    ]


# Segment sizes chosen so that a GSM escape pair (at 150) and UTF-16 code units (133 is odd) straddle
# segment boundaries, which only decoding the joined octets survives.
CASES = {
    "udh-8bit-gsm": (udh_segments(GSM_TEXT.encode("gsm03.38"), udh_8bit, 0, 150), GSM_TEXT),
    "udh-16bit-ucs2": (udh_segments(UCS2_TEXT.encode("utf-16-be"), udh_16bit, 8, 133), UCS2_TEXT),
    "sar-latin1": (sar_segments(("Größe " * 40).encode("latin-1"), 3, 134), "Größe " * 40),
}


@pytest.mark.parametrize("segments, text", CASES.values(), ids=CASES.keys())
def test_segments_are_joined_and_each_gets_its_own_id_and_receipt(run, client_config, segments, text):
    receipts = []

    async def on_deliver(pdu):
        receipts.append(pdu)

    async def scenario():
        async with SmscSimulator(SimulatorConfig(port=0, dr_delay=0.05)) as sim:
            async with SmppClient(client_config(sim.port), on_deliver) as client:
                resps = await asyncio.gather(*(client.submit(segment) for segment in reversed(segments)))
                [message] = await sim.wait_for_messages(1, timeout=1)
                await wait_until_async(lambda: len(receipts) >= len(segments), timeout=10)
                return [resp.message_id for resp in reversed(resps)], message

    ids, message = run(scenario())
    assert message.text == text
    assert message.segments == len(segments) >= 2
    assert message.smsc_message_ids == tuple(ids) and len(set(ids)) == len(ids)
    assert sorted(receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] for receipt in receipts) == sorted(ids)


def test_message_payload_carries_a_long_message_in_one_submit(run, client_config):
    text = "Long message in one PDU. " * 20

    async def scenario():
        async with SmscSimulator(SimulatorConfig(port=0)) as sim, SmppClient(client_config(sim.port)) as client:
            await client.submit(SubmitSm(source_addr="SMSAGG", destination_addr="33612345678", data_coding=3,
                                         tlvs={Tag.MESSAGE_PAYLOAD: text.encode("latin-1")}))
            return await sim.wait_for_messages(1, timeout=1)

    [message] = run(scenario())
    assert (message.text, message.segments, message.data_coding) == (text, 1, 3)


def test_segments_of_one_message_may_arrive_over_different_binds(run, client_config):
    segments, text = CASES["udh-8bit-gsm"]

    async def scenario():
        async with SmscSimulator(SimulatorConfig(port=0)) as sim:
            async with SmppClient(client_config(sim.port)) as first, SmppClient(client_config(sim.port)) as second:
                for number, segment in enumerate(segments):
                    await (first, second)[number % 2].submit(segment)
                return await sim.wait_for_messages(1, timeout=1)

    [message] = run(scenario())
    assert message.text == text
