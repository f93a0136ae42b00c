"""Client and simulator over real TCP: bind modes, submit, window, pool, receipts, MO, close."""

import asyncio
import re
import time

import pytest

from app.smpp.client import BindMode, SmppClient, SmppPool
from app.smpp.pdu import CommandStatus, DeliverSm, EsmClass, MessageState, SubmitSm, Tag
from app.smpp.short_message import decode_text, split_concatenation
from app.smpp.simulator import SimulatorConfig, SmscSimulator
from tests.integration.workers import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]

RECEIPT = re.compile(
    r"id:(?P<id>\w+) sub:001 dlvrd:(?P<dlvrd>\d{3}) submit date:\d{10} done date:\d{10} "
    r"stat:(?P<stat>[A-Z]{7}) err:(?P<err>\d{3}) text:(?P<text>.*)"
)


def hello(destination: str = "33612345678", **fields) -> SubmitSm:
    return SubmitSm(source_addr="SMSAGG", destination_addr=destination, short_message=b"Hello world", **fields)


def simulator(**settings) -> SmscSimulator:
    return SmscSimulator(SimulatorConfig(port=0, **({"dr_delay": 0.05} | settings)))


class Inbox:
    """An on_deliver handler that keeps what it is given."""

    def __init__(self) -> None:
        self.pdus: list[DeliverSm] = []

    async def __call__(self, pdu: DeliverSm) -> None:
        self.pdus.append(pdu)

    @property
    def receipts(self) -> list[DeliverSm]:
        return [pdu for pdu in self.pdus if pdu.esm_class & EsmClass.DELIVERY_RECEIPT]


@pytest.mark.parametrize("bind_mode", list(BindMode))
def test_submit_is_acknowledged_with_a_hex_id_and_stored(run, client_config, bind_mode):
    async def scenario():
        async with simulator() as sim, SmppClient(client_config(sim.port, bind_mode=bind_mode)) as client:
            resp = await client.submit(hello())
            [message] = await sim.wait_for_messages(1, timeout=1)
            return resp, message

    resp, message = run(scenario())
    assert resp.accepted and re.fullmatch(r"[0-9a-f]+", resp.message_id)
    assert (message.source, message.destination, message.text) == ("SMSAGG", "33612345678", "Hello world")
    assert message.smsc_message_ids == (resp.message_id,)


@pytest.mark.parametrize("id_format, pattern", [("decimal", r"[1-9]\d+"), ("padded-decimal", r"0\d{19}")])
def test_message_ids_follow_the_configured_format(run, client_config, id_format, pattern):
    async def scenario():
        async with simulator(id_format=id_format) as sim, SmppClient(client_config(sim.port)) as client:
            return await client.submit(hello())

    assert re.fullmatch(pattern, run(scenario()).message_id)


def test_window_bounds_the_submits_outstanding(run, client_config):
    async def elapsed_for_nine_submits(window: int) -> float:
        async with simulator(response_delay_ms=100) as sim, SmppClient(client_config(sim.port, window=window)) as c:
            started = time.perf_counter()
            await asyncio.gather(*(c.submit(hello()) for _ in range(9)))
            return time.perf_counter() - started

    assert 0.3 <= run(elapsed_for_nine_submits(3)) < 0.6  # three rounds of 100 ms
    assert run(elapsed_for_nine_submits(9)) < 0.2  # one round


def test_pool_spreads_submits_over_its_binds(run, client_config):
    async def scenario():
        async with simulator(response_delay_ms=100) as sim:
            async with SmppPool(client_config(sim.port, window=2), binds=3) as pool:
                started = time.perf_counter()
                resps = await asyncio.gather(*(pool.submit(hello()) for _ in range(6)))
                return time.perf_counter() - started, resps

    elapsed, resps = run(scenario())
    assert all(resp.accepted for resp in resps)
    assert elapsed < 0.2  # 3 binds x window 2 take all six at once


def test_receipt_carries_the_text_and_the_tlvs(run, client_config):
    inbox = Inbox()

    async def scenario():
        async with simulator() as sim, SmppClient(client_config(sim.port), inbox) as client:
            resp = await client.submit(hello(registered_delivery=1))
            await wait_until_async(lambda: sim.acknowledged_deliveries == 1 and inbox.receipts)
            return resp, sim.acknowledged_deliveries

    resp, acknowledged = run(scenario())
    [receipt] = inbox.receipts
    fields = RECEIPT.fullmatch(receipt.short_message.decode("ascii")).groupdict()
    assert fields == {"id": resp.message_id, "dlvrd": "001", "stat": "DELIVRD", "err": "000", "text": "Hello world"}
    assert receipt.tlvs == {Tag.RECEIPTED_MESSAGE_ID: resp.message_id, Tag.MESSAGE_STATE: MessageState.DELIVERED}
    assert (receipt.source_addr, receipt.destination_addr) == ("33612345678", "SMSAGG")
    assert acknowledged == 1


@pytest.mark.parametrize(
    "registered_delivery, outcome, expected_state",
    [(1, "UNDELIV", MessageState.UNDELIVERABLE), (2, "EXPIRED", MessageState.EXPIRED), (2, "DELIVRD", None)],
)
def test_receipt_outcome_and_failure_only_requests(run, client_config, registered_delivery, outcome, expected_state):
    inbox = Inbox()

    async def scenario():
        async with simulator(outcome_weights={outcome: 1}) as sim, SmppClient(client_config(sim.port), inbox) as c:
            tested = await c.submit(hello(registered_delivery=registered_delivery))
            # A receipt is scheduled when its submit is taken, after the same delay for
            # every message: once a later submit's receipt is in, the first one's is too.
            sentinel = await c.submit(hello(registered_delivery=1))
            await wait_until_async(lambda: sentinel.message_id in _receipted(inbox))
            return tested.message_id

    tested_id = run(scenario())
    states = [r.tlvs[Tag.MESSAGE_STATE] for r in inbox.receipts if r.tlvs[Tag.RECEIPTED_MESSAGE_ID] == tested_id]
    assert states == ([expected_state] if expected_state else [])


def _receipted(inbox: Inbox) -> list[str]:
    return [receipt.tlvs[Tag.RECEIPTED_MESSAGE_ID] for receipt in inbox.receipts]


def test_receipts_reach_the_receiver_of_a_transmitter_receiver_pair(run, client_config):
    inbox = Inbox()

    async def scenario():
        async with simulator() as sim:
            async with SmppClient(client_config(sim.port, bind_mode=BindMode.TRANSMITTER_RECEIVER), inbox) as c:
                await c.submit(hello(registered_delivery=1))
                await wait_until_async(lambda: sim.acknowledged_deliveries == 1)
                return sim.acknowledged_deliveries

    assert run(scenario()) == 1
    assert len(inbox.receipts) == 1



def test_failed_handler_makes_the_simulator_deliver_again(run, client_config):
    attempts: list[DeliverSm] = []

    async def flaky(pdu: DeliverSm) -> None:
        attempts.append(pdu)
        if len(attempts) == 1:
            raise RuntimeError("database down")

    async def scenario():
        async with simulator() as sim, SmppClient(client_config(sim.port), flaky) as client:
            await client.submit(hello(registered_delivery=1))
            await wait_until_async(lambda: sim.acknowledged_deliveries == 1 and len(attempts) == 2)
            return sim.acknowledged_deliveries

    assert run(scenario()) == 1
    assert len(attempts) == 2 and attempts[0].short_message == attempts[1].short_message


def test_mo_injection_short_and_concatenated(run, client_config):
    inbox = Inbox()
    long_text = "Price {EUR} 10€ " * 20  # 380 septets: extension characters take two each

    async def scenario():
        async with simulator() as sim, SmppClient(client_config(sim.port), inbox):
            assert await sim.inject_mo("33698765432", "3900", "STOP") == 1
            assert await sim.inject_mo("33698765432", "3900", long_text) == 3
            await wait_until_async(lambda: sim.acknowledged_deliveries == 4)
            return sim.acknowledged_deliveries

    assert run(scenario()) == 4
    short, *segments = inbox.pdus
    assert (short.source_addr, short.destination_addr, short.esm_class, short.short_message) == (
        "33698765432", "3900", 0, b"STOP")
    places = [split_concatenation(pdu) for pdu in segments]
    assert [place.sequence for place, _ in places] == [1, 2, 3]
    assert all(pdu.esm_class == EsmClass.UDH_INDICATOR and pdu.data_coding == 0 for pdu in segments)
    assert decode_text(b"".join(data for _, data in places), 0) == long_text


def test_mo_in_ucs2_when_the_text_needs_it(run, client_config):
    inbox = Inbox()

    async def scenario():
        async with simulator() as sim, SmppClient(client_config(sim.port), inbox):
            await sim.inject_mo("33698765432", "3900", "Привет 👋")
            await wait_until_async(lambda: inbox.pdus)

    run(scenario())
    [mo] = inbox.pdus
    assert mo.data_coding == 8 and decode_text(mo.short_message, 8) == "Привет 👋"


def test_close_unbinds_without_waiting_for_the_unbind_timeout(run, client_config):
    async def scenario():
        async with simulator() as sim:
            client = SmppClient(client_config(sim.port, unbind_timeout=3.0))
            await client.start()
            started = time.perf_counter()
            await client.close()
            return time.perf_counter() - started, client.is_bound

    elapsed, bound = run(scenario())
    assert elapsed < 0.5 and not bound


def test_submit_status_from_the_smsc_is_returned_not_raised(run, client_config):
    async def scenario():
        async with simulator(reject_destination_prefix="999") as sim, SmppClient(client_config(sim.port)) as c:
            return await c.submit(hello("99912345")), await c.submit(hello("33612345678"))

    rejected, accepted = run(scenario())
    assert (rejected.command_status, rejected.message_id) == (CommandStatus.ESME_RINVDSTADR, "")
    assert accepted.accepted
