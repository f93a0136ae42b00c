"""The REST API's error codes: stable strings a client can switch on, each with one
HTTP status. Every error answer is JSON ``{"error": <code>, "message": <text>, ...}``
(the ``error``/``message`` shape of the older status API, kept compatible); the
message is for people and may change, the code does not.

:data:`ERROR_CODES` is the table ``docs/rest-api.md`` documents (a test checks the two
agree). :data:`REFUSAL_CODES` are the per-phone-number refusals of a batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

ERROR_CODES: dict[str, tuple[int, str]] = {
    "invalid_json": (400, "the body is not JSON (or not UTF-8)"),
    "unauthorized": (401, "no API key or Basic credentials, or they match no enabled account"),
    "insufficient_credit": (402, "a prepaid account's balance does not cover the message(s); nothing was queued"),
    "forbidden": (403, "the client IP is outside the account's allowlist or on the operator's denylist"),
    "sender_not_allowed": (403, "the sender is not provisioned, or not registered (and enabled) for this account"),
    "not_found": (404, "no such message for this account (or no such path)"),
    "method_not_allowed": (405, "the path does not take this method"),
    "duplicate": (409, "the idempotency key was used before; existing_id names the original message or batch"),
    "not_cancellable": (409, "only a scheduled batch can be cancelled; state says where this one is"),
    "payload_too_large": (413, "the body is larger than SMSAGG_MAX_REQUEST_BYTES"),
    "unsupported_media_type": (415, "the body is not application/json"),
    "validation_error": (422, "a field is missing, has the wrong type or an invalid value; errors lists them"),
    "unknown_field": (422, "the body or the query has a field this API does not know"),
    "unknown_carrier": (422, "carrier names no carrier"),
    "message_too_long": (422, "the text is longer than the account's maximum length, or an MMS larger than "
                                 "SMSAGG_MAX_MMS_BYTES"),
    "template_mismatch": (422, "the account sends only its templates and the text matches none"),
    "spam": (422, "the text matches an operator spam rule"),
    "opted_out": (422, "the phone number opted out of this account (STOP)"),
    "dnd": (422, "the phone number is on the operator's do-not-disturb registry (batches only)"),
    "duplicate_content": (422, "the same text went to this number within the bulk duplicate window (batches only)"),
    "destinations_refused": (422, "every phone number was refused, for different reasons; destinations lists them"),
    "throttled": (429, "the account's token bucket is empty; retry_after (and Retry-After) says when to retry"),
    "internal_error": (500, "a bug: nothing was queued"),
    "authentication_busy": (503, "every password check of this ingress process is busy (HTTP Basic whose "
                                 "credentials are not cached yet); retry after Retry-After seconds"),
    "unavailable": (503, "Redis or the database could not be reached; retry later with the same idempotency key "
                         "(if the message did get through, the retry answers duplicate)"),
    "outcome_unknown": (504, "Redis took the batch and its answer was lost: it may be queued; retry with the "
                             "same idempotency key to learn which"),
}

REFUSAL_CODES = ("opted_out", "dnd", "duplicate_content", "insufficient_credit")


@dataclass(eq=False)
class ApiError(Exception):
    """An error answer: ``code`` from :data:`ERROR_CODES`, and extra fields for the body."""

    code: str
    message: str
    extra: dict[str, Any] | None = None
    headers: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.code not in ERROR_CODES:
            raise ValueError(f"unknown error code {self.code!r}")
        super().__init__(f"{self.code}: {self.message}")

    @property
    def status(self) -> int:
        return ERROR_CODES[self.code][0]

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message, **(self.extra or {})}
