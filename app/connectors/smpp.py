"""The SMPP 3.4 carrier connector: a pool of long-lived, windowed binds
(:mod:`app.smpp.client`) living on the process's background loop.

The binds are opened on first use and kept: bind, window, enquire_link and
reconnection are the client's business. Each segment is one submit_sm; segments of
one message go out concurrently within the window. A bind that is down answers
``CONNECTION_LOST`` at once, so a task never hangs on a dead carrier.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from app.connectors.base import CONNECTION_LOST, SegmentResult
from app.connectors.loop import BackgroundLoop
from app.domain.outbound import OutboundSegment, Submission
from app.smpp.client import BindMode, SmppClientConfig, SmppClientError, SmppPool
from app.smpp.pdu import DeliverSm, SubmitSm, Tag

log = logging.getLogger(__name__)

DeliverHandler = Callable[[DeliverSm], Awaitable[None]]
_TLV_TAGS = {
    "sar_msg_ref_num": Tag.SAR_MSG_REF_NUM,
    "sar_total_segments": Tag.SAR_TOTAL_SEGMENTS,
    "sar_segment_seqnum": Tag.SAR_SEGMENT_SEQNUM,
    "message_payload": Tag.MESSAGE_PAYLOAD,
    "dest_addr_subunit": 0x0005,
}


def client_config(settings: dict[str, Any]) -> SmppClientConfig:
    """The client configuration from a carrier's stored settings."""
    return SmppClientConfig(
        host=settings["host"],
        port=int(settings["port"]),
        system_id=settings["system_id"],
        password=settings.get("password", ""),
        system_type=settings.get("system_type", ""),
        bind_mode=BindMode(settings.get("bind_mode", BindMode.TRANSCEIVER)),
        window=int(settings.get("window", 10)),
        response_timeout=float(settings.get("response_timeout", 10.0)),
        enquire_link_interval=float(settings.get("enquire_link_interval", 30.0)),
    )


def submit_sm_for(submission: Submission, segment: OutboundSegment) -> SubmitSm:
    return SubmitSm(
        source_addr_ton=submission.source_ton,
        source_addr_npi=submission.source_npi,
        source_addr=submission.source,
        dest_addr_ton=1,
        dest_addr_npi=1,
        destination_addr=submission.destination,
        esm_class=segment.esm_class,
        registered_delivery=submission.registered_delivery,
        data_coding=segment.data_coding,
        short_message=segment.short_message,
        tlvs={_TLV_TAGS[name]: value for name, value in segment.tlvs.items()},
    )


class SmppConnector:
    def __init__(self, settings: dict[str, Any], loop: BackgroundLoop, on_deliver: DeliverHandler | None):
        self.config = client_config(settings)
        self.binds = int(settings.get("binds", 1))
        self._loop = loop
        self._on_deliver = on_deliver
        self._pool: SmppPool | None = None
        self._starting: asyncio.Lock | None = None

    def connect(self) -> None:
        """Start binding now, without waiting: receipts and MO flow over a bind even
        before this process has submitted anything (a failure is retried at the next
        submit)."""
        asyncio.run_coroutine_threadsafe(self._bind_quietly(), self._loop.loop)

    async def _bind_quietly(self) -> None:
        try:
            await self._bound_pool()
        except (OSError, TimeoutError, SmppClientError) as exc:
            log.warning("smpp %s:%d: bind at start failed: %s", self.config.host, self.config.port, exc)

    def bind_status(self) -> tuple[int, int]:
        """(binds up, binds configured) in this process, for its heartbeat."""
        pool = self._pool
        up = sum(1 for client in pool.clients if client.is_bound) if pool is not None else 0
        return up, self.binds

    def submit(self, submission: Submission) -> list[SegmentResult]:
        return self.submit_many([submission])[0]

    def submit_many(self, submissions: list[Submission]) -> list[list[SegmentResult]]:
        """Every segment of the batch goes out at once; the binds' windows pace them."""
        pdus = sum(len(s.segments) for s in submissions)
        rounds = 1 + pdus // max(1, self.config.window * self.binds)
        timeout = self.config.connect_timeout + 5 + self.config.response_timeout * rounds
        try:
            return self._loop.run(self._submit_batch(submissions), timeout)
        except TimeoutError:  # a full window that never drained: the outcome is unknown
            return [[SegmentResult(s.seq, CONNECTION_LOST, detail=f"no answer within {timeout}s")
                     for s in submission.segments] for submission in submissions]

    async def _submit_batch(self, submissions: list[Submission]) -> list[list[SegmentResult]]:
        return list(await asyncio.gather(*(self._submit_all(submission) for submission in submissions)))

    async def _submit_all(self, submission: Submission) -> list[SegmentResult]:
        try:
            pool = await self._bound_pool()
        except (OSError, TimeoutError, SmppClientError) as exc:
            return [SegmentResult(s.seq, CONNECTION_LOST, detail=f"bind failed: {exc}") for s in submission.segments]
        return list(await asyncio.gather(*(self._submit_one(pool, submission, s) for s in submission.segments)))

    async def _submit_one(self, pool: SmppPool, submission: Submission, segment: OutboundSegment) -> SegmentResult:
        try:
            resp = await pool.submit(submit_sm_for(submission, segment))
        except (SmppClientError, TimeoutError) as exc:
            return SegmentResult(segment.seq, CONNECTION_LOST, detail=str(exc))
        return SegmentResult(segment.seq, resp.command_status, resp.message_id or None)

    async def _bound_pool(self) -> SmppPool:
        if self._starting is None:
            self._starting = asyncio.Lock()
        async with self._starting:
            if self._pool is None:
                pool = SmppPool(self.config, self.binds, self._on_deliver)
                await asyncio.wait_for(pool.start(), self.config.connect_timeout + 5)
                self._pool = pool
            return self._pool

    def close(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            try:
                self._loop.run(pool.close(), timeout=5)
            except Exception:  # closing at shutdown: nothing left to do about it
                log.warning("smpp %s:%d: unbind failed", self.config.host, self.config.port, exc_info=True)
