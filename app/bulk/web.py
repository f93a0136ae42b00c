"""``/bulksms/*``: the bulk SMS HTTP API (seed 001). GET or POST (urlencoded or
multipart), always HTTP 200 ``text/plain`` in the seed's reply format; the views only
read the parameters and hand over to :class:`app.bulk.service.BulkSubmitService`.

* ``/bulksms/bulksms``: send now (or scheduled, if ``date``/``time``/``gmt`` are given,
  as the seed's own scheduler examples do).
* ``/bulksms/schedulemsg``: the same plus ``date``, ``time``, ``gmt`` (mandatory).
* ``/bulksms/schedules``: the account's scheduled batches, one line each,
  ``<batch_id>|<due, UTC ISO-8601>|<destinations>`` (smsagg's extension).
* ``/bulksms/cancelschedule``: ``batch_id`` (or any ``message_id`` of the batch) ->
  ``1701|<batch_id>|cancelled``, or ``1702|<batch_id>|<released|cancelled|missing>``
  (smsagg's extension).
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge, RequestURITooLarge

from app.bulk import batches
from app.bulk.runtime import ingress_store
from app.bulk.service import BulkSubmitService
from app.bulk.settings import get_bulk_settings
from app.db.session import session_scope
from app.web.forms import request_params
from app.bulk.request import (
    BulkCode,
    BulkRejected,
    format_refusal,
    parse_form_strict,
)

blueprint = Blueprint("bulksms", __name__)


@blueprint.record_once
def _build_service(state) -> None:
    smsagg = state.app.extensions["smsagg"]
    settings = smsagg["settings"]
    store = ingress_store(settings.require_redis_url(), settings.key_prefix)
    state.app.extensions["bulksms"] = BulkSubmitService(smsagg["submit"].directory, smsagg["account_rules"], store,
                                                         get_bulk_settings())


def _service() -> BulkSubmitService:
    return current_app.extensions["bulksms"]


def _reply(body: str) -> Response:
    return Response(body, status=200, mimetype="text/plain")


@blueprint.errorhandler(RequestURITooLarge)
def _line_too_long(_error) -> Response:
    """A request line over SMSAGG_MAX_REQUEST_LINE (refused before any parameter is read,
    so nothing is queued): the seed's "Invalid URL", in its reply format."""
    return _reply(format_refusal(BulkCode.INVALID_URL))


def _params() -> dict[str, str]:
    return request_params(parse_form_strict, lambda reason: BulkRejected(BulkCode.INVALID_URL, reason))


def _read_params() -> dict[str, str] | Response:
    try:
        return _params()
    except BulkRejected as rejected:
        return _reply(format_refusal(rejected.code))
    except RequestEntityTooLarge:
        return _reply(format_refusal(BulkCode.INVALID_URL))


@blueprint.route("/bulksms/bulksms", methods=["GET", "POST"])
def bulksms() -> Response:
    params = _read_params()
    if isinstance(params, Response):
        return params
    return _reply(_service().submit(params, request.remote_addr).body)


@blueprint.route("/bulksms/schedulemsg", methods=["GET", "POST"])
def schedulemsg() -> Response:
    params = _read_params()
    if isinstance(params, Response):
        return params
    return _reply(_service().submit(params, request.remote_addr, scheduled=True).body)


def _account(params: dict[str, str]):
    service = _service()
    if service.directory.ip_denied(request.remote_addr):
        raise BulkRejected(BulkCode.IP_BLACKLISTED, "client IP denied")
    username, password = params.get("username"), params.get("password")
    if not username or not password:
        raise BulkRejected(BulkCode.INVALID_URL, "username or password missing")
    return service.authorize(username, password, request.remote_addr)


@blueprint.route("/bulksms/schedules", methods=["GET", "POST"])
def schedules() -> Response:
    params = _read_params()
    if isinstance(params, Response):
        return params
    try:
        account = _account(params)
        pending = batches.list_scheduled(_service().store, account.id)
    except BulkRejected as rejected:
        return _reply(format_refusal(rejected.code))
    except Exception:
        current_app.logger.exception("listing schedules failed")
        return _reply(format_refusal(BulkCode.INTERNAL_ERROR))
    lines = [f"{s.batch_id}|{datetime.fromtimestamp(s.due, tz=timezone.utc).isoformat()}|{s.destinations}"
             for s in pending]
    return _reply("\n".join(lines))


@blueprint.route("/bulksms/cancelschedule", methods=["GET", "POST"])
def cancelschedule() -> Response:
    params = _read_params()
    if isinstance(params, Response):
        return params
    try:
        account = _account(params)
        batch_id = (params.get("batch_id") or params.get("message_id") or "")[:24]
        if len(batch_id) != 24 or not all(c in "0123456789abcdef" for c in batch_id):
            raise BulkRejected(BulkCode.INVALID_URL, "batch_id missing or malformed")
        settings = current_app.extensions["smsagg"]["settings"]
        with session_scope(settings.database_url) as session:
            done, state = batches.cancel(session, _service().store, batch_id, account.id)
    except BulkRejected as rejected:
        return _reply(format_refusal(rejected.code))
    except Exception:
        current_app.logger.exception("cancelling a schedule failed")
        return _reply(format_refusal(BulkCode.INTERNAL_ERROR))
    code = BulkCode.SUBMITTED if done else BulkCode.INVALID_URL
    return _reply(f"{int(code)}|{batch_id}|{state}")
