"""``smsagg web`` under each server (SMSAGG_WEB_SERVER): every worker process beats from
its start, before any request; one kept-alive connection carries several submits;
SIGTERM stops it with status 0 and its parts leave ``smsagg status`` at once; and
(granian) a server process killed with ``kill -9`` takes its workers with it."""

from __future__ import annotations

import http.client
import os
import signal
from urllib.parse import urlencode

import pytest

from app.adapters.heartbeats import read_parts
from tests.conftest import free_port
from tests.integration.test_httpapi import params
from tests.integration.workers import port_open, running, wait_until


def _ingress_pids(redis_client, key_prefix) -> set[int]:
    return {r["pid"] for r in read_parts(redis_client, key_prefix) if r["part"] == "ingress"}


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_workers_beat_from_their_start_keep_connections_alive_and_stop_cleanly(
        server, gateway, redis_client, tmp_path, monkeypatch):
    monkeypatch.setenv("SMSAGG_WEB_SERVER", server)
    port = free_port()
    with running(["web", "--port", str(port), "--workers", "2", "--threads", "2"], gateway,
                 tmp_path / "web.log", ready=port_open(port)) as web:
        workers = wait_until(lambda: len(_ingress_pids(redis_client, gateway.key_prefix)) == 2
                             and _ingress_pids(redis_client, gateway.key_prefix), timeout=30)
        assert web.pid not in workers
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for number in range(3):
            connection.request("POST", "/httpapi/receiver", urlencode(params(message_id=f"{server}-ka-{number}")),
                               {"Content-Type": "application/x-www-form-urlencoded"})
            response = connection.getresponse()
            assert response.read() == b"result_code=0"
            assert response.getheader("Connection", "keep-alive").lower() != "close"
        connection.close()
        os.killpg(web.pid, signal.SIGTERM)
        assert web.wait(20) == 0
    assert _ingress_pids(redis_client, gateway.key_prefix) == set()


def test_a_killed_granian_server_takes_its_workers_with_it(gateway, redis_client, tmp_path, monkeypatch):
    monkeypatch.setenv("SMSAGG_WEB_SERVER", "granian")
    port = free_port()
    with running(["web", "--port", str(port), "--workers", "2"], gateway, tmp_path / "web.log",
                 ready=port_open(port)) as web:
        workers = wait_until(lambda: len(_ingress_pids(redis_client, gateway.key_prefix)) == 2
                             and _ingress_pids(redis_client, gateway.key_prefix), timeout=30)
        os.kill(web.pid, signal.SIGKILL)
        web.wait(10)
        wait_until(lambda: not any(_alive(pid) for pid in workers), timeout=20)
        assert not port_open(port)()
