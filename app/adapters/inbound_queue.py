"""Handing received deliver_sm PDUs (receipts, MO) to the ``inbound`` stage: items on
its list in Redis, drained in batches by ``smsagg.inbound.drain``
(:mod:`app.adapters.stage_queue`; carrier webhooks push there too).

The SMPP client acknowledges a deliver_sm only after its item is pushed, so once the
SMSC has its deliver_sm_resp the PDU is durable in Redis; nothing is parsed here (the
inbound worker does that, and keeps what it cannot parse).
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

from app.smpp.pdu import DeliverSm


def deliver_sm_item(carrier_id: int, pdu: DeliverSm) -> dict[str, Any]:
    """The PDU as JSON-able data: bytes as base64, TLVs by numeric tag."""
    return {
        "source": "smpp",
        "carrier": carrier_id,
        "received_at": time.time(),
        "pdu": {
            "source_addr": pdu.source_addr,
            "destination_addr": pdu.destination_addr,
            "esm_class": pdu.esm_class,
            "data_coding": pdu.data_coding,
            "short_message": base64.b64encode(pdu.short_message).decode("ascii"),
            "tlvs": {
                str(int(tag)): ({"b64": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value)
                for tag, value in (pdu.tlvs or {}).items()
            },
        },
    }


class InboundBatcher:
    """Collects deliver_sm items on the connector loop for up to ``window`` seconds
    (or ``max_items``) and pushes them in one round trip (onto the ``inbound`` list,
    :mod:`app.adapters.stage_queue`); every ``add`` returns only once its item is in
    Redis, so a deliver_sm is acknowledged only then."""

    def __init__(self, push: Callable[[list[dict[str, Any]]], None], window: float = 0.02, max_items: int = 200):
        self._push = push
        self.window = window
        self.max_items = max_items
        self._items: list[dict[str, Any]] = []
        self._flushed: asyncio.Future | None = None

    async def add(self, item: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        if self._flushed is None:
            self._flushed = loop.create_future()
            loop.call_later(self.window, lambda: asyncio.ensure_future(self._flush()))
        self._items.append(item)
        flushed = self._flushed
        if len(self._items) >= self.max_items:
            await self._flush()
        await flushed

    async def _flush(self) -> None:
        items, flushed = self._items, self._flushed
        if flushed is None or flushed.done():
            return
        self._items, self._flushed = [], None
        try:
            await asyncio.get_running_loop().run_in_executor(None, self._push, items)
        except Exception as exc:  # every waiter's deliver_sm is then answered with a temporary error
            flushed.set_exception(exc)
        else:
            flushed.set_result(None)
