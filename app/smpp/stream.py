"""A TCP connection that speaks PDUs, shared by the ESME client and the simulator.

What this module promises:

* ``PduStream.receive()`` returns the PDUs completed by the next read (many at
  once under load, which is what makes both ends fast), or ``None`` when the
  peer has closed the connection.
* A frame that cannot be decoded is answered with ``generic_nack`` carrying the
  status and sequence number the codec suggests, logged, and skipped: one bad
  PDU never ends a session. A stream that has lost its framing raises
  ``FramingError`` and the caller must drop the connection.
* ``send()`` only buffers: everything sent during one turn of the event loop
  goes out in one write, because a system call per PDU, not the codec, is what
  limits throughput. ``drain()`` and the closing methods write out what is
  buffered first, so an unbind_resp sent just before closing does leave.
  Sending on a closing connection is a silent no-op: the session's end is
  reported by ``receive()`` and handled there.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from app.smpp.pdu import MAX_COMMAND_LENGTH, GenericNack, Pdu, PduDecodeError, PduFramer, decode, encode

log = logging.getLogger(__name__)

_READ_SIZE = 64 * 1024


class PduStream:
    """Reads and writes whole PDUs over an asyncio stream pair."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        max_command_length: int = MAX_COMMAND_LENGTH,
    ):
        self._reader = reader
        self._writer = writer
        self._framer = PduFramer(max_command_length)
        self._outgoing: list[bytes] = []
        self.peer = _describe_peer(writer)

    async def receive(self) -> list[Pdu] | None:
        """The PDUs completed by the next read; None once the peer has closed."""
        frames: list[bytes] = []
        while not frames:
            data = await self._reader.read(_READ_SIZE)
            if not data:
                return None
            frames = self._framer.feed(data)
        return [pdu for pdu in map(self._decode_or_nack, frames) if pdu is not None]

    def _decode_or_nack(self, frame: bytes) -> Pdu | None:
        try:
            return decode(frame)
        except PduDecodeError as exc:
            log.warning("smpp %s: undecodable PDU answered with generic_nack: %s", self.peer, exc)
            self.send(GenericNack(sequence_number=exc.sequence_number, command_status=exc.status))
            return None

    def send(self, pdu: Pdu) -> None:
        if self._writer.is_closing():
            return
        self._outgoing.append(encode(pdu))
        if len(self._outgoing) == 1:
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        if self._outgoing and not self._writer.is_closing():
            self._writer.write(b"".join(self._outgoing))
        self._outgoing.clear()

    async def drain(self) -> None:
        self._flush()
        if not self._writer.is_closing():
            await self._writer.drain()

    @property
    def is_closing(self) -> bool:
        return self._writer.is_closing()

    def close_soon(self) -> None:
        """Start closing (buffered PDUs still go out); receive() then reports the end."""
        self._flush()
        self._writer.close()

    async def close(self) -> None:
        """Close the socket; a peer that already vanished is not an error here."""
        self.close_soon()
        with contextlib.suppress(OSError):
            await self._writer.wait_closed()


def _describe_peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if peer else "?"
