"""Reservations under concurrency: many processes and many HTTP threads on a small
group never get one number twice; TTL expiry frees numbers without a sweeper."""

from __future__ import annotations

import multiprocessing
import signal
from concurrent.futures import ThreadPoolExecutor

import requests

from app.gms.store import Exhausted, GmsStore, Reserved
from tests.conftest import TEST_REDIS_URL
from tests.integration.workers import wait_until

NUMBERS = ["18005550901", "18005550902", "18005550903"]


def _reserve_many(args) -> list[tuple[str, str]]:
    prefix, worker, attempts, round_robin = args
    from app.adapters.redis_scripts import connect

    store = GmsStore(connect(TEST_REDIS_URL), prefix)
    won = []
    for attempt in range(attempts):
        service_id = f"svc-{worker}-{attempt}"
        result = store.reserve(
            service_id=service_id, create_fields={"app": "a", "data_id": "d"}, service_ttl=60, app="a",
            group="small", phone=None, numbers=list(NUMBERS), round_robin=round_robin, booking_seconds=30,
            codes=["123456"])
        if isinstance(result, Reserved):
            won.append((result.number, service_id))
        else:
            assert isinstance(result, Exhausted) and result.retry_after_ms > 0
    return won


def _default_stop_signals() -> None:
    """A forked child inherits the signal handlers that code run earlier in this test
    process installed; with them a child may outlive the pool's SIGTERM."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, signal.SIG_DFL)


def test_many_processes_never_share_a_number(redis_client, key_prefix):
    context = multiprocessing.get_context("fork")
    pool = context.Pool(6, initializer=_default_stop_signals)
    try:
        results = pool.map(_reserve_many, [(key_prefix, w, 8, w % 2 == 0) for w in range(6)], chunksize=1)
        pool.close()  # the children end on their own, after their last task
    finally:
        pool.terminate()
        pool.join()
    won = [pair for result in results for pair in result]
    assert sorted(number for number, _ in won) == NUMBERS  # 48 tries, 3 numbers, each handed out once
    store = GmsStore(redis_client, key_prefix)
    live = store.reservations(NUMBERS)
    assert {n: r.service_id for n, r in live.items()} == dict(won)
    # refused tries created no service
    created = {k.decode() for k in redis_client.scan_iter(match=f"{key_prefix}gms:svc:*")}
    assert created == {f"{key_prefix}gms:svc:{service_id}" for _, service_id in won}


def test_parallel_http_requests_and_ttl_expiry(gms, live_server, redis_client):
    gms.add_group("tiny", ",".join(NUMBERS), booking_timeout=1)
    base = live_server()
    headers = gms.auth()

    def request_one(i: int):
        r = requests.post(f"{base}/genesys/1/service/request-interaction", headers=headers,
                          data={"_phone_number": f"650555{i:04d}", "_resource_group": "tiny"}, timeout=10)
        return r.status_code, r.json()

    with ThreadPoolExecutor(12) as executor:
        results = list(executor.map(request_one, range(24)))
    granted = [body["_access_number"] for status, body in results if status == 200]
    assert sorted(granted) == NUMBERS
    assert {status for status, _ in results} == {200, 503}
    assert all(body["error"] == "resource_group_exhausted" for status, body in results if status == 503)

    # booking_timeout = 1 s: every number is free again once its booking lapses, no sweeper involved
    wait_until(lambda: GmsStore(redis_client, gms.settings.key_prefix).reservations(NUMBERS) == {}, timeout=10)
    with ThreadPoolExecutor(6) as executor:
        again = list(executor.map(request_one, range(6)))
    assert sorted(body["_access_number"] for status, body in again if status == 200) == NUMBERS


def test_round_robin_rotates(gms):
    gms.add_group("rr", ",".join(NUMBERS), strategy="round-robin")
    handed = []
    for i in range(3):
        body = gms.post("/genesys/1/service/request-interaction",
                        {"_phone_number": f"65055500{i}", "_resource_group": "rr"}).get_json()
        handed.append(body["_access_number"])
        gms.client.delete(f"/genesys/1/service/{body['_id']}", headers=gms.auth())
    assert handed == NUMBERS
