"""The accepted message as the ingress queues it: the contract between every API that
accepts messages (the MT API, the bulk API, the REST API) and the intake and delivery
stages that record and send them. Built once here, as a typed value; what travels on the
MT list is its :meth:`AcceptedMessage.payload` (JSON).

What each key means per API: :func:`app.services.submit.accepted_payload` (the MT
API: Genesys behaviour) and :mod:`app.bulk.payloads` (the bulk API's table).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class AcceptedMessage:
    id: str
    account_id: int
    client_message_id: str | None
    phone_number: str
    sender: str
    message: str
    carrier: int | None
    receipt: bool
    app_id: str | None
    conversation_id: str | None
    priority: str
    attachments: list[list[str]]
    """``[content type, base64 content]`` per MMS part."""
    accepted_at: float
    encoding: str | None
    flash: bool
    wap_push: bool
    batch_id: str | None
    api: str
    price: int
    """Credit units debited (0 unless the account is prepaid)."""
    dlr: bool
    message_type: int | None = field(default=None)
    """The bulk API's ``type``, for the record; the other APIs have none (no key)."""
    dr_mask: str | None = field(default=None)
    """The request's own :class:`~app.domain.states.DrMask` value (the REST API's
    ``dr_mask``); none (no key) means the account's, looked up when a DR is written."""

    def payload(self) -> dict[str, Any]:
        """The JSON-ready dict, keys in field order (a shallow copy: the ingress's hot path)."""
        fields = dict(vars(self))
        for optional in ("message_type", "dr_mask"):
            if fields[optional] is None:
                del fields[optional]
        return fields
