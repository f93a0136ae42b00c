"""Handing a received deliver_sm (a receipt or an MO) to the ``inbound`` queue.

The SMPP client acknowledges a deliver_sm only after this returns, so once the SMSC
has its deliver_sm_resp the PDU is durable in Redis as a task of its own; nothing is
parsed here (the inbound worker does that, and keeps what it cannot parse).
"""

from __future__ import annotations

import base64
import time
from typing import Any

import redis

from app.adapters.celery_wire import task_message
from app.domain.priorities import INBOUND_QUEUE
from app.smpp.pdu import DeliverSm

DELIVER_SM_TASK = "smsagg.inbound.deliver_sm"


def deliver_sm_fields(pdu: DeliverSm) -> dict[str, Any]:
    """The PDU as JSON-able data: bytes as base64, TLVs by numeric tag."""
    return {
        "source_addr": pdu.source_addr,
        "destination_addr": pdu.destination_addr,
        "esm_class": pdu.esm_class,
        "data_coding": pdu.data_coding,
        "short_message": base64.b64encode(pdu.short_message).decode("ascii"),
        "tlvs": {
            str(int(tag)): (
                {"b64": base64.b64encode(value).decode("ascii")} if isinstance(value, bytes) else value
            )
            for tag, value in (pdu.tlvs or {}).items()
        },
        "received_at": time.time(),
    }


def enqueue_deliver_sm(client: redis.Redis, carrier_id: int, pdu: DeliverSm) -> None:
    client.lpush(INBOUND_QUEUE, task_message(DELIVER_SM_TASK, INBOUND_QUEUE, [carrier_id, deliver_sm_fields(pdu)]))
