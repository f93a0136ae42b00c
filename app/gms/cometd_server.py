"""``smsagg cometd``: the CometD long-polls of GMS mobile clients, served by an asyncio
server of their own (aiohttp), so a parked ``/meta/connect`` costs a coroutine and a
socket instead of an ingress thread, and no number of chat clients slows MT ingress.

It serves ``POST /genesys/cometd`` and ``POST /gms-web/cometd`` with the same Bayeux
protocol as the ingress's polling route (:mod:`app.gms.cometd`, one implementation),
the same Redis commands (:class:`~app.gms.store.CometdCommands`), and the same
identity checks and error replies (:mod:`app.gms.http`); only here a connect is held
up to ``[gms] cometd_timeout`` seconds until a message arrives.

Waiting costs nothing per poll: ONE Redis pub/sub subscription per process
(:class:`WakeListener`) wakes the right parked poll (:class:`ParkedPolls`) when a
delivery for its client is published; the woken poll takes its messages with one
script. After (re)subscribing, every parked poll re-reads its queue, so a delivery
published while the subscription was down is not left waiting.

Limits:

* one parked poll per client: a client's new connect releases its previous one, in
  this process at once and in other processes through the wake channel;
* at most ``[gms] cometd_max_parked`` parked polls per process; beyond, a connect is
  answered at once with the polling advice (``cometd_poll_interval``);
* bodies up to 256 KiB (``413 payload_too_large``), read within
  :data:`BODY_SECONDS` (``408 request_timeout``); a reply carries at most 100
  messages or 256 KiB (one message always fits) and must be written within
  :data:`WRITE_SECONDS`, or the connection is dropped;
* a client that closes its connection cancels its request at once
  (``handler_cancellation``), releasing its parked poll;
* on SIGTERM, parked polls are answered at once (clients reconnect elsewhere).

``GET /health`` answers ``{"status", "parked", "max_parked"}``; ``503`` while the wake
subscription is down.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import socket
from contextlib import contextmanager

import redis
import redis.asyncio as aioredis
from aiohttp import web
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from app.gms import http
from app.gms.cometd import (
    MAX_BODY_BYTES,
    Advice,
    Identity,
    MalformedBayeux,
    client_ids,
    connect_replies,
    malformed_reply,
    messages_from_body,
    unavailable_reply,
)
from app.gms.cometd import plan as plan_bayeux
from app.gms.config import GmsOptions, load_config
from app.gms.domain import GmsError
from app.gms.registry import Registry
from app.gms.store import CometdCommands
from app.adapters.redis_scripts import connect
from app.domain.forwarded import client_address
from app.services.auth_guard import build_guard
from app.settings import Settings

log = logging.getLogger(__name__)

PATHS = ("/genesys/cometd", "/gms-web/cometd")
BODY_SECONDS = 10.0
WRITE_SECONDS = 30.0
REDIS_CONNECTIONS = 64


class RequestTimeout(GmsError):
    status, code = 408, "request_timeout"


class ParkedPoll:
    """One held ``/meta/connect``: woken when its client's queue may have messages,
    released when the client connected again (or the server stops)."""

    def __init__(self, client_id: str, token: str):
        self.client_id = client_id
        self.token = token
        self.released = False
        self._woken = asyncio.Event()

    def wake(self) -> None:
        self._woken.set()

    def release(self) -> None:
        self.released = True
        self._woken.set()

    async def wait(self, timeout: float) -> bool:
        """``True`` if woken (or released) within ``timeout`` seconds."""
        if timeout <= 0:
            return False
        try:
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        except TimeoutError:
            return False
        self._woken.clear()
        return True


class ParkedPolls:
    """The polls this process holds, by client id (one each).

    A connect's release token starts with this process's origin, so the process
    ignores its own release messages (it has released its local poll already), and a
    late one can never end a newer poll of the same client here."""

    def __init__(self, limit: int):
        self.limit = limit
        self.origin = secrets.token_hex(6)
        self._by_client: dict[str, ParkedPoll] = {}

    def __len__(self) -> int:
        return len(self._by_client)

    def has_room(self, client_id: str) -> bool:
        return client_id in self._by_client or len(self._by_client) < self.limit

    def new_token(self) -> str:
        return f"{self.origin}.{secrets.token_hex(6)}"

    def release(self, client_id: str) -> None:
        """The client connected again here: its parked poll, if any, is answered."""
        previous = self._by_client.get(client_id)
        if previous is not None:
            previous.release()

    @contextmanager
    def park(self, client_id: str):
        self.release(client_id)
        poll = self._by_client[client_id] = ParkedPoll(client_id, self.new_token())
        try:
            yield poll
        finally:
            if self._by_client.get(client_id) is poll:
                del self._by_client[client_id]

    def notify(self, payload: bytes | str) -> None:
        """A message on the wake channel: ``<client id>`` (its queue or state changed)
        or ``<client id> <token>`` (a connect with that token releases the others)."""
        text = payload.decode() if isinstance(payload, bytes) else payload
        client_id, _, token = text.partition(" ")
        poll = self._by_client.get(client_id)
        if poll is None:
            return
        if not token:
            poll.wake()
        elif not token.startswith(f"{self.origin}."):
            poll.release()

    def wake_all(self) -> None:
        for poll in list(self._by_client.values()):
            poll.wake()

    def release_all(self) -> None:
        for poll in list(self._by_client.values()):
            poll.release()


def _keepalive_options() -> dict[int, int]:
    """Probe an idle connection after 10 s, so a vanished Redis host is noticed on the
    subscription (which only ever reads) within about half a minute."""
    names = ("TCP_KEEPIDLE", "TCP_KEEPINTVL", "TCP_KEEPCNT")
    if not all(hasattr(socket, n) for n in names):
        return {}
    return {socket.TCP_KEEPIDLE: 10, socket.TCP_KEEPINTVL: 5, socket.TCP_KEEPCNT: 3}


class WakeListener:
    """The process's one subscription to the wake channel, resubscribing with backoff."""

    def __init__(self, redis_url: str, channel: str, parked: ParkedPolls):
        self.redis_url = redis_url
        self.channel = channel
        self.parked = parked
        self.subscribed = False

    async def run(self) -> None:
        backoff = 0.2
        while True:
            client = aioredis.Redis.from_url(
                self.redis_url, socket_connect_timeout=2, socket_keepalive=True,
                socket_keepalive_options=_keepalive_options(), retry=Retry(NoBackoff(), 0))
            try:
                async with client.pubsub(ignore_subscribe_messages=True) as pubsub:
                    await pubsub.subscribe(self.channel)
                    self.subscribed, backoff = True, 0.2
                    self.parked.wake_all()
                    while True:
                        message = await pubsub.get_message(timeout=5.0)
                        if message is not None and message["type"] == "message":
                            self.parked.notify(message["data"])
            except (redis.RedisError, OSError) as exc:
                if self.subscribed:
                    log.warning("CometD wake subscription lost (%s); resubscribing", exc)
            finally:
                self.subscribed = False
                await client.aclose()
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)


class CometdServer:
    """The Bayeux exchange of one request, long-polling."""

    def __init__(self, settings: Settings, options: GmsOptions, registry: Registry, client: aioredis.Redis):
        self.options = options
        self.registry = registry
        self.trusted_proxies = settings.trusted_proxies
        self.redis = client
        self.commands = CometdCommands(settings.key_prefix)
        self.parked = ParkedPolls(options.cometd_max_parked)
        self.listener = WakeListener(settings.require_redis_url(), self.commands.wake_channel, self.parked)
        self.advice = Advice.long_polling(options.cometd_timeout)
        self.polling_advice = Advice.polling(options.cometd_poll_interval)

    async def _execute(self, *steps) -> list:
        """One round trip: each step queues its commands on the pipeline."""
        async with self.redis.pipeline(transaction=False) as pipe:
            for step in steps:
                step(pipe)
            return await pipe.execute()

    async def exchange(self, identity: Identity, messages: list[dict]) -> list[dict]:
        ids = client_ids(messages)
        clients = {}
        if ids:
            clients = self.commands.clients(ids, await self._execute(lambda p: self.commands.read_clients(p, ids)))
        plan = plan_bayeux(identity, messages, clients, advice=self.advice, max_hold=self.options.cometd_timeout)
        pending = plan.connect
        if pending is None:
            if plan.writes:
                await self._execute(lambda p: self.commands.write(p, plan.writes, self.options.cometd_session_timeout))
            return plan.replies
        client_id = pending.client.client_id
        if pending.hold > 0 and self.parked.has_room(client_id):
            events, alive = await self._hold(client_id, plan.writes, pending.hold)
            advice = self.advice
        else:  # not to be held, or this process holds all it may: the client polls meanwhile
            events, alive = await self._take_now(client_id, plan.writes)
            advice = self.polling_advice if pending.hold > 0 else self.advice
        return [*plan.replies, *connect_replies(pending, events, alive=alive, advice=advice)]

    async def _take_now(self, client_id: str, writes: list) -> tuple[list[str], bool]:
        self.parked.release(client_id)
        results = await self._execute(
            lambda p: self.commands.write(p, writes, self.options.cometd_session_timeout),
            lambda p: self.commands.take(p, client_id, release_token=self.parked.new_token()))
        return self.commands.taken(results)

    async def _hold(self, client_id: str, writes: list, hold: float) -> tuple[list[str], bool]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + hold
        ttl = self.options.cometd_session_timeout
        with self.parked.park(client_id) as poll:
            results = await self._execute(
                lambda p: self.commands.write(p, writes, ttl),
                lambda p: self.commands.take(p, client_id, release_token=poll.token))
            events, alive = self.commands.taken(results)
            while not events and alive and not poll.released:
                if not await poll.wait(deadline - loop.time()) or poll.released:
                    break
                events, alive = self.commands.taken(
                    await self._execute(lambda p: self.commands.take(p, client_id)))
        return events, alive


# --- HTTP ---------------------------------------------------------------------------

_SERVER = web.AppKey("cometd_server", CometdServer)


def _json(status: int, body, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(status=status, body=json.dumps(body).encode(), content_type="application/json",
                        headers=headers)


def _error(error: GmsError) -> web.Response:
    status, body, headers = http.error_response(error)
    return _json(status, body, headers)


async def _send(request: web.Request, body: list[dict]) -> web.StreamResponse:
    """A 200 reply written within WRITE_SECONDS; a client that does not read it loses
    its connection instead of holding the reply in memory."""
    payload = json.dumps(body).encode()
    response = web.StreamResponse(headers={"Content-Type": "application/json"})
    response.content_length = len(payload)
    try:
        async with asyncio.timeout(WRITE_SECONDS):
            await response.prepare(request)
            await response.write(payload)
            await response.write_eof()
    except TimeoutError:
        if request.transport is not None:
            request.transport.abort()
    return response


async def _body(request: web.Request) -> bytes:
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        raise http.body_too_large(MAX_BODY_BYTES)
    try:
        async with asyncio.timeout(BODY_SECONDS):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise http.body_too_large(MAX_BODY_BYTES) from None
    except TimeoutError:
        raise RequestTimeout(f"the request body did not arrive within {BODY_SECONDS:g} s") from None


async def cometd(request: web.Request) -> web.StreamResponse:
    server = request.app[_SERVER]
    try:
        address = client_address(request.remote, request.headers.getall("X-Forwarded-For", []),
                                 server.trusted_proxies)
        caller = await asyncio.to_thread(http.caller, server.registry, request.headers, address)
        body = await _body(request)
    except GmsError as error:
        return _error(error)
    try:
        messages = messages_from_body(request.content_type, body)
    except MalformedBayeux as exc:
        return _json(400, malformed_reply(str(exc)))
    try:
        replies = await server.exchange(Identity(caller.app, caller.user), messages)
    except redis.RedisError as exc:
        log.warning("CometD request failed on Redis: %s", exc)
        return _json(503, unavailable_reply(messages))
    return await _send(request, replies)


async def health(request: web.Request) -> web.Response:
    server = request.app[_SERVER]
    up = server.listener.subscribed
    return _json(200 if up else 503, {"status": "ok" if up else "unavailable", "parked": len(server.parked),
                                      "max_parked": server.parked.limit})


@web.middleware
async def _json_errors(request: web.Request, handler):
    """Unknown paths and wrong methods answer JSON, as under /genesys on the ingress."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return _json(exc.status, {"error": exc.reason.lower().replace(" ", "_"), "message": exc.reason},
                     {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None)


def build_app(settings: Settings) -> web.Application:
    config = load_config(settings.home)
    guard = build_guard(connect(settings.require_redis_url(), retries=0), settings.key_prefix, settings)
    registry = Registry(settings.database_url, config, guard=guard, credential_ttl=settings.credential_cache_seconds,
                        credential_cache_size=settings.auth_cache_size,
                        refresh_seconds=settings.directory_refresh_seconds)
    pool = aioredis.BlockingConnectionPool.from_url(
        settings.require_redis_url(), max_connections=REDIS_CONNECTIONS, timeout=5,
        socket_connect_timeout=2, socket_timeout=5, health_check_interval=30)
    server = CometdServer(settings, config.options, registry, aioredis.Redis(connection_pool=pool))
    app = web.Application(client_max_size=MAX_BODY_BYTES, middlewares=[_json_errors])
    app[_SERVER] = server
    for path in PATHS:
        app.router.add_post(path, cometd)
    app.router.add_get("/health", health)

    async def listen(_app):
        task = asyncio.create_task(server.listener.run(), name="cometd-wake-listener")
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await server.redis.aclose()
        await pool.disconnect()

    async def release_parked(_app):
        server.parked.release_all()

    app.cleanup_ctx.append(listen)
    app.on_shutdown.append(release_parked)
    return app


def serve(settings: Settings, host: str, port: int) -> None:
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    web.run_app(build_app(settings), host=host, port=port, handler_cancellation=True, shutdown_timeout=5,
                access_log=None, backlog=2048, print=lambda *_: log.info("CometD server on http://%s:%d", host, port))
