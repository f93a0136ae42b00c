"""The HTTP boundary of callbacks: POSTing a batch of signed DR/MO callbacks at once.

``CallbackSender`` is the interface; ``AiohttpCallbackSender`` the real one and
``RecordingCallbackSender`` an in-memory double for tests.

What ``AiohttpCallbackSender.send_many`` promises:

* All requests of a batch run concurrently, at most ``per_account`` of them in flight
  per account, so one account's slow endpoint holds only its own slots. They run on
  the sender's own event loop, one background thread per sender (one sender per worker
  process, created after any fork): the calling thread (a Celery thread) waits for its
  batch, and the batches of all threads share the loop and its connections.
* Connections are kept alive across batches and reused by later requests to the same
  host (a TLS or TCP handshake per callback costs more CPU than the rest of its send);
  one idle for ``KEEPALIVE_SECONDS`` is closed, before the idle timeout of common
  servers would close it under us. ``close()`` closes them all (worker shutdown).
* A server may still close a kept-alive connection just as we reuse it. If a request
  on a reused connection fails with the connection dropped (``ServerDisconnectedError``
  or ``ClientOSError``, no answer read), it is sent once more, at once, on a fresh
  connection, within what is left of its 30 s ceiling. That request may have reached
  the server: clients de-duplicate on ``message_id`` (the seed tells them to), and
  delivery is at least once anyway. A failure on a fresh connection is never re-sent.
* Timeouts: connect 5 s, read 15 s (between bytes), and a 30 s ceiling per request
  (re-send included) so a server trickling bytes cannot hold a slot for ever.
* No redirect is followed (a 3xx is a non-2xx answer: retried). The response body is
  read up to ``MAX_RESPONSE_BYTES`` and ignored.
* The address policy (``app.domain.callbacks.is_forbidden_address``) is enforced
  before any connection unless private callbacks are allowed: an IP literal is checked
  as it is; a host name is resolved with the loop's ``getaddrinfo`` and refused if ANY
  of its addresses is forbidden; aiohttp then connects to exactly the addresses that
  were checked (our resolver returns them), so a second, rebound resolution can never
  be used. A name's checked addresses (or its refusal) are kept
  ``RESOLVE_CACHE_SECONDS`` and only ever used for new connections.
* Every request yields an ``AttemptResult`` (status, latency, error); nothing raises.
  ``permanent`` marks failures that no retry can fix (a refused address, a URL that is
  not http(s)).
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import math
import socket
import time
import weakref
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

from app.connectors.loop import BackgroundLoop
from app.domain.callbacks import is_forbidden_address

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15
TOTAL_TIMEOUT_SECONDS = 30
MAX_RESPONSE_BYTES = 4096
DEFAULT_PER_ACCOUNT = 50
"""Requests of one account in flight at once in a batch."""
KEEPALIVE_SECONDS = 4.0
"""An idle kept-alive connection is closed after this long: under the 5 s idle timeout
of common servers (Apache, Node.js), so that they rarely close one first."""
RESOLVE_CACHE_SECONDS = 60.0
USER_AGENT = "smsagg-callbacks/1"


@dataclass(frozen=True)
class CallbackRequest:
    key: str  # the callback id, for the caller
    account_id: int
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class AttemptResult:
    status_code: int | None
    latency_ms: float
    error: str | None = None
    permanent: bool = False


class CallbackSender(Protocol):
    def send_many(self, requests: Sequence[CallbackRequest]) -> list[AttemptResult]:
        """One result per request, in the same order."""


class ForbiddenAddressError(OSError):
    """The callback URL resolves to an address the policy refuses."""


class PolicyResolver(AbstractResolver):
    """Resolves with the loop's getaddrinfo and, unless ``allow_private``, refuses the
    name if any address is forbidden; the checked addresses are the ones aiohttp
    connects to. An answer (addresses or refusal) is kept ``ttl`` seconds per (host,
    port, family) and concurrent look-ups of a name share one getaddrinfo; other
    failures are not kept."""

    def __init__(self, allow_private: bool = False, ttl: float = RESOLVE_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.allow_private = allow_private
        self.ttl = ttl
        self._clock = clock
        self._answers: dict[tuple[str, int, int], tuple[float, asyncio.Future[list[ResolveResult]]]] = {}

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        key = (host, port, int(family))
        now = self._clock()
        cached = self._answers.get(key)
        if cached is None or cached[0] <= now:
            self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
            lookup = asyncio.ensure_future(self._lookup(host, port, family))
            lookup.add_done_callback(functools.partial(self._forget_failure, key))
            cached = self._answers[key] = (now + self.ttl, lookup)
        return list(await asyncio.shield(cached[1]))

    def _forget_failure(self, key: tuple[str, int, int], lookup: asyncio.Future) -> None:
        """Addresses and refusals are kept; any other failure (DNS down a moment) is not."""
        failure = lookup.exception() if not lookup.cancelled() else asyncio.CancelledError()
        if failure is not None and not isinstance(failure, ForbiddenAddressError) \
                and self._answers.get(key, (0.0, None))[1] is lookup:
            del self._answers[key]

    async def _lookup(self, host: str, port: int, family: socket.AddressFamily) -> list[ResolveResult]:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        results: list[ResolveResult] = []
        for info_family, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if not self.allow_private and is_forbidden_address(address):
                raise ForbiddenAddressError(f"{host} resolves to a forbidden address {address}")
            results.append(ResolveResult(hostname=host, host=address, port=int(sockaddr[1]), family=info_family,
                                         proto=proto, flags=socket.AI_NUMERICHOST | socket.AI_NUMERICSERV))
        if not results:
            raise OSError(f"{host} has no address")
        return results

    async def close(self) -> None:
        return None


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text}"[:500]


@functools.lru_cache(maxsize=4096)
def _target(url: str, allow_private: bool) -> URL | AttemptResult:
    """The parsed URL, or a refusal that needs no network: not http(s), no host, a
    forbidden IP literal. Callback URLs are few (one or two per account): kept."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a malformed port)
        target = URL(url)
    except ValueError as exc:
        return AttemptResult(None, 0.0, f"invalid URL: {exc}"[:500], permanent=True)
    if parts.scheme not in ("http", "https") or not host:
        return AttemptResult(None, 0.0, f"invalid URL {url[:200]!r}: not http(s)", permanent=True)
    if allow_private:
        return target
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return target
    if is_forbidden_address(literal):
        return AttemptResult(None, 0.0, f"forbidden address {host}", permanent=True)
    return target


_reused: ContextVar[list[bool] | None] = ContextVar("callback_connection_reused", default=None)
"""Set by ``_post_or_resend`` per request; ``KeptAliveConnector`` notes in it whether the
request got a connection that carried an earlier request."""


class KeptAliveConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that tells the request being sent (``_reused``) whether its
    connection comes from the pool, i.e. carried a request before."""

    def __init__(self, **options) -> None:
        super().__init__(**options)
        self._carried: weakref.WeakSet = weakref.WeakSet()

    async def connect(self, req, traces, timeout) -> aiohttp.connector.Connection:
        connection = await super().connect(req, traces, timeout)
        protocol = connection.protocol
        note = _reused.get()
        if protocol in self._carried:
            if note is not None:
                note[0] = True
        else:
            self._carried.add(protocol)
        return connection


@dataclass
class _Sessions:
    """Kept-alive connections for every request, and fresh ones for a re-send."""

    pooled: aiohttp.ClientSession
    fresh: aiohttp.ClientSession

    async def close(self) -> None:
        await self.pooled.close()
        await self.fresh.close()


@dataclass
class AiohttpCallbackSender:
    allow_private: bool = False
    per_account: int = DEFAULT_PER_ACCOUNT
    timeout: aiohttp.ClientTimeout = field(default_factory=lambda: aiohttp.ClientTimeout(
        total=TOTAL_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS))
    keepalive_seconds: float = KEEPALIVE_SECONDS
    _loop: BackgroundLoop = field(default_factory=lambda: BackgroundLoop("smsagg-callbacks"), init=False, repr=False)
    _sessions: _Sessions | None = field(default=None, init=False, repr=False)

    def send_many(self, requests: Sequence[CallbackRequest]) -> list[AttemptResult]:
        """Waits for the whole batch; every request ends within its ceiling, so a batch
        outlasting ``_ceiling`` means a stuck loop: that raises ``TimeoutError``."""
        if not requests:
            return []
        return self._loop.run(self._send_all(list(requests)), timeout=self._ceiling(requests))

    def close(self) -> None:
        """Close every kept-alive connection and stop the loop (the sender can be used again)."""
        if self._sessions is not None:
            self._loop.run(self._sessions.close(), timeout=TOTAL_TIMEOUT_SECONDS)
            self._sessions = None
        self._loop.stop()

    def _ceiling(self, requests: Sequence[CallbackRequest]) -> float:
        rounds = math.ceil(max(Counter(r.account_id for r in requests).values()) / self.per_account)
        return (rounds + 1) * (self.timeout.total or TOTAL_TIMEOUT_SECONDS)

    def _open(self) -> _Sessions:
        """On the loop: the sessions, made at first use (aiohttp binds them to the loop)."""
        if self._sessions is None:
            resolver = PolicyResolver(self.allow_private)
            self._sessions = _Sessions(
                self._session(KeptAliveConnector(resolver=resolver, use_dns_cache=False, limit=0,
                                                 keepalive_timeout=self.keepalive_seconds)),
                self._session(aiohttp.TCPConnector(resolver=resolver, use_dns_cache=False, limit=0,
                                                   force_close=True)))
        return self._sessions

    def _session(self, connector: aiohttp.TCPConnector) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=False,
                                     headers={"User-Agent": USER_AGENT})

    async def _send_all(self, requests: list[CallbackRequest]) -> list[AttemptResult]:
        """Per account, ``per_account`` lanes take its requests in turn."""
        sessions = self._open()
        results: list[AttemptResult | None] = [None] * len(requests)
        by_account: dict[int, list[int]] = defaultdict(list)
        for index, request in enumerate(requests):
            by_account[request.account_id].append(index)

        async def lane(turns: Iterator[int]) -> None:
            for index in turns:
                results[index] = await self._send_one(sessions, requests[index])

        lanes = []
        for indexes in by_account.values():
            turns = iter(indexes)
            lanes += [lane(turns) for _ in range(min(self.per_account, len(indexes)))]
        await asyncio.gather(*lanes)
        return results

    async def _send_one(self, sessions: _Sessions, request: CallbackRequest) -> AttemptResult:
        target = _target(request.url, self.allow_private)
        if isinstance(target, AttemptResult):
            return target
        started = time.perf_counter()
        try:
            status = await self._post_or_resend(sessions, target, request, started)
            return AttemptResult(status, _ms(started), None if 200 <= status <= 299 else f"HTTP {status}")
        except aiohttp.ClientConnectorError as exc:
            cause = exc.os_error if isinstance(exc.os_error, ForbiddenAddressError) else exc.__cause__
            if isinstance(cause, ForbiddenAddressError):
                return AttemptResult(None, _ms(started), str(cause)[:500], permanent=True)
            return AttemptResult(None, _ms(started), _short(exc))
        except TimeoutError as exc:
            return AttemptResult(None, _ms(started), f"timeout: {exc or 'no answer in time'}")
        except aiohttp.InvalidURL as exc:
            return AttemptResult(None, _ms(started), f"invalid URL: {exc}"[:500], permanent=True)
        except (aiohttp.ClientError, OSError, ValueError) as exc:
            return AttemptResult(None, _ms(started), _short(exc))

    async def _post_or_resend(self, sessions: _Sessions, url: URL, request: CallbackRequest, started: float) -> int:
        """The status; once more on a fresh connection if a reused one was dropped."""
        reused = [False]
        _reused.set(reused)
        try:
            return await _post(sessions.pooled, url, request)
        except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
            if not reused[0]:
                raise
        left = (self.timeout.total or TOTAL_TIMEOUT_SECONDS) - (time.perf_counter() - started)
        if left <= 0:
            raise TimeoutError("no time left to send again after a dropped kept-alive connection")
        timeout = aiohttp.ClientTimeout(total=left, sock_connect=self.timeout.sock_connect,
                                        sock_read=self.timeout.sock_read)
        return await _post(sessions.fresh, url, request, timeout=timeout)


async def _post(session: aiohttp.ClientSession, url: URL, request: CallbackRequest, **options) -> int:
    async with session.post(url, data=request.body, headers=request.headers, allow_redirects=False,
                            **options) as response:
        try:
            await response.content.read(MAX_RESPONSE_BYTES)
        except (TimeoutError, aiohttp.ClientError):
            pass  # the status is what counts; the body is ignored
        return response.status


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000.0, 3)


@dataclass
class RecordingCallbackSender:
    """In-memory double: records every request and answers from a script
    (``answers[url]`` is a list of results consumed in turn; default 200)."""

    answers: dict[str, list[AttemptResult]] = field(default_factory=dict)
    sent: list[CallbackRequest] = field(default_factory=list)

    def send_many(self, requests: Sequence[CallbackRequest]) -> list[AttemptResult]:
        results = []
        for request in requests:
            self.sent.append(request)
            script = self.answers.get(request.url)
            results.append(script.pop(0) if script else AttemptResult(200, 1.0))
        return results
