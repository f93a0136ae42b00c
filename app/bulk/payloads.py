"""The task payloads of the bulk area, built the same way at the ingress (one
destination) and in the fan-out worker (many).

A per-destination payload has every key of
:class:`app.domain.accepted.AcceptedMessage` (the contract with the intake and
delivery), with these values for the bulk API:

==================  =========================================================================
``id``              smsagg's message id: the batch id (24 hex digits) + the destination's
                    index in the request (8 hex digits); the ``<message_id>`` of the reply
``client_message_id``  ``None`` (the bulk API has no client id)
``sender``          the ``source``, a numeric one without its ``+``
``receipt``/``dlr`` ``dlr=1``
``encoding``        ``"gsm7"``, ``"ucs2"`` or ``"latin1"`` as ``type`` asks; ``None`` for WAP Push
``flash``           types 1, 6, 7
``wap_push``        type 4: ``message`` is ``URL`` or ``URL text``; build the user data with
                    :func:`app.domain.wap_push.plan` / ``segment_payload`` (data_coding 0x04)
``batch_id``        the batch id; ``None`` for a single immediate destination
``api``             ``"bulk"``
``price``           credit units debited for this message (0 for a postpaid account);
                    pass it to :func:`app.bulk.credit.refund` if it never reaches a carrier
``message_type``    the request's ``type`` (0-7), for the record
``dr_mask``         only from the REST API's ``dr_mask``; no key: the account's mask
==================  =========================================================================
"""

from __future__ import annotations

import json
from typing import Any

from app.adapters import stage_queue
from app.adapters.celery_wire import task_message
from app.domain.accepted import AcceptedMessage
from app.domain.priorities import Priority

FANOUT_TASK = "smsagg.bulk.fanout"
PERSIST_TASK = "smsagg.bulk.persist"
RELEASE_TASK = "smsagg.bulk.release_due"


def message_id(batch_id: str, index: int) -> str:
    return f"{batch_id}{index:08x}"


def batch_of(message_id_: str) -> str:
    return message_id_[:24]


def destination_payload(meta: dict[str, Any], destination: str, message_id_: str, price: int) -> dict[str, Any]:
    return AcceptedMessage(
        id=message_id_,
        account_id=meta["account_id"],
        client_message_id=None,
        phone_number=destination,
        sender=meta["source"],
        message=meta["message"],
        carrier=None,
        receipt=meta["dlr"],
        app_id=None,
        conversation_id=None,
        priority=meta["priority"],
        attachments=[],
        accepted_at=meta["accepted_at"],
        encoding=meta["encoding"],
        flash=meta["flash"],
        wap_push=meta["wap_push"],
        batch_id=meta["batch_id"],
        api="bulk",
        price=price,
        dlr=meta["dlr"],
        message_type=meta["type"],
        dr_mask=meta.get("dr_mask"),  # a batch scheduled before masks existed has none
    ).payload()


def destination_item(meta: dict[str, Any], destination: str, message_id_: str, price: int) -> str:
    """The destination's payload as it waits on the MT list (:mod:`app.adapters.stage_queue`)."""
    return stage_queue.item(destination_payload(meta, destination, message_id_, price))


def batch_task(name: str, meta: dict[str, Any], batch_id: str) -> str:
    priority = Priority(meta["priority"])
    return task_message(name, priority.queue, [batch_id], task_id=f"{name.rsplit('.', 1)[-1]}-{batch_id}")


def dumps(meta: dict[str, Any]) -> str:
    return json.dumps(meta, separators=(",", ":"))
