"""Every part rides out a broker outage (issue "Faults under load", part 2): a Redis of
the test's own is stopped for a few seconds under a running ingress (gunicorn), an MT
worker, an inbound worker and beat. None of them exits; the ingress answers 98 (and
1710 for the bulk API) while Redis is away and 0 once it is back, by itself; and the
workers go on consuming: a message accepted after the return reaches the SMSC, and an
MO sent after the return is recorded. Run with the celery/kombu/redis versions pinned
in pyproject.toml."""

from __future__ import annotations

import itertools
import signal
import time

import pytest
import requests
from sqlalchemy import select

from app.db import migrate
from app.db.models import MoMessage
from app.db.session import session_scope
from app.services import accounts as svc
from app.settings import Settings
from tests.conftest import free_port
from tests.integration.bulk.conftest import params as bulk_params
from tests.integration.conftest import provision
from tests.integration.redis_server import RedisServer
from tests.integration.simulator import running_simulator
from tests.integration.test_delivery import MT_QUEUES, submitted_or_final
from tests.integration.test_httpapi import params
from tests.integration.workers import port_open, running, wait_until, worker_ready

pytestmark = pytest.mark.integration
OUTAGE_SECONDS = 4


@pytest.mark.parametrize("stop", [signal.SIGTERM, signal.SIGKILL], ids=["redis-stopped", "redis-killed"])
def test_no_part_exits_while_redis_is_away_and_all_go_on_when_it_is_back(tmp_path, stop):
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "everysec").start()
    database_url = f"sqlite:///{tmp_path / 'smsagg.db'}"
    migrate.upgrade(database_url)
    provision(database_url)
    settings = Settings(home=tmp_path, redis_url=f"redis://127.0.0.1:{server.port}/0", database_url=database_url,
                        key_prefix="outage:", allow_private_callbacks=True)
    web_port = free_port()
    ingress = f"http://127.0.0.1:{web_port}"
    logs = {name: tmp_path / f"{name}.log" for name in ("web", "mt", "inbound", "beat")}
    try:
        with running_simulator(response_delay_ms=1500) as smsc:  # slow: batches are in flight when Redis goes
            with session_scope(database_url) as session:
                svc.add_carrier(session, 1, "smsc", connector="smpp", throughput=None,
                                settings={"host": "127.0.0.1", "port": smsc.port, "system_id": "t", "password": "t"})
                svc.add_route(session, svc.DEFAULT_ROUTE_PREFIX, 1)
            with (running(["web", "--port", str(web_port), "--workers", "1", "--threads", "4"], settings,
                          logs["web"], ready=port_open(web_port)) as web,
                  running(["worker", "--queues", MT_QUEUES, "--pool", "threads", "--concurrency", "4"], settings,
                          logs["mt"], ready=worker_ready(logs["mt"])) as mt_worker,
                  running(["worker", "--queues", "inbound", "--pool", "threads", "--concurrency", "4"], settings,
                          logs["inbound"], ready=worker_ready(logs["inbound"])) as inbound_worker,
                  running(["beat"], settings, logs["beat"], ready=lambda: logs["beat"].stat().st_size > 0) as beat):
                parts = {"web": web, "mt worker": mt_worker, "inbound worker": inbound_worker, "beat": beat}
                assert _submit(ingress, "before") == "result_code=0"
                wait_until(lambda: submitted_or_final(settings, "before"), timeout=60)
                for index in range(8):  # tasks the workers hold, unacknowledged, when the broker goes
                    assert _submit(ingress, f"in-flight-{index}", priority="INTERACTIVE" if index % 2 else "BULK") \
                        == "result_code=0"
                wait_until(lambda: logs["mt"].read_bytes().count(b"] received") >= 3, timeout=30)

                server.stop(stop)
                assert _submit(ingress, "while-away") == "result_code=98"
                assert _bulk(ingress) == "1710"
                wait_until(lambda: b"Connection to broker lost" in logs["inbound"].read_bytes(), timeout=30)
                time.sleep(OUTAGE_SECONDS)  # the outage itself
                assert {name: p.poll() for name, p in parts.items()} == dict.fromkeys(parts)
                server.start()

                probes = itertools.count()
                wait_until(lambda: _submit(ingress, f"probe-{next(probes)}") == "result_code=0", timeout=30,
                           interval=0.2)  # the ingress recovers by itself
                assert _submit(ingress, "after") == "result_code=0"
                for name in ("after", *(f"in-flight-{index}" for index in range(8))):
                    wait_until(lambda: submitted_or_final(settings, name), timeout=60)
                smsc.inject_mo("12025550100", "99222", "back")

                def mo_recorded():
                    with session_scope(database_url) as session:
                        return "back" in set(session.scalars(select(MoMessage.text)))

                wait_until(mo_recorded, timeout=60)
                assert {name: p.poll() for name, p in parts.items()} == dict.fromkeys(parts), "a part exited"
    finally:
        server.stop(signal.SIGKILL)


def _submit(ingress: str, message_id: str, **fields: str) -> str:
    return requests.post(ingress + "/httpapi/receiver", data=params(message_id=message_id, **fields),
                         timeout=15).text.strip()


def _bulk(ingress: str) -> str:
    return requests.post(ingress + "/bulksms/bulksms", data=bulk_params(), timeout=15).text.strip().split("|")[0]

