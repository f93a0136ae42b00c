"""A simulator running in its own process: MO injection over the control port, clean SIGTERM."""

import asyncio
import signal
import socket
import sys
from pathlib import Path

import pytest

from app.smpp.client import SmppClient
from app.smpp.simulator import ControlError, inject_mo_via_control
from tests.integration.workers import port_open, wait_until_async

pytestmark = [pytest.mark.integration, pytest.mark.timeout(15)]

REPO_ROOT = Path(__file__).resolve().parents[3]
RUN_SIMULATOR = (
    "import sys; from app.smpp.simulator import SimulatorConfig, run_simulator_forever; "
    "run_simulator_forever(SimulatorConfig(port=int(sys.argv[1]), control_port=int(sys.argv[2])))"
)


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    for sock in sockets:
        sock.bind(("127.0.0.1", 0))
    ports = [sock.getsockname()[1] for sock in sockets]
    for sock in sockets:
        sock.close()
    return ports


def test_inject_mo_through_the_control_port_of_a_running_simulator(run, client_config):
    smpp_port, control_port = free_ports(2)
    received = []

    async def on_deliver(pdu):
        received.append(pdu)

    async def scenario():
        simulator = await asyncio.create_subprocess_exec(
            sys.executable, "-c", RUN_SIMULATOR, str(smpp_port), str(control_port), cwd=REPO_ROOT)
        try:
            await wait_until_async(port_open(smpp_port), timeout=10)
            async with SmppClient(client_config(smpp_port), on_deliver):
                segments = inject_mo_via_control("127.0.0.1", control_port, "33698765432", "3900", "HELP me")
                await wait_until_async(lambda: len(received) == 1, timeout=5)
            with pytest.raises(ControlError, match="NoReceiverBound"):
                inject_mo_via_control("127.0.0.1", control_port, "33698765432", "3900", "nobody listens")
        finally:
            simulator.send_signal(signal.SIGTERM)
            exit_code = await asyncio.wait_for(simulator.wait(), timeout=3)
        return segments, exit_code

    segments, exit_code = run(scenario(), timeout=12)
    assert (segments, exit_code) == (1, 0)
    [mo] = received
    assert (mo.source_addr, mo.destination_addr, mo.short_message) == ("33698765432", "3900", b"HELP me")
