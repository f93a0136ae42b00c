"""The HTTP boundary of callbacks: POSTing a batch of signed DR/MO callbacks at once.

``CallbackSender`` is the interface; ``AiohttpCallbackSender`` the real one and
``RecordingCallbackSender`` an in-memory double for tests.

What ``AiohttpCallbackSender.send_many`` promises:

* All requests of a batch run concurrently on one event loop (``asyncio.run`` in the
  calling thread: a Celery thread or prefork child), at most ``per_account`` of them
  in flight per account, so one account's slow endpoint holds only its own slots.
* Connections are kept alive for the length of the batch and reused by its next
  requests to the same host (a TLS or TCP handshake per callback costs more CPU than
  the rest of its send); they are closed when the batch ends.
* Timeouts: connect 5 s, read 15 s (between bytes), and a 30 s ceiling per attempt so a
  server trickling bytes cannot hold a slot for ever.
* No redirect is followed (a 3xx is a non-2xx answer: retried). The response body is
  read up to ``MAX_RESPONSE_BYTES`` and ignored.
* The address policy (``app.domain.callbacks.is_forbidden_address``) is enforced
  before any connection unless private callbacks are allowed: an IP literal is checked
  as it is; a host name is resolved with the loop's ``getaddrinfo`` and refused if ANY
  of its addresses is forbidden; aiohttp then connects to exactly the addresses that
  were checked (our resolver returns them, with no DNS cache), so a second, rebound
  resolution can never be used.
* Every request yields an ``AttemptResult`` (status, latency, error); nothing raises.
  ``permanent`` marks failures that no retry can fix (a refused address, a URL that is
  not http(s)).
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from app.domain.callbacks import is_forbidden_address

CONNECT_TIMEOUT_SECONDS = 5
READ_TIMEOUT_SECONDS = 15
TOTAL_TIMEOUT_SECONDS = 30
MAX_RESPONSE_BYTES = 4096
DEFAULT_PER_ACCOUNT = 50
"""Requests of one account in flight at once in a batch (and connections to it)."""
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
    """Resolves with the loop's getaddrinfo and refuses the name if any address is
    forbidden; the checked addresses are the ones aiohttp connects to."""

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
                      ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        results: list[ResolveResult] = []
        for info_family, _, proto, _, sockaddr in infos:
            address = str(sockaddr[0])
            if is_forbidden_address(address):
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


def _precheck(url: str, allow_private: bool) -> AttemptResult | None:
    """A refusal that needs no network: not http(s), no host, a forbidden IP literal."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError as exc:
        return AttemptResult(None, 0.0, f"invalid URL: {exc}"[:500], permanent=True)
    if parts.scheme not in ("http", "https") or not host:
        return AttemptResult(None, 0.0, f"invalid URL {url[:200]!r}: not http(s)", permanent=True)
    if allow_private:
        return None
    try:
        literal = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if is_forbidden_address(literal):
        return AttemptResult(None, 0.0, f"forbidden address {host}", permanent=True)
    return None


@dataclass
class AiohttpCallbackSender:
    allow_private: bool = False
    per_account: int = DEFAULT_PER_ACCOUNT
    timeout: aiohttp.ClientTimeout = field(default_factory=lambda: aiohttp.ClientTimeout(
        total=TOTAL_TIMEOUT_SECONDS, sock_connect=CONNECT_TIMEOUT_SECONDS, sock_read=READ_TIMEOUT_SECONDS))

    def send_many(self, requests: Sequence[CallbackRequest]) -> list[AttemptResult]:
        if not requests:
            return []
        return asyncio.run(self._send_all(list(requests)))

    async def _send_all(self, requests: list[CallbackRequest]) -> list[AttemptResult]:
        connector = aiohttp.TCPConnector(
            resolver=None if self.allow_private else PolicyResolver(),
            use_dns_cache=False, limit=0, limit_per_host=0,
        )
        slots: dict[int, asyncio.Semaphore] = defaultdict(lambda: asyncio.Semaphore(self.per_account))
        async with aiohttp.ClientSession(connector=connector, timeout=self.timeout, auto_decompress=False,
                                         headers={"User-Agent": USER_AGENT}) as session:
            return list(await asyncio.gather(*(self._send_one(session, slots[r.account_id], r) for r in requests)))

    async def _send_one(self, session: aiohttp.ClientSession, slot: asyncio.Semaphore,
                        request: CallbackRequest) -> AttemptResult:
        refused = _precheck(request.url, self.allow_private)
        if refused is not None:
            return refused
        async with slot:
            started = time.perf_counter()
            try:
                async with session.post(request.url, data=request.body, headers=request.headers,
                                        allow_redirects=False) as response:
                    status = response.status
                    try:
                        await response.content.read(MAX_RESPONSE_BYTES)
                    except (TimeoutError, aiohttp.ClientError):
                        pass  # the status is what counts; the body is ignored
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
