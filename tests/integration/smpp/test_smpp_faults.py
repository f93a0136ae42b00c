"""Faults over real TCP: throttling, dropped connections, bad credentials, silent or rude SMSCs."""

import asyncio
import time

import pytest

from app.smpp.client import BindRejected, ConnectionLost, ResponseTimeout, SmppClient
from app.smpp.pdu import (
    BindTransceiver,
    CommandStatus,
    EnquireLink,
    GenericNack,
    SubmitSm,
    Unbind,
    decode,
    encode,
)
from app.smpp.simulator import SimulatorConfig, SmscSimulator
from app.smpp.stream import PduStream
from tests.integration.workers import wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(10)]


def hello(number: int = 0) -> SubmitSm:
    return SubmitSm(source_addr="SMSAGG", destination_addr="33612345678", short_message=f"Hello {number}".encode())


def test_throttle_answers_0x58_above_the_rate(run, client_config):
    async def scenario():
        config = SimulatorConfig(port=0, throttle_per_second=5)
        async with SmscSimulator(config) as sim, SmppClient(client_config(sim.port)) as client:
            return [resp.command_status for resp in await asyncio.gather(*(client.submit(hello()) for _ in range(20)))]

    statuses = run(scenario())
    assert 5 <= statuses.count(CommandStatus.ESME_ROK) <= 6  # the bucket, plus what refills meanwhile
    assert set(statuses) == {CommandStatus.ESME_ROK, CommandStatus.ESME_RTHROTTLED}


def test_dropped_connection_fails_outstanding_submits_and_the_client_rebinds(run, client_config):
    async def submit_until_accepted(client: SmppClient, number: int, failures: list[int]) -> str:
        while True:
            try:
                return (await client.submit(hello(number))).message_id
            except ConnectionLost:
                failures.append(number)
                await wait_until_async(lambda: client.is_bound, timeout=5)

    async def scenario():
        failures: list[int] = []
        async with SmscSimulator(SimulatorConfig(port=0, drop_after_submits=5)) as sim:
            async with SmppClient(client_config(sim.port, window=10)) as client:
                ids = await asyncio.gather(*(submit_until_accepted(client, n, failures) for n in range(12)))
                return ids, failures, sim.messages

    ids, failures, messages = run(scenario())
    assert failures, "the drop should have failed outstanding submits"
    assert len(set(ids)) == 12
    assert sorted(message.text for message in messages) == sorted(f"Hello {n}" for n in range(12))


@pytest.mark.parametrize(
    "system_id, password, status",
    [("smsagg", "wrong", CommandStatus.ESME_RINVPASWD), ("stranger", "secret", CommandStatus.ESME_RBINDFAIL)],
)
def test_bad_credentials_fail_the_bind(run, client_config, system_id, password, status):
    async def scenario():
        async with SmscSimulator(SimulatorConfig(port=0, credentials={"smsagg": "secret"})) as sim:
            client = SmppClient(client_config(sim.port, system_id=system_id, password=password))
            with pytest.raises(BindRejected) as rejected:
                await client.start()
            return rejected.value.command_status, client.is_bound

    assert run(scenario()) == (status, False)


async def _fake_smsc(handle_pdu) -> tuple[asyncio.Server, list[str]]:
    """A bare SMPP server whose behaviour is one function: pdu -> response or None (stay silent)."""
    events: list[str] = []

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        stream = PduStream(reader, writer)
        while (pdus := await stream.receive()) is not None:
            for pdu in pdus:
                events.append(type(pdu).__name__)
                if (reply := handle_pdu(pdu)) is not None:
                    stream.send(reply)
                elif isinstance(pdu, Unbind):
                    await stream.close()
                    return

    return await asyncio.start_server(serve, "127.0.0.1", 0), events


def _answer_binds_only(pdu):
    return pdu.response(system_id="FAKE") if isinstance(pdu, BindTransceiver) else None


def test_submit_without_response_raises_response_timeout(run, client_config):
    async def scenario():
        server, _ = await _fake_smsc(_answer_binds_only)
        async with server, SmppClient(client_config(server.sockets[0].getsockname()[1], response_timeout=0.2)) as c:
            with pytest.raises(ResponseTimeout) as timed_out:
                await c.submit(hello())
            return timed_out.value

    assert isinstance(run(scenario()), TimeoutError)


def test_unanswered_enquire_link_drops_the_link_and_rebinds(run, client_config):
    async def scenario():
        server, events = await _fake_smsc(_answer_binds_only)
        port = server.sockets[0].getsockname()[1]
        config = client_config(port, enquire_link_interval=0.1, response_timeout=0.1)
        async with server, SmppClient(config):
            await wait_until_async(lambda: events.count("BindTransceiver") >= 2, timeout=5)
        return events

    events = run(scenario())
    assert events[:2] == ["BindTransceiver", "EnquireLink"]


def test_enquire_link_keeps_a_healthy_link_bound(run, client_config):
    def answer(pdu):
        return pdu.response() if isinstance(pdu, EnquireLink) else _answer_binds_only(pdu)

    async def scenario():
        server, events = await _fake_smsc(answer)
        config = client_config(server.sockets[0].getsockname()[1], enquire_link_interval=0.05, response_timeout=0.1)
        async with server, SmppClient(config) as client:
            await wait_until_async(lambda: events.count("EnquireLink") >= 4, timeout=10)
            return events, client.is_bound

    events, bound = run(scenario())
    assert bound and events.count("BindTransceiver") == 1 and events.count("EnquireLink") >= 4


def test_close_does_not_hang_when_the_smsc_closes_instead_of_answering_unbind(run, client_config):
    async def scenario():
        server, events = await _fake_smsc(_answer_binds_only)
        client = SmppClient(client_config(server.sockets[0].getsockname()[1], unbind_timeout=3.0))
        async with server:
            await client.start()
            started = time.perf_counter()
            await client.close()
            return time.perf_counter() - started, events

    elapsed, events = run(scenario())
    assert events[-1] == "Unbind" and elapsed < 0.5


def test_simulator_drops_a_connection_that_sends_garbage(run):
    async def scenario():
        async with SmscSimulator(SimulatorConfig(port=0)) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            return await reader.read()

    assert run(scenario(), timeout=2) == b""


def test_simulator_nacks_an_unknown_command_and_stays_up(run):
    async def scenario():
        async with SmscSimulator(SimulatorConfig(port=0)) as sim:
            reader, writer = await asyncio.open_connection("127.0.0.1", sim.port)
            query_sm = bytes.fromhex("00000010" "00000003" "00000000" "00000009")
            writer.write(query_sm + encode(Unbind(sequence_number=10)))
            replies = [decode(await reader.readexactly(16)) for _ in range(2)]
            return replies, await reader.read()

    replies, rest = run(scenario())
    assert replies[0] == GenericNack(sequence_number=9, command_status=CommandStatus.ESME_RINVCMDID)
    assert replies[1].command_id == 0x80000006 and rest == b""  # unbind_resp, then close
