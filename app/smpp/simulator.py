"""An SMSC simulator: a real SMPP 3.4 server for tests, demos and benchmarks.

What this module promises:

* ``SmscSimulator(config)`` listens on ``config.host:config.port`` (127.0.0.1
  by default; port 0 picks a free one, read back from ``sim.port``) and serves
  bind_transmitter/receiver/transceiver, submit_sm, enquire_link and unbind, and
  accepts deliver_sm_resp and generic_nack. Bind credentials are checked against
  ``config.credentials`` (none configured: anyone may bind): an unknown
  system_id gets ESME_RBINDFAIL, a wrong password ESME_RINVPASWD.
* Each accepted submit_sm gets its own SMSC message id, rendered per
  ``config.id_format``: ``hex`` ("18f3a1b2c3d4e"), ``decimal`` or
  ``padded-decimal`` (20 digits), all of one underlying number that starts from
  the clock, so ids do not repeat across restarts of the simulator.
* Concatenated messages are reassembled (UDH IEI 0x00 or 0x08, SAR TLVs,
  message_payload), keyed by system_id, addresses and reference, so segments may
  arrive over different binds of one account. A whole message is appended to
  ``sim.messages`` as a ``ReceivedMessage`` with its decoded text; see
  ``app.smpp.short_message`` for the data codings read.
* When registered_delivery asks for it (1: always, 2: on failure only), each
  segment gets its own receipt ``config.dr_delay`` seconds later: a deliver_sm
  with esm_class 0x04, text ``id:<ID> sub:001 dlvrd:001 submit date:YYMMDDhhmm
  done date:YYMMDDhhmm stat:DELIVRD err:000 text:<first 20 chars>`` (UTC dates),
  and the TLVs receipted_message_id and message_state. The outcome is drawn
  from ``config.outcome_weights``.
* Every deliver_sm (receipt or MO) is kept until its deliver_sm_resp says
  ESME_ROK: one answered with an error is sent again after ``dr_delay``; one
  whose connection dropped unanswered, or that finds no receiver or transceiver
  of its system_id bound, waits in order for the next one to bind.
* Faults, each off by default: ``throttle_per_second`` answers ESME_RTHROTTLED
  above that rate (token bucket holding one second's worth, shared by all
  binds); ``response_delay_ms`` delays every response; ``drop_after_submits``
  closes the connection on its M-th submit_sm, which is neither answered nor
  stored (so a client's retry never makes a duplicate); destinations starting
  with ``reject_destination_prefix`` get ``reject_status`` (ESME_RINVDSTADR unless
  set: any command_status, to see how a carrier's refusal reaches the client).
* With ``journal_path`` (``--journal FILE``), every whole message received is also
  appended to that file as one JSON line (time, source, destination, text, SMSC ids),
  written to the OS before its last submit_sm_resp is sent: the journal survives the
  simulator being killed and restarted, so a fault test counts what reached the SMSC,
  duplicates included.
* ``await sim.inject_mo(source, destination, text)`` sends an MO deliver_sm
  (esm_class 0) to a bound receiver/transceiver, several with UDH when the text
  needs more than one segment.
* Both smpp34 quirks recorded in DESIGN.md are avoided: unbind is always
  answered with unbind_resp before the socket closes, and deliver_sm_resp is
  accepted from a receiver bind.
* Control channel for a running simulator (``smsagg smsc-sim inject-mo``): a
  TCP port on the same host (``control_port``; default the SMPP port + 1) that
  reads one JSON object per line and answers one per line::

      {"command": "inject_mo", "source": "33612345678", "destination": "3900",
       "text": "STOP", "data_coding": null}
      {"ok": true, "segments": 1}     or     {"ok": false, "error": "..."}

  ``inject_mo_via_control()`` is the blocking client for it.
* ``serve_simulator(config)`` runs until cancelled; ``run_simulator_forever``
  blocks and stops cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import signal
import socket
import time
from collections import defaultdict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from app.smpp.pdu import (
    INTERFACE_VERSION_34,
    BindPdu,
    BindReceiver,
    BindTransceiver,
    BindTransmitter,
    CommandStatus,
    DeliverSm,
    DeliverSmResp,
    EnquireLink,
    EsmClass,
    FramingError,
    GenericNack,
    MessageState,
    Pdu,
    SubmitSm,
    Tag,
    Unbind,
)
from app.smpp.short_message import Concatenation, choose_data_coding, decode_text, segment_text, split_concatenation
from app.smpp.stream import PduStream

log = logging.getLogger(__name__)

SIMULATOR_SYSTEM_ID = "SMSCSIM"
_MAX_SEQUENCE = 0x7FFF_FFFF
_RECEIPT_TEXT_CHARS = 20
_CONTROL_LINE_LIMIT = 64 * 1024


class IdFormat(StrEnum):
    HEX = "hex"
    DECIMAL = "decimal"
    PADDED_DECIMAL = "padded-decimal"


class ReceiptOutcome(StrEnum):
    """The stat: word of a receipt, with its message_state and err: code."""

    DELIVRD = "DELIVRD"
    UNDELIV = "UNDELIV"
    EXPIRED = "EXPIRED"
    REJECTD = "REJECTD"

    @property
    def message_state(self) -> MessageState:
        return _MESSAGE_STATES[self]

    @property
    def error_code(self) -> str:
        return "000" if self is ReceiptOutcome.DELIVRD else "001"


_MESSAGE_STATES = {
    ReceiptOutcome.DELIVRD: MessageState.DELIVERED,
    ReceiptOutcome.EXPIRED: MessageState.EXPIRED,
    ReceiptOutcome.UNDELIV: MessageState.UNDELIVERABLE,
    ReceiptOutcome.REJECTD: MessageState.REJECTED,
}


@dataclass(frozen=True)
class SimulatorConfig:
    host: str = "127.0.0.1"
    port: int = 2775
    control_port: int | None = None  # None: port + 1, or a free port when port is 0
    credentials: dict[str, str] = field(default_factory=dict)  # system_id -> password
    dr_delay: float = 1.0
    outcome_weights: dict[str, float] = field(default_factory=lambda: {"DELIVRD": 1.0})
    throttle_per_second: float = 0.0
    response_delay_ms: float = 0.0
    drop_after_submits: int = 0
    reject_destination_prefix: str = ""
    reject_status: int = CommandStatus.ESME_RINVDSTADR
    id_format: IdFormat = IdFormat.HEX
    random_seed: int | None = None
    journal_path: str | None = None  # append one JSON line per whole message received

    def __post_init__(self) -> None:
        """Refuse a bad config at start-up rather than misbehave later."""
        object.__setattr__(self, "id_format", IdFormat(self.id_format))
        unknown = set(self.outcome_weights) - {outcome.value for outcome in ReceiptOutcome}
        if unknown or any(weight < 0 for weight in self.outcome_weights.values()):
            raise ValueError(f"outcome_weights: unknown outcome or negative weight in {self.outcome_weights}")
        if sum(self.outcome_weights.values()) <= 0:
            raise ValueError("outcome_weights: at least one outcome needs a positive weight")

    @property
    def resolved_control_port(self) -> int:
        if self.control_port is not None:
            return self.control_port
        return self.port + 1 if self.port else 0


@dataclass(frozen=True, slots=True)
class ReceivedMessage:
    """A whole message as the simulated SMSC received it (all segments joined)."""

    system_id: str
    source: str
    destination: str
    text: str
    data_coding: int
    esm_class: int
    registered_delivery: int
    segments: int
    smsc_message_ids: tuple[str, ...]
    received_at: datetime


class NoReceiverBound(RuntimeError):
    """inject_mo found no receiver or transceiver bind to deliver to."""


class ControlError(RuntimeError):
    """The simulator's control channel refused a command."""


class _MessageIds:
    def __init__(self, id_format: IdFormat):
        self._format = id_format
        self._last = time.time_ns() // 1000

    def next(self) -> str:
        self._last += 1
        if self._format is IdFormat.HEX:
            return f"{self._last:x}"
        if self._format is IdFormat.PADDED_DECIMAL:
            return f"{self._last:020d}"
        return str(self._last)


class _TokenBucket:
    """rate tokens per second, holding at most one second's worth."""

    def __init__(self, rate: float, now: float):
        self._rate = rate
        self._tokens = rate
        self._updated = now

    def take(self, now: float) -> bool:
        self._tokens = min(self._rate, self._tokens + (now - self._updated) * self._rate)
        self._updated = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


@dataclass(slots=True)
class _Segment:
    user_data: bytes
    smsc_message_id: str


@dataclass(frozen=True, slots=True)
class _Receipt:
    """What a receipt needs, captured at submit time, rendered when it is due."""

    system_id: str
    smsc_message_id: str
    submit_source: str
    submit_destination: str
    submitted_at: datetime
    outcome: ReceiptOutcome
    text: str

    def to_deliver_sm(self, done_at: datetime) -> DeliverSm:
        stat = self.outcome.value
        delivered = "001" if self.outcome is ReceiptOutcome.DELIVRD else "000"
        body = (
            f"id:{self.smsc_message_id} sub:001 dlvrd:{delivered} submit date:{_receipt_date(self.submitted_at)} "
            f"done date:{_receipt_date(done_at)} stat:{stat} err:{self.outcome.error_code} "
            f"text:{self.text[:_RECEIPT_TEXT_CHARS]}"
        )
        return DeliverSm(
            source_addr=self.submit_destination,
            destination_addr=self.submit_source,
            esm_class=EsmClass.DELIVERY_RECEIPT,
            short_message=body.encode("ascii", errors="replace"),
            tlvs={Tag.RECEIPTED_MESSAGE_ID: self.smsc_message_id, Tag.MESSAGE_STATE: self.outcome.message_state},
        )


def _receipt_date(moment: datetime) -> str:
    return moment.strftime("%y%m%d%H%M")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _wants_receipt(registered_delivery: int, outcome: ReceiptOutcome) -> bool:
    """SMSC delivery receipt bits (spec 5.2.17): 1 always, 2 on failure only."""
    requested = registered_delivery & 0x03
    return requested == 1 or (requested == 2 and outcome is not ReceiptOutcome.DELIVRD)


class _SmscSession:
    """One ESME connection: its bind state and the PDUs it sends us."""

    def __init__(self, simulator: SmscSimulator, stream: PduStream):
        self._simulator = simulator
        self.stream = stream
        self.system_id = ""
        self.bound_as: type[BindPdu] | None = None
        self.submits = 0
        self.unacknowledged: dict[int, DeliverSm] = {}
        self._last_sequence = 0

    @property
    def can_submit(self) -> bool:
        return self.bound_as in (BindTransmitter, BindTransceiver)

    @property
    def can_receive(self) -> bool:
        return self.bound_as in (BindReceiver, BindTransceiver)

    def next_sequence(self) -> int:
        self._last_sequence = self._last_sequence % _MAX_SEQUENCE + 1
        return self._last_sequence

    def send_request(self, pdu: DeliverSm) -> None:
        """Send, and keep it until its deliver_sm_resp says ESME_ROK."""
        pdu.sequence_number = self.next_sequence()
        self.unacknowledged[pdu.sequence_number] = pdu
        self.stream.send(pdu)

    async def run(self) -> None:
        try:
            while (pdus := await self.stream.receive()) is not None:
                for pdu in pdus:
                    if self.stream.is_closing:
                        return
                    self._handle(pdu)
                await self.stream.drain()
        except (OSError, FramingError) as exc:
            log.info("smsc-sim %s: connection ends: %s", self.stream.peer, exc)
        finally:
            self.bound_as = None
            await self.stream.close()

    def _handle(self, pdu: Pdu) -> None:
        if isinstance(pdu, BindPdu):
            self._bind(pdu)
        elif isinstance(pdu, SubmitSm):
            self._simulator.handle_submit(self, pdu)
        elif isinstance(pdu, EnquireLink):
            self.stream.send(pdu.response())
        elif isinstance(pdu, Unbind):
            self._unbind(pdu)
        elif isinstance(pdu, DeliverSmResp):
            self._acknowledged(pdu)
        elif not pdu.is_response:
            self.stream.send(GenericNack(sequence_number=pdu.sequence_number,
                                         command_status=CommandStatus.ESME_RINVCMDID))

    def _bind(self, bind: BindPdu) -> None:
        status = CommandStatus.ESME_RALYBND if self.bound_as else self._simulator.check_credentials(bind)
        self.stream.send(bind.response(command_status=status, system_id=SIMULATOR_SYSTEM_ID,
                                       tlvs={Tag.SC_INTERFACE_VERSION: INTERFACE_VERSION_34}))
        if status == CommandStatus.ESME_ROK:
            self.system_id, self.bound_as = bind.system_id, type(bind)
            log.info("smsc-sim %s: %s bound as %s", self.stream.peer, bind.system_id, type(bind).__name__)
            self._simulator.session_bound(self)

    def _acknowledged(self, resp: DeliverSmResp) -> None:
        """Accepted from receivers and transceivers alike (smpp34 nacks it on a receiver)."""
        delivered = self.unacknowledged.pop(resp.sequence_number, None)
        if delivered is not None:
            self._simulator.delivery_answered(self.system_id, delivered, resp.command_status)

    def _unbind(self, unbind: Unbind) -> None:
        """Answer before closing: an ESME such as Kannel otherwise waits 30 s (smpp34's bug)."""
        self.stream.send(unbind.response())
        self.bound_as = None
        self.stream.close_soon()


class SmscSimulator:
    """The simulated SMSC: listeners, sessions, received messages and pending receipts."""

    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig()
        self.messages: list[ReceivedMessage] = []
        self.submit_count = 0
        self.acknowledged_deliveries = 0
        self.port = 0
        self.control_port = 0
        self._random = random.Random(self.config.random_seed)
        self._message_ids = _MessageIds(self.config.id_format)
        self._throttle: _TokenBucket | None = None
        self._sessions: set[_SmscSession] = set()
        self._partial: dict[tuple[Any, ...], dict[int, _Segment]] = {}
        self._outbox: defaultdict[str, deque[DeliverSm]] = defaultdict(deque)
        self._timers: set[asyncio.TimerHandle] = set()
        self._message_arrived = asyncio.Event()
        # Line-buffered: each line reaches the file (the OS) before the submit_sm_resp goes
        # out, so a simulator killed -9 still has every message it acknowledged.
        self._journal = open(self.config.journal_path, "a", encoding="utf-8", buffering=1) \
            if self.config.journal_path else None
        self._mo_reference = 0
        self._servers: list[asyncio.Server] = []

    # --- life cycle ---

    async def start(self) -> None:
        config = self.config
        smpp = await asyncio.start_server(self._serve_smpp, config.host, config.port)
        self._servers = [smpp]
        try:
            control = await asyncio.start_server(self._serve_control, config.host, config.resolved_control_port,
                                                 limit=_CONTROL_LINE_LIMIT)
        except OSError:
            await self.stop()
            raise
        self._servers.append(control)
        self.port = smpp.sockets[0].getsockname()[1]
        self.control_port = control.sockets[0].getsockname()[1]
        if config.throttle_per_second:
            self._throttle = _TokenBucket(config.throttle_per_second, asyncio.get_running_loop().time())
        log.info("smsc-sim listening on %s:%d (control port %d)", config.host, self.port, self.control_port)

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        await asyncio.gather(*(session.stream.close() for session in list(self._sessions)))
        for server in self._servers:
            await server.wait_closed()
        if self._journal is not None:
            self._journal.close()

    async def __aenter__(self) -> SmscSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _serve_smpp(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = _SmscSession(self, PduStream(reader, writer))
        self._sessions.add(session)
        try:
            await session.run()
        finally:
            self._sessions.discard(session)
            for pdu in session.unacknowledged.values():
                self._deliver(session.system_id, pdu)

    # --- helpers for tests ---

    async def wait_for_messages(self, count: int, timeout: float) -> list[ReceivedMessage]:
        """The first count messages, once they have arrived; TimeoutError otherwise."""
        try:
            async with asyncio.timeout(timeout):
                while len(self.messages) < count:
                    self._message_arrived.clear()
                    await self._message_arrived.wait()
        except TimeoutError:
            raise TimeoutError(f"{len(self.messages)} of {count} messages arrived within {timeout}s") from None
        return self.messages[:count]

    # --- binds ---

    def check_credentials(self, bind: BindPdu) -> CommandStatus:
        credentials = self.config.credentials
        if not credentials:
            return CommandStatus.ESME_ROK
        if bind.system_id not in credentials:
            return CommandStatus.ESME_RBINDFAIL
        if credentials[bind.system_id] != bind.password:
            return CommandStatus.ESME_RINVPASWD
        return CommandStatus.ESME_ROK

    def session_bound(self, session: _SmscSession) -> None:
        """A new receiver gets the deliver_sm that waited for one, oldest first."""
        waiting = self._outbox.get(session.system_id)
        while session.can_receive and waiting:
            session.send_request(waiting.popleft())

    def delivery_answered(self, system_id: str, pdu: DeliverSm, status: int) -> None:
        """An ESME that could not take a deliver_sm gets it again after dr_delay, like a real SMSC."""
        if status == CommandStatus.ESME_ROK:
            self.acknowledged_deliveries += 1
        else:
            self._call_later(self.config.dr_delay, self._deliver, system_id, pdu)

    # --- submit_sm ---

    def handle_submit(self, session: _SmscSession, submit: SubmitSm) -> None:
        self.submit_count += 1
        session.submits += 1
        if self.config.drop_after_submits and session.submits % self.config.drop_after_submits == 0:
            log.info("smsc-sim %s: dropping the connection (drop_after_submits)", session.stream.peer)
            session.stream.close_soon()
            return
        status, message_id = self._accept_or_refuse(session, submit)
        self._respond(session, submit.response(command_status=status, message_id=message_id))

    def _accept_or_refuse(self, session: _SmscSession, submit: SubmitSm) -> tuple[int, str]:
        if not session.can_submit:
            return CommandStatus.ESME_RINVBNDSTS, ""
        if self._throttle and not self._throttle.take(asyncio.get_running_loop().time()):
            return CommandStatus.ESME_RTHROTTLED, ""
        prefix = self.config.reject_destination_prefix
        if prefix and submit.destination_addr.startswith(prefix):
            return self.config.reject_status, ""
        return CommandStatus.ESME_ROK, self._accept(session.system_id, submit)

    def _respond(self, session: _SmscSession, resp: Pdu) -> None:
        delay = self.config.response_delay_ms / 1000
        if delay:
            self._call_later(delay, session.stream.send, resp)
        else:
            session.stream.send(resp)

    def _accept(self, system_id: str, submit: SubmitSm) -> str:
        message_id = self._message_ids.next()
        concatenation, user_data = split_concatenation(submit)
        self._schedule_receipt(system_id, submit, message_id, user_data)
        segment = _Segment(user_data, message_id)
        if concatenation is None:
            self._record(system_id, submit, [segment])
        else:
            self._collect(system_id, submit, concatenation, segment)
        return message_id

    def _collect(self, system_id: str, submit: SubmitSm, concatenation: Concatenation, segment: _Segment) -> None:
        key = (system_id, submit.source_addr, submit.destination_addr, concatenation.reference, concatenation.total)
        parts = self._partial.setdefault(key, {})
        parts[concatenation.sequence] = segment
        if len(parts) == concatenation.total:
            del self._partial[key]
            self._record(system_id, submit, [parts[number] for number in sorted(parts)])

    def _record(self, system_id: str, submit: SubmitSm, segments: list[_Segment]) -> None:
        """Join the user data before decoding, so a character split across segments survives."""
        user_data = b"".join(segment.user_data for segment in segments)
        message = ReceivedMessage(
            system_id=system_id,
            source=submit.source_addr,
            destination=submit.destination_addr,
            text=decode_text(user_data, submit.data_coding),
            data_coding=submit.data_coding,
            esm_class=submit.esm_class,
            registered_delivery=submit.registered_delivery,
            segments=len(segments),
            smsc_message_ids=tuple(segment.smsc_message_id for segment in segments),
            received_at=_utcnow(),
        )
        self.messages.append(message)
        if self._journal is not None:
            self._journal.write(json.dumps({"at": message.received_at.timestamp(), "source": message.source,
                                            "destination": message.destination, "text": message.text,
                                            "smsc_ids": list(message.smsc_message_ids)}) + "\n")
        self._message_arrived.set()

    # --- receipts ---

    def _schedule_receipt(self, system_id: str, submit: SubmitSm, message_id: str, user_data: bytes) -> None:
        outcome = self._draw_outcome()
        if not _wants_receipt(submit.registered_delivery, outcome):
            return
        receipt = _Receipt(
            system_id=system_id,
            smsc_message_id=message_id,
            submit_source=submit.source_addr,
            submit_destination=submit.destination_addr,
            submitted_at=_utcnow(),
            outcome=outcome,
            text=decode_text(user_data, submit.data_coding),
        )
        self._call_later(self.config.dr_delay, self._send_receipt, receipt)

    def _draw_outcome(self) -> ReceiptOutcome:
        weights = self.config.outcome_weights
        if len(weights) == 1:
            return ReceiptOutcome(next(iter(weights)))
        return ReceiptOutcome(self._random.choices(list(weights), weights=list(weights.values()))[0])

    def _send_receipt(self, receipt: _Receipt) -> None:
        self._deliver(receipt.system_id, receipt.to_deliver_sm(_utcnow()))

    def _deliver(self, system_id: str, pdu: DeliverSm) -> None:
        """Send to a receiver of system_id, or queue behind what already waits for one."""
        session = self._receiver_for(system_id)
        if session is None or self._outbox.get(system_id):
            self._outbox[system_id].append(pdu)
        else:
            session.send_request(pdu)

    def _receiver_for(self, system_id: str | None) -> _SmscSession | None:
        """A bound receiver or transceiver (of system_id, if given), chosen at random to spread load."""
        receivers = [s for s in self._sessions if s.can_receive and system_id in (None, s.system_id)]
        return self._random.choice(receivers) if receivers else None

    def _call_later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        """loop.call_later, remembered so stop() can cancel what has not fired."""
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = asyncio.get_running_loop().call_later(delay, fire)
        self._timers.add(handle)

    # --- mobile-originated messages ---

    async def inject_mo(self, source: str, destination: str, text: str, data_coding: int | None = None) -> int:
        """Send text as an MO to a bound receiver; returns how many deliver_sm it took."""
        session = self._receiver_for(None)
        if session is None:
            raise NoReceiverBound("no receiver or transceiver is bound to take the MO")
        coding = choose_data_coding(text) if data_coding is None else data_coding
        self._mo_reference = (self._mo_reference + 1) % 256
        bodies = segment_text(text, coding, self._mo_reference)
        esm_class = EsmClass.UDH_INDICATOR if len(bodies) > 1 else 0
        for body in bodies:
            session.send_request(DeliverSm(source_addr=source, destination_addr=destination,
                                           esm_class=esm_class, data_coding=coding, short_message=body))
        await session.stream.drain()
        return len(bodies)

    # --- control channel ---

    async def _serve_control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                writer.write(json.dumps(await self._control_command(line)).encode() + b"\n")
                await writer.drain()
        except (OSError, ValueError) as exc:
            log.info("smsc-sim control connection ends: %s", exc)
        finally:
            writer.close()

    async def _control_command(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            if request.get("command") != "inject_mo":
                raise ValueError(f"unknown command {request.get('command')!r}; known: inject_mo")
            segments = await self.inject_mo(str(request["source"]), str(request["destination"]),
                                            str(request["text"]), request.get("data_coding"))
        except (ValueError, KeyError, AttributeError, NoReceiverBound) as exc:
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        return {"ok": True, "segments": segments}


async def serve_simulator(config: SimulatorConfig) -> None:
    """Run the simulator until this coroutine is cancelled."""
    async with SmscSimulator(config):
        await asyncio.Event().wait()


def run_simulator_forever(config: SimulatorConfig) -> None:
    """Blocking entry point for the CLI; SIGINT or SIGTERM stop it cleanly."""
    asyncio.run(_serve_until_signalled(config))


async def _serve_until_signalled(config: SimulatorConfig) -> None:
    serving = asyncio.create_task(serve_simulator(config))
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, serving.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    log.info("smsc-sim stopped")


def inject_mo_via_control(host: str, port: int, source: str, destination: str, text: str,
                          data_coding: int | None = None, timeout: float = 5.0) -> int:
    """Ask a running simulator to inject an MO; returns the segment count or raises ControlError."""
    request = {"command": "inject_mo", "source": source, "destination": destination, "text": text,
               "data_coding": data_coding}
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(json.dumps(request).encode() + b"\n")
        reply = json.loads(connection.makefile("rb").readline() or b"{}")
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "the simulator closed the control connection"))
    return int(reply["segments"])
