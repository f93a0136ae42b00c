"""``POST /carriers/<carrier>/dr`` and ``/carriers/<carrier>/mo``: HTTP carriers report
delivery receipts and MO messages here; ``/carriers/<carrier>/mm7``: an MMSC (MM7,
:mod:`app.domain.mm7`) sends its ``DeliveryReportReq`` and ``DeliverReq`` here.

Authentication: the carrier's ``webhook_token`` setting, sent as HTTP Basic (user =
the carrier id, password = the token) or as the ``X-Smsagg-Carrier-Token`` header; a
carrier without a token cannot use the webhooks. Bodies are
``application/x-www-form-urlencoded`` UTF-8, at most 64 KiB (MMS MO: 2 MiB):

* DR: ``message_id`` (the id the carrier returned at submit), ``status`` (a stat
  word — DELIVRD, UNDELIV, EXPIRED, REJECTD, DELETED, ACCEPTD, ENROUTE, UNKNOWN — or a
  message_state number 1-8), optional ``err``. ``message_state`` is accepted in place
  of ``status``, so another smsagg (or any Genesys-API aggregator) can point its DR
  callbacks here: its ``message_id`` is the id we submitted with.
* MO: ``from`` (the handset), ``to`` (the shortcode/number), ``text``, optional
  ``mms_attachment[n].content_type`` / ``mms_attachment[n].content`` (base64).

Answers: 200 ``OK`` once the report is queued (durably, in Redis); 400 JSON naming a
missing or invalid field; 401 for a wrong or missing token; 404 for an unknown
carrier; 413 for an oversize body. The view only checks and queues; the inbound
worker matches, and keeps what matches nothing.

MM7 (same token, as HTTP Basic or the header; SOAP bodies of at most 2 MiB): a
``DeliveryReportReq`` becomes a receipt (``MessageID`` is the id the MMSC answered the
submit with, ``MMStatus`` the state), a ``DeliverReq`` an MO (its text parts the
``message``, its other parts the attachments), both queued like the webhooks' and
answered with their ``...Rsp`` (status 1000) in the request's namespace and
``TransactionID``. Errors are SOAP faults carrying a ``VASPErrorRsp``: 401 (4001
Improper identification), 404 (4001, unknown carrier), 413 (2004 content refused),
500 with faultcode Client for a body that is no MM7 request (4004 Validation error) or
one smsagg does not serve (4003 Unsupported operation), 500 with faultcode Server
(3000) when Redis could not take it, so the MMSC sends it again.
"""

from __future__ import annotations

import base64
import hmac
import logging
import time

import redis
from flask import Blueprint, Response, current_app, jsonify, request

from app.adapters.stage_queue import StageQueue
from app.domain import mm7
from app.domain.mt_request import parse_attachments, parse_form
from app.domain.priorities import INBOUND_QUEUE
from app.domain.receipts import STAT_STATES
from app.domain.result_codes import Rejected

log = logging.getLogger(__name__)
blueprint = Blueprint("carrier_webhooks", __name__)

MAX_WEBHOOK_BYTES = 64 * 1024
MAX_MMS_WEBHOOK_BYTES = 2 * 1024 * 1024
_STATE_NUMBERS = {str(n) for n in range(1, 9)}


def _error(status: int, error: str, message: str, field: str | None = None):
    body = {"error": error, "message": message}
    if field:
        body["field"] = field
    return jsonify(body), status


def _authorized(carrier_id: int) -> bool | None:
    """None: no such carrier; False: wrong or missing token."""
    carriers = current_app.extensions["smsagg"]["carriers"].current().carriers
    carrier = carriers.get(carrier_id)
    if carrier is None:
        return None
    expected = carrier.settings.get("webhook_token")
    given = request.headers.get("X-Smsagg-Carrier-Token") or (request.authorization.password
                                                              if request.authorization else None)
    return bool(expected and given and hmac.compare_digest(str(expected).encode(), given.encode()))


def _form(limit: int) -> dict[str, str]:
    if request.content_length is not None and request.content_length > limit:
        raise OverflowError
    raw = request.get_data(cache=False)
    if len(raw) > limit:
        raise OverflowError
    return parse_form(raw)


def _receive(carrier_id: int, kind: str, limit: int, validate):
    allowed = _authorized(carrier_id)
    if allowed is None:
        return _error(404, "unknown_carrier", f"no carrier {carrier_id}")
    if not allowed:
        return _error(401, "unauthorized", "wrong or missing carrier token")
    try:
        fields = _form(limit)
    except OverflowError:
        return _error(413, "too_large", f"body larger than {limit} bytes")
    except Rejected as rejected:
        return _error(400, "invalid_body", rejected.reason)
    problem = validate(fields)
    if problem:
        return _error(400, "invalid_field", problem[1], problem[0])
    if kind == "webhook_mo":
        try:
            fields["attachments"] = [[a.content_type, _b64(a.content)] for a in parse_attachments(fields)]
        except Rejected as rejected:
            return _error(400, "invalid_field", rejected.reason, "mms_attachment")
    _queue(kind, carrier_id, fields)
    return Response("OK", status=200, mimetype="text/plain")


def _queue(kind: str, carrier_id: int, fields: dict) -> None:
    store = current_app.extensions["smsagg"]["store"]
    StageQueue(store.client, store.keys.prefix).push(INBOUND_QUEUE, [{"source": kind, "carrier": carrier_id,
                                                                      "received_at": time.time(), "fields": fields}])


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _validate_dr(fields: dict[str, str]):
    if "status" not in fields and fields.get("message_state"):
        fields["status"] = fields["message_state"]
    if not fields.get("message_id", "").strip():
        return "message_id", "message_id is missing"
    status = fields.get("status", "").strip()
    if not status:
        return "status", "status is missing"
    if status not in _STATE_NUMBERS and status.upper() not in STAT_STATES:
        return "status", f"status {status!r} is not a stat word or a message_state 1-8"
    return None


def _validate_mo(fields: dict[str, str]):
    for name in ("from", "to"):
        if not fields.get(name, "").strip():
            return name, f"{name} is missing"
    if "text" not in fields and "mms_attachment[0].content" not in fields:
        return "text", "text is missing"
    fields.setdefault("text", "")
    return None


@blueprint.post("/carriers/<int:carrier_id>/dr")
def delivery_receipt(carrier_id: int):
    return _receive(carrier_id, "webhook_dr", MAX_WEBHOOK_BYTES, _validate_dr)


@blueprint.post("/carriers/<int:carrier_id>/mo")
def mobile_originated(carrier_id: int):
    return _receive(carrier_id, "webhook_mo", MAX_MMS_WEBHOOK_BYTES, _validate_mo)


@blueprint.post("/carriers/<int:carrier_id>/mm7")
def mm7_request(carrier_id: int):
    allowed = _authorized(carrier_id)
    if allowed is None:
        return _mm7_fault(404, None, mm7.NAMESPACE, "Client", 4001, f"no carrier {carrier_id}")
    if not allowed:
        fault = _mm7_fault(401, None, mm7.NAMESPACE, "Client", 4001, "wrong or missing carrier token")
        fault.headers["WWW-Authenticate"] = 'Basic realm="smsagg"'
        return fault
    body = _body(MAX_MMS_WEBHOOK_BYTES)
    if body is None:
        return _mm7_fault(413, None, mm7.NAMESPACE, "Client", 2004, f"body larger than {MAX_MMS_WEBHOOK_BYTES} bytes")
    try:
        received = mm7.parse_vasp_request(request.headers.get("Content-Type"), body)
    except mm7.UnsupportedMm7 as unsupported:
        return _mm7_fault(500, unsupported.transaction_id, unsupported.namespace, "Client", 4003, str(unsupported))
    except mm7.MalformedMm7 as malformed:
        return _mm7_fault(500, None, mm7.NAMESPACE, "Client", 4004, str(malformed)[:300])
    kind, answer, fields = _mm7_item(received)
    try:
        _queue(kind, carrier_id, fields)
    except redis.RedisError:
        log.exception("MM7 %s from carrier %s not queued; the MMSC is told to send it again", kind, carrier_id)
        return _mm7_fault(500, received.transaction_id, received.namespace, "Server", 3000, "try again later")
    reply = mm7.build_answer(answer, received.transaction_id, 1000, "Success", namespace=received.namespace)
    return Response(reply.body, status=200, content_type=reply.content_type)


def _body(limit: int) -> bytes | None:
    """The raw body, or None when it is over ``limit``."""
    if request.content_length is not None and request.content_length > limit:
        return None
    body = request.get_data(cache=False)
    return body if len(body) <= limit else None


def _mm7_item(received: mm7.DeliveryReport | mm7.DeliveredMms) -> tuple[str, str, dict]:
    """The inbound item's source and fields (the webhooks' field names, so the inbound
    worker reads them alike), and the answer's kind."""
    if isinstance(received, mm7.DeliveryReport):
        return "mm7_dr", "DeliveryReportRsp", {
            "message_id": received.message_id, "status": str(int(received.mm_status.message_state)),
            "err": received.mm_status.value, "status_text": received.status_text, "recipient": received.recipient}
    return "mm7_mo", "DeliverRsp", {
        "from": received.sender, "to": received.recipient, "text": received.text,
        "attachments": [[a.content_type, _b64(a.content)] for a in received.attachments],
        "linked_id": received.linked_id}


def _mm7_fault(status: int, transaction_id: str | None, namespace: str, fault: str, code: int, text: str) -> Response:
    body = mm7.build_fault(transaction_id, fault, code, text, error="VASPErrorRsp", namespace=namespace)
    return Response(body.body, status=status, content_type=body.content_type)
