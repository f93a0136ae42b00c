"""The real aiohttp sender against a real HTTP server on 127.0.0.1: concurrency and the
per-account cap, connections kept alive across batches and threads, one re-send after a
dropped kept-alive connection, timeouts, no redirects, and the address policy (also end
to end through the service: refused, recorded, dead-lettered)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import aiohttp
import pytest

from app.adapters.callback_http import (
    AiohttpCallbackSender,
    CallbackRequest,
    PolicyResolver,
)
from app.domain.callbacks import signed_headers
from app.services.callbacks import CallbackService
from tests.conftest import free_port
from tests.unit.callbacks.support import load, make_account, make_callback

pytestmark = pytest.mark.integration


def request(url: str, account_id: int = 1, key: str = "k") -> CallbackRequest:
    body = b"type=receipt&message_id=m-1"
    return CallbackRequest(key, account_id, url, body, signed_headers("secret", time.time(), body))


@pytest.fixture
def make_sender():
    """``AiohttpCallbackSender(**options)``, closed after the test."""
    senders: list[AiohttpCallbackSender] = []

    def make(**options) -> AiohttpCallbackSender:
        senders.append(AiohttpCallbackSender(**options))
        return senders[-1]

    yield make
    for sender in senders:
        sender.close()


def test_a_batch_runs_concurrently_capped_per_account(receiver, make_sender):
    receiver.script("/slow", delay=0.5)
    sender = make_sender(allow_private=True, per_account=2)
    started = time.monotonic()
    results = sender.send_many([*(request(receiver.url("/slow"), 1) for _ in range(4)), request(receiver.url("/fast"), 2)])
    elapsed = time.monotonic() - started
    assert [r.status_code for r in results] == [200] * 5
    assert 0.95 < elapsed < 1.8  # 4 requests, 2 at a time, 0.5 s each
    assert results[4].latency_ms < 300  # the other account did not wait for a slot
    slow_arrivals = sorted(r.at for r in receiver.received("/slow"))
    assert slow_arrivals[2] - slow_arrivals[0] > 0.4  # the third waited for a free slot


def test_connections_are_kept_alive_across_batches(receiver, make_sender):
    sender = make_sender(allow_private=True, per_account=1)
    for _ in range(3):
        assert [r.status_code for r in sender.send_many([request(receiver.url("/dr"))])] == [200]
    got = receiver.received("/dr")
    assert len({r.peer_port for r in got}) == 1 and [r.reused for r in got] == [False, True, True]


def test_batches_of_many_threads_share_the_connections(receiver, make_sender):
    sender = make_sender(allow_private=True, per_account=5)
    results: list = []

    def batch() -> None:
        results.extend(sender.send_many([request(receiver.url("/dr"), key=str(n)) for n in range(20)]))

    for _round in range(2):
        threads = [threading.Thread(target=batch) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert [r.status_code for r in results] == [200] * 160
    assert len({r.peer_port for r in receiver.received("/dr")}) <= 20  # 4 batches of 5 lanes at most


def test_a_dropped_kept_alive_connection_is_sent_again_once_on_a_fresh_one(receiver, make_sender):
    sender = make_sender(allow_private=True, per_account=1)
    sender.send_many([request(receiver.url("/dr"))])
    receiver.drop("/dr", reused=True)
    [result] = sender.send_many([request(receiver.url("/dr"))])
    assert (result.status_code, result.error) == (200, None)
    first, dropped, again = receiver.received("/dr")
    assert dropped.reused and dropped.peer_port == first.peer_port
    assert not again.reused and again.peer_port != first.peer_port and again.body == dropped.body


def test_a_dropped_fresh_connection_is_a_failure_not_sent_again(receiver, make_sender):
    sender = make_sender(allow_private=True)
    receiver.drop("/dr", reused=False)
    [result] = sender.send_many([request(receiver.url("/dr"))])
    assert result.status_code is None and "ServerDisconnectedError" in result.error
    assert len(receiver.received("/dr")) == 1


def test_the_re_send_after_a_dropped_kept_alive_connection_is_made_once_only(receiver, make_sender):
    sender = make_sender(allow_private=True, per_account=1)
    sender.send_many([request(receiver.url("/dr"))])
    receiver.drop("/dr", reused=True)
    receiver.drop("/dr", reused=False)
    [result] = sender.send_many([request(receiver.url("/dr"))])
    assert result.status_code is None and "ServerDisconnectedError" in result.error
    assert [r.reused for r in receiver.received("/dr")] == [False, True, False]


def test_close_ends_the_kept_alive_connections_and_the_sender_can_be_used_again(receiver, make_sender):
    sender = make_sender(allow_private=True, per_account=1)
    sender.send_many([request(receiver.url("/dr"))])
    sender.close()
    assert [r.status_code for r in sender.send_many([request(receiver.url("/dr"))])] == [200]
    first, second = receiver.received("/dr")
    assert not second.reused and second.peer_port != first.peer_port


def test_redirects_are_not_followed_and_errors_are_results(receiver, make_sender):
    receiver.script("/moved", [302])
    closed = free_port()
    sender = make_sender(allow_private=True)
    moved, refused, bad_scheme = sender.send_many(
        [request(receiver.url("/moved")), request(f"http://127.0.0.1:{closed}/x"), request("ftp://example.com/x")])
    assert (moved.status_code, moved.error) == (302, "HTTP 302") and receiver.received("/redirected") == []
    assert refused.status_code is None and "ClientConnectorError" in refused.error and not refused.permanent
    assert bad_scheme.permanent and "not http(s)" in bad_scheme.error


def test_no_answer_within_the_read_timeout_is_a_timeout(receiver, make_sender):
    receiver.script("/stuck", delay=1.5)
    sender = make_sender(allow_private=True, timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=0.3))
    [result] = sender.send_many([request(receiver.url("/stuck"))])
    assert result.status_code is None and result.error.startswith("timeout") and not result.permanent
    assert 250 < result.latency_ms < 1400


def test_loopback_and_private_targets_are_refused_before_connecting(receiver, make_sender):
    sender = make_sender(allow_private=False)
    by_ip, by_name, mapped = sender.send_many([
        request(receiver.url("/a")), request(receiver.url("/b", host="localhost")),
        request(f"http://[::ffff:127.0.0.1]:{receiver.port}/c"),
    ])
    for result in (by_ip, by_name, mapped):
        assert result.permanent and result.status_code is None and "forbidden address" in result.error
    assert receiver.requests == []  # nothing reached the server
    [allowed] = make_sender(allow_private=True).send_many([request(receiver.url("/a"))])
    assert allowed.status_code == 200


def test_the_resolver_refuses_a_name_if_any_address_is_forbidden():
    async def two_addresses(host, port, **_kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
                (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.7", port))]

    async def resolve(name):
        asyncio.get_running_loop().getaddrinfo = two_addresses
        return await PolicyResolver().resolve(name, 80)

    with pytest.raises(OSError, match="forbidden address 10.0.0.7"):
        asyncio.run(resolve("rebind.example"))


def test_a_refused_callback_is_recorded_and_dead_lettered_not_retried(settings, receiver, make_sender):
    account_id, _ = make_account(settings.database_url, "acme", dr_url=receiver.url("/dr"))
    callback_id = make_callback(settings.database_url, account_id, receiver.url("/dr"), max_retries=25)
    service = CallbackService(settings.database_url, make_sender(allow_private=False))
    outcome = service.send_batch([callback_id])
    assert outcome.dead == [callback_id] and not outcome.retries
    callback, attempts = load(settings.database_url, callback_id)
    assert callback.status == "dead" and callback.attempts == 1
    assert [(a.status_code, a.error) for a in attempts] == [(None, "forbidden address 127.0.0.1")]
    assert receiver.requests == []
