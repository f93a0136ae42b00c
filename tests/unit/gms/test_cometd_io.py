"""The CometD I/O around the pure protocol, against fakeredis: the Redis commands both
servers share (CometdCommands), the ingress's polling mode (MobileServices.cometd_poll)
and the CometD server's parked polls (ParkedPolls, CometdServer.exchange)."""

from __future__ import annotations

import asyncio
import functools
import json

import fakeredis
import pytest

from app.gms.cometd import Identity, Register, SetSubscriptions
from app.gms.cometd_server import CometdServer, ParkedPolls
from app.gms.config import GmsConfig, GmsOptions
from app.gms.services import Caller, MobileServices
from app.gms.store import MAX_QUEUED, GmsStore
from app.settings import Settings
from tests.integration.workers import wait_until_async

PREFIX = "t:"
CALLER = Caller("mobileapp", "device-1")
OPTIONS = GmsOptions(cometd_timeout=5, cometd_poll_interval=1.5, cometd_max_parked=2)


@pytest.fixture
def server():
    return fakeredis.FakeServer()


@pytest.fixture
def store(server):
    return GmsStore(fakeredis.FakeRedis(server=server), PREFIX)


@pytest.fixture
def wake(store):
    pubsub = store.client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(store.cometd.wake_channel)
    pubsub.get_message()

    def published() -> list[str]:
        seen = []
        while (message := pubsub.get_message()) is not None:
            seen.append(message["data"].decode())
        return seen

    return published


def in_loop(test):
    """Run an ``async def`` test in a fresh event loop (no asyncio plugin needed)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        asyncio.run(test(*args, **kwargs))

    return run


def poll(services: MobileServices, *messages: dict) -> list[dict]:
    return services.cometd_poll(CALLER, list(messages))


def handshaken(services: MobileServices, subscribe: bool = True) -> str:
    [hs] = poll(services, {"channel": "/meta/handshake"})
    if subscribe:
        poll(services, {"channel": "/meta/subscribe", "clientId": hs["clientId"], "subscription": "/_genesys"})
    return hs["clientId"]


def connect(client_id: str, **extra) -> dict:
    return {"channel": "/meta/connect", "clientId": client_id, "connectionType": "long-polling", **extra}


def test_polling_mode_answers_at_once_with_what_waits_and_the_poll_interval(store, wake):
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    advice = {"reconnect": "retry", "interval": 1500, "timeout": 0}
    cid = handshaken(services)
    assert poll(services, connect(cid))[-1]["advice"] == advice
    assert poll(services, connect(cid, id="2")) == [
        {"channel": "/meta/connect", "id": "2", "clientId": cid, "successful": True, "advice": advice}]
    wake()
    assert store.cometd_deliver("mobileapp", "device-1", "/_genesys", json.dumps({"channel": "/_genesys", "n": 1}),
                                60) == 1
    assert store.cometd_deliver("mobileapp", "device-2", "/_genesys", "{}", 60) == 0  # another user's
    assert wake() == [cid]  # a delivery wakes the client's parked poll, wherever it is
    replies = poll(services, connect(cid))
    assert replies[0] == {"channel": "/_genesys", "n": 1} and replies[1]["successful"] is True
    [release] = wake()  # a connect releases the client's polls parked elsewhere
    assert release.startswith(f"{cid} ")
    poll(services, {"channel": "/meta/disconnect", "clientId": cid})
    assert wake() == [cid] and store.client.keys(f"{PREFIX}gms:cometd:{cid}*") == []


def test_a_reply_takes_at_most_100_messages_or_256_kib_and_always_one(store):
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    cid = handshaken(services)
    poll(services, connect(cid))
    for n in range(150):
        store.cometd_deliver("mobileapp", "device-1", "/_genesys", json.dumps({"n": n}), 60)
    first, second = poll(services, connect(cid)), poll(services, connect(cid))
    assert [m["n"] for m in first[:-1]] == list(range(100)) and [m["n"] for m in second[:-1]] == list(range(100, 150))
    big = json.dumps({"pad": "x" * 200_000})
    for _ in range(2):
        store.cometd_deliver("mobileapp", "device-1", "/_genesys", big, 60)
    assert len(poll(services, connect(cid))) == 2 and len(poll(services, connect(cid))) == 2


def test_a_silent_client_keeps_at_most_max_queued_messages(store):
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    cid = handshaken(services)
    for n in range(MAX_QUEUED + 5):
        store.cometd_deliver("mobileapp", "device-1", "/_genesys", "{}", 60)
    assert store.client.llen(store.cometd.queue_key(cid)) == MAX_QUEUED


def test_writes_never_leave_a_key_without_ttl(store):
    """A subscribe racing a disconnect recreates the client hash: it still expires."""
    with store.client.pipeline(transaction=False) as pipe:
        store.cometd.write(pipe, [Register("c" * 40, "app", "u")], 60)
        pipe.execute()
    store.client.delete(store.cometd.client_key("c" * 40))
    with store.client.pipeline(transaction=False) as pipe:
        store.cometd.write(pipe, [SetSubscriptions("c" * 40, ("/_genesys",))], 60)
        pipe.execute()
    assert 0 < store.client.ttl(store.cometd.client_key("c" * 40)) <= 60


@in_loop
async def test_parked_polls_one_per_client_woken_and_released_by_token():
    parked = ParkedPolls(limit=2)
    with parked.park("a") as first, parked.park("b") as other:
        assert not parked.has_room("c") and parked.has_room("a")
        parked.notify(f"a {first.token}")  # its own release message: ignored ...
        parked.notify(f"a {parked.new_token()}")  # ... as any this process sent
        assert not first.released and not await first.wait(0.01)
        parked.notify(b"a")
        assert await first.wait(1) and not first.released
        parked.notify(f"a {ParkedPolls(1).new_token()}")  # the client connected again, elsewhere
        assert first.released and not other.released
        with parked.park("b") as replacement:  # ... or here
            assert other.released and not replacement.released and len(parked) == 2
        assert len(parked) == 1  # the replaced poll's exit leaves the replacement's slot alone
    assert len(parked) == 0


def _server(store, server) -> CometdServer:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", key_prefix=PREFIX)
    client = fakeredis.FakeAsyncRedis(server=server)
    return CometdServer(settings, OPTIONS, registry=None, client=client)


@in_loop
async def test_the_cometd_server_holds_a_connect_until_its_client_is_woken(store, server):
    cometd = _server(store, server)
    identity = Identity("mobileapp", "device-1")
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    cid = handshaken(services)
    await cometd.exchange(identity, [connect(cid)])  # the first: at once
    held = asyncio.create_task(cometd.exchange(identity, [connect(cid, id="h")]))
    await wait_until_async(lambda: len(cometd.parked) == 1, timeout=2)
    cometd.parked.notify(cid)  # woken, but nothing queued: parks again
    await asyncio.sleep(0.01)  # lets the woken poll find its queue empty (no event says it has: kept)
    assert not held.done()
    store.cometd_deliver("mobileapp", "device-1", "/_genesys", json.dumps({"n": 1}), 60)
    cometd.parked.notify(cid)
    replies = await asyncio.wait_for(held, 2)
    assert replies == [{"n": 1}, {"channel": "/meta/connect", "id": "h", "clientId": cid, "successful": True,
                                  "advice": {"reconnect": "retry", "interval": 0, "timeout": 5000}}]
    assert len(cometd.parked) == 0


@in_loop
async def test_a_second_connect_releases_the_first_and_a_full_server_answers_polling(store, server):
    cometd = _server(store, server)
    identity = Identity("mobileapp", "device-1")
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    a, b, c = (handshaken(services) for _ in range(3))
    for cid in (a, b, c):
        await cometd.exchange(identity, [connect(cid)])
    first = asyncio.create_task(cometd.exchange(identity, [connect(a, id="1")]))
    held_b = asyncio.create_task(cometd.exchange(identity, [connect(b)]))
    await wait_until_async(lambda: len(cometd.parked) == 2, timeout=2)
    second = asyncio.create_task(cometd.exchange(identity, [connect(a, id="2")]))
    assert (await asyncio.wait_for(first, 2))[-1]["successful"] is True and not second.done()
    [full] = await asyncio.wait_for(cometd.exchange(identity, [connect(c)]), 2)  # limit 2: not held
    assert full["successful"] is True and full["advice"] == {"reconnect": "retry", "interval": 1500, "timeout": 0}
    cometd.parked.release_all()  # as on shutdown
    assert (await asyncio.wait_for(second, 2))[-1]["successful"] is True
    assert (await asyncio.wait_for(held_b, 2))[-1]["successful"] is True


@in_loop
async def test_a_disconnected_client_ends_its_held_connect_with_402(store, server):
    cometd = _server(store, server)
    identity = Identity("mobileapp", "device-1")
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    cid = handshaken(services)
    await cometd.exchange(identity, [connect(cid)])
    held = asyncio.create_task(cometd.exchange(identity, [connect(cid)]))
    await wait_until_async(lambda: len(cometd.parked) == 1, timeout=2)
    poll(services, {"channel": "/meta/disconnect", "clientId": cid})
    cometd.parked.notify(cid)
    [gone] = await asyncio.wait_for(held, 2)
    assert gone["error"] == "402::Unknown client"


class _UnreadSocket:
    """An HTTP writer whose peer never reads: every write waits forever."""

    buffer_size = output_size = 0

    def enable_chunking(self) -> None:
        pass

    def send_headers(self, *args, **kwargs) -> None:
        pass

    async def _forever(self, *args, **kwargs) -> None:
        await asyncio.Event().wait()

    write_headers = write = write_eof = drain = _forever


@in_loop
async def test_a_reply_nobody_reads_drops_the_connection_after_the_write_timeout(monkeypatch):
    from unittest import mock

    from aiohttp.test_utils import make_mocked_request

    from app.gms import cometd_server

    monkeypatch.setattr(cometd_server, "WRITE_SECONDS", 0.05)
    transport = mock.Mock()
    request = make_mocked_request("POST", "/genesys/cometd", writer=_UnreadSocket(), transport=transport)
    await asyncio.wait_for(cometd_server._send(request, [{"channel": "/meta/connect"}]), 2)
    transport.abort.assert_called_once()


@in_loop
async def test_a_body_that_does_not_arrive_is_408(monkeypatch):
    from unittest import mock

    from aiohttp import StreamReader
    from aiohttp.test_utils import make_mocked_request

    from app.gms import cometd_server

    monkeypatch.setattr(cometd_server, "BODY_SECONDS", 0.05)
    never_fed = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    request = make_mocked_request("POST", "/genesys/cometd", headers={"Content-Length": "10"}, payload=never_fed)
    with pytest.raises(cometd_server.RequestTimeout) as error:
        await cometd_server._body(request)
    assert error.value.status == 408 and error.value.code == "request_timeout"


@in_loop
async def test_a_connect_answered_at_once_still_releases_the_clients_parked_poll(store, server):
    cometd = _server(store, server)
    identity = Identity("mobileapp", "device-1")
    services = MobileServices(store, None, GmsConfig(options=OPTIONS))
    cid = handshaken(services)
    await cometd.exchange(identity, [connect(cid)])
    held = asyncio.create_task(cometd.exchange(identity, [connect(cid, id="old")]))
    await wait_until_async(lambda: len(cometd.parked) == 1, timeout=2)
    batched = await cometd.exchange(identity, [
        {"channel": "/meta/subscribe", "clientId": cid, "subscription": "/_genesys"}, connect(cid, id="new")])
    assert [r.get("id") for r in batched] == [None, "new"]
    assert (await asyncio.wait_for(held, 2))[-1]["id"] == "old"
