"""The ESME side of SMPP 3.4: a long-lived, windowed, self-healing bind.

What this module promises:

* ``SmppClient(config, on_deliver)`` binds as one transceiver, or as a
  transmitter plus a receiver (``BindMode``), with the configured system_id,
  password and system_type. ``await start()`` returns once every bind is up and
  raises ``BindRejected`` (carrying the SMSC's command_status) or ``OSError``
  if the first attempt fails, leaving nothing running.
* ``await submit(submit_sm)`` sends one submit_sm and returns its ``SubmitResp``.
  Up to ``window`` submits are outstanding at once; a caller waits only for a
  free window slot and then for its own response, never for anyone else's.
  The caller's ``SubmitSm`` is not modified: the sequence number is the client's.
  An SMSC error (throttled, invalid destination ...) is returned in
  ``command_status``, not raised: classifying it is the caller's job.
* No response within ``response_timeout`` raises ``ResponseTimeout`` (a
  ``TimeoutError``). A connection that drops, or is down, raises
  ``ConnectionLost`` at once for every outstanding and new submit. Both mean
  "the SMSC may or may not have the message": the caller retries and relies on
  its own idempotency, since SMPP cannot tell.
* A dropped connection is re-established in the background with capped,
  jittered exponential backoff; the delay starts over after a successful bind.
* The SMSC's enquire_link is answered; ours is sent every
  ``enquire_link_interval`` seconds, and a missing answer drops the connection
  (which then reconnects), so a half-open TCP link is found within one interval
  plus ``response_timeout``.
* Every deliver_sm (receipt or MO) goes to ``await on_deliver(pdu)``; the
  deliver_sm_resp is sent only after it returns, so a receipt is acknowledged
  only once the caller has taken it. If ``on_deliver`` raises, the SMSC gets
  ESME_RX_T_APPN and delivers again later.
* ``await close()`` lets running ``on_deliver`` calls finish, sends unbind, and
  waits at most ``unbind_timeout`` for unbind_resp; an SMSC that just closes the
  socket does not make it hang.
* ``SmppPool`` spreads submits over several such clients (several binds per
  carrier), each submit going to the bound client with the fewest outstanding.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from enum import StrEnum

from app.smpp.pdu import (
    BindPdu,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DeliverSm,
    EnquireLink,
    FramingError,
    GenericNack,
    Pdu,
    SubmitSm,
    Unbind,
)
from app.smpp.stream import PduStream

log = logging.getLogger(__name__)

DeliverHandler = Callable[[DeliverSm], Awaitable[None]]
_MAX_SEQUENCE = 0x7FFF_FFFF


class BindMode(StrEnum):
    TRANSCEIVER = "transceiver"
    TRANSMITTER_RECEIVER = "transmitter_receiver"


@dataclass(frozen=True, slots=True)
class SmppClientConfig:
    host: str
    port: int
    system_id: str
    password: str
    system_type: str = ""
    bind_mode: BindMode = BindMode.TRANSCEIVER
    window: int = 10
    response_timeout: float = 10.0
    enquire_link_interval: float = 30.0
    connect_timeout: float = 5.0
    reconnect_delay: float = 0.5
    reconnect_max_delay: float = 5.0  # an SMSC back after an outage is bound again within seconds
    unbind_timeout: float = 1.0


@dataclass(frozen=True, slots=True)
class SubmitResp:
    command_status: int
    message_id: str

    @property
    def accepted(self) -> bool:
        return self.command_status == CommandStatus.ESME_ROK


class SmppClientError(Exception):
    """Base of every error this module raises."""


class BindRejected(SmppClientError):
    def __init__(self, bind_name: str, command_status: int):
        super().__init__(f"{bind_name} rejected by the SMSC: {_status_name(command_status)}")
        self.command_status = command_status


class ConnectionLost(SmppClientError):
    """The bind is down; the submit may or may not have reached the SMSC. Retry."""


class ResponseTimeout(SmppClientError, TimeoutError):
    """No response in time; the submit may or may not have reached the SMSC. Retry."""


def _status_name(status: int) -> str:
    try:
        return f"{CommandStatus(status).name} (0x{status:02x})"
    except ValueError:
        return f"0x{status:08x}"


async def _ignore_deliver(pdu: DeliverSm) -> None:
    log.warning("smpp: deliver_sm from %s dropped: no on_deliver handler", pdu.source_addr)


class _SequenceNumbers:
    """1 .. 0x7FFFFFFF, then round again (SMPP 3.4 section 3.2)."""

    def __init__(self) -> None:
        self._last = 0

    def next(self) -> int:
        self._last = self._last % _MAX_SEQUENCE + 1
        return self._last


class _Link:
    """One TCP connection and its bind: requests, responses, keep-alive, requests from the SMSC."""

    def __init__(self, stream: PduStream, config: SmppClientConfig, sequences: _SequenceNumbers,
                 on_deliver: DeliverHandler):
        self._stream = stream
        self._config = config
        self._sequences = sequences
        self._on_deliver = on_deliver
        self._pending: dict[int, asyncio.Future[Pdu]] = {}
        self._deliveries: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._reader = asyncio.create_task(self._read_loop())
        self._keep_alive: asyncio.Task[None] | None = None

    @classmethod
    async def open(cls, config: SmppClientConfig, bind_class: type[BindPdu], sequences: _SequenceNumbers,
                   on_deliver: DeliverHandler) -> _Link:
        """Connect and bind; on any failure the socket is closed again."""
        async with asyncio.timeout(config.connect_timeout):
            reader, writer = await asyncio.open_connection(config.host, config.port)
        link = cls(PduStream(reader, writer), config, sequences, on_deliver)
        try:
            await link._bind(bind_class)
        except BaseException:
            await link.abort()
            raise
        return link

    async def _bind(self, bind_class: type[BindPdu]) -> None:
        config = self._config
        bind = bind_class(system_id=config.system_id, password=config.password, system_type=config.system_type)
        resp = await self.request(bind, config.response_timeout)
        if resp.command_status != CommandStatus.ESME_ROK:
            raise BindRejected(bind_class.__name__, resp.command_status)
        self._keep_alive = asyncio.create_task(self._keep_alive_loop())
        log.info("smpp %s: bound as %s", self._stream.peer, bind_class.__name__)

    @property
    def is_up(self) -> bool:
        return not self._closed.is_set()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def request(self, pdu: Pdu, timeout: float) -> Pdu:
        """Send a request and wait for the response with the same sequence number."""
        if not self.is_up:
            raise ConnectionLost(f"not bound to {self._config.host}:{self._config.port}")
        sequence = self._sequences.next()
        response = asyncio.get_running_loop().create_future()
        self._pending[sequence] = response
        self._stream.send(dataclasses.replace(pdu, sequence_number=sequence))
        try:
            async with asyncio.timeout(timeout):
                return await response
        except TimeoutError:
            raise ResponseTimeout(f"no response to {type(pdu).__name__} within {timeout}s") from None
        finally:
            self._pending.pop(sequence, None)

    async def _read_loop(self) -> None:
        reason = "closed by the SMSC"
        try:
            while (pdus := await self._stream.receive()) is not None:
                for pdu in pdus:
                    self._dispatch(pdu)
                await self._stream.drain()
        except (OSError, FramingError) as exc:
            reason = f"{type(exc).__name__}: {exc}"
        finally:
            self._lose(reason)

    def _dispatch(self, pdu: Pdu) -> None:
        if pdu.is_response:
            self._resolve(pdu)
        elif isinstance(pdu, DeliverSm):
            task = asyncio.create_task(self._deliver(pdu))
            self._deliveries.add(task)
            task.add_done_callback(self._deliveries.discard)
        elif isinstance(pdu, EnquireLink):
            self._stream.send(pdu.response())
        elif isinstance(pdu, Unbind):
            self._stream.send(pdu.response())
            self._lose("the SMSC unbound")
        else:
            self._stream.send(GenericNack(sequence_number=pdu.sequence_number,
                                          command_status=CommandStatus.ESME_RINVCMDID))

    def _resolve(self, pdu: Pdu) -> None:
        response = self._pending.get(pdu.sequence_number)
        if response is not None and not response.done():
            response.set_result(pdu)
        else:
            log.warning("smpp %s: unexpected %s seq=%d (timed out?)", self._stream.peer, type(pdu).__name__,
                        pdu.sequence_number)

    async def _deliver(self, pdu: DeliverSm) -> None:
        """Acknowledge only after the handler has the message, so none is lost in between."""
        status = CommandStatus.ESME_ROK
        try:
            await self._on_deliver(pdu)
        except Exception:
            log.exception("smpp %s: on_deliver failed; asking the SMSC to retry", self._stream.peer)
            status = CommandStatus.ESME_RX_T_APPN
        self._stream.send(pdu.response(command_status=status))

    async def _keep_alive_loop(self) -> None:
        while self.is_up:
            await asyncio.sleep(self._config.enquire_link_interval)
            try:
                await self.request(EnquireLink(), self._config.response_timeout)
            except ResponseTimeout:
                log.warning("smpp %s: enquire_link unanswered, dropping the link", self._stream.peer)
                self._lose("enquire_link unanswered")
            except ConnectionLost:
                return

    def _lose(self, reason: str) -> None:
        """Mark the link dead, fail every outstanding request and close the socket; idempotent."""
        if self._closed.is_set():
            return
        self._closed.set()
        log.info("smpp %s: link down: %s", self._stream.peer, reason)
        for response in self._pending.values():
            if not response.done():
                response.set_exception(ConnectionLost(f"connection to the SMSC lost: {reason}"))
        self._pending.clear()
        if self._keep_alive is not None:
            self._keep_alive.cancel()
        self._stream.close_soon()

    async def abort(self) -> None:
        """Close without unbinding (the link is dead or was never bound)."""
        self._lose("closed by us")
        self._reader.cancel()
        await self._stream.close()

    async def close(self) -> None:
        """Finish deliveries in hand, unbind, then close."""
        timeout = self._config.unbind_timeout
        if self._deliveries:
            await asyncio.wait(self._deliveries, timeout=timeout)
        with contextlib.suppress(SmppClientError):
            await self.request(Unbind(), timeout)
        await self.abort()


class SmppClient:
    """One logical bind to an SMSC (one or two TCP connections), kept up until close()."""

    def __init__(self, config: SmppClientConfig, on_deliver: DeliverHandler | None = None):
        self._config = config
        self._on_deliver = on_deliver or _ignore_deliver
        self._sequences = _SequenceNumbers()
        self._window = asyncio.Semaphore(config.window)
        self._submits_in_hand = 0
        self._links: dict[type[BindPdu], _Link] = {}
        self._supervisors: list[asyncio.Task[None]] = []

    @property
    def _bind_classes(self) -> tuple[type[BindPdu], ...]:
        if self._config.bind_mode is BindMode.TRANSCEIVER:
            return (BindTransceiver,)
        return (BindTransmitter, BindReceiver)

    @property
    def _submit_bind(self) -> type[BindPdu]:
        return self._bind_classes[0]

    @property
    def is_bound(self) -> bool:
        return all(cls in self._links and self._links[cls].is_up for cls in self._bind_classes)

    @property
    def submits_in_hand(self) -> int:
        """Submits waiting for a window slot or for their response: this client's load."""
        return self._submits_in_hand

    async def start(self) -> None:
        """Bind every connection once; raise (and leave nothing open) if the SMSC says no."""
        try:
            for bind_class in self._bind_classes:
                self._links[bind_class] = await self._open(bind_class)
        except BaseException:
            await self._abort_links()
            raise
        self._supervisors = [asyncio.create_task(self._keep_bound(cls)) for cls in self._bind_classes]

    async def _open(self, bind_class: type[BindPdu]) -> _Link:
        return await _Link.open(self._config, bind_class, self._sequences, self._on_deliver)

    async def _keep_bound(self, bind_class: type[BindPdu]) -> None:
        """Wait for the link to drop, then rebind with backoff, forever."""
        while True:
            await self._links[bind_class].wait_closed()
            self._links[bind_class] = await self._reconnect(bind_class)

    async def _reconnect(self, bind_class: type[BindPdu]) -> _Link:
        delay = self._config.reconnect_delay
        while True:
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            try:
                return await self._open(bind_class)
            except (OSError, TimeoutError, SmppClientError) as exc:
                log.warning("smpp %s:%d: %s failed, retrying: %s", self._config.host, self._config.port,
                            bind_class.__name__, exc)
            delay = min(delay * 2, self._config.reconnect_max_delay)

    async def submit(self, submit_sm: SubmitSm) -> SubmitResp:
        """Send one submit_sm within the window and return the SMSC's answer."""
        self._submits_in_hand += 1
        try:
            async with self._window:
                resp = await self._submit_link().request(submit_sm, self._config.response_timeout)
        finally:
            self._submits_in_hand -= 1
        return SubmitResp(resp.command_status, getattr(resp, "message_id", ""))

    def _submit_link(self) -> _Link:
        link = self._links.get(self._submit_bind)
        if link is None or not link.is_up:
            raise ConnectionLost(f"not bound to {self._config.host}:{self._config.port}; reconnecting")
        return link

    async def close(self) -> None:
        """Stop reconnecting, then unbind every link cleanly."""
        for supervisor in self._supervisors:
            supervisor.cancel()
        await asyncio.gather(*self._supervisors, return_exceptions=True)
        await asyncio.gather(*(link.close() for link in self._links.values() if link.is_up))
        await self._abort_links()

    async def _abort_links(self) -> None:
        await asyncio.gather(*(link.abort() for link in self._links.values()))
        self._links.clear()

    async def __aenter__(self) -> SmppClient:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class SmppPool:
    """Several binds to one SMSC; each submit goes to the least busy bound client."""

    def __init__(self, config: SmppClientConfig, binds: int, on_deliver: DeliverHandler | None = None):
        self._clients = [SmppClient(config, on_deliver) for _ in range(binds)]

    @property
    def clients(self) -> tuple[SmppClient, ...]:
        return tuple(self._clients)

    async def start(self) -> None:
        try:
            for client in self._clients:
                await client.start()
        except BaseException:
            await self.close()
            raise

    async def submit(self, submit_sm: SubmitSm) -> SubmitResp:
        bound = [client for client in self._clients if client.is_bound]
        if not bound:
            raise ConnectionLost("no bind of the pool is up; reconnecting")
        return await min(bound, key=lambda client: client.submits_in_hand).submit(submit_sm)

    async def close(self) -> None:
        await asyncio.gather(*(client.close() for client in self._clients))

    async def __aenter__(self) -> SmppPool:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
