"""``/httpapi/receiver``: the Genesys MT API (seed 000). GET or POST, always HTTP 200
``text/plain`` ``result_code=N``; the view only parses and hands over."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.domain.mt_request import first_values, parse_form
from app.domain.result_codes import Rejected, ResultCode

blueprint = Blueprint("httpapi", __name__)


def _reply(code: ResultCode) -> Response:
    return Response(code.reply_body(), status=200, mimetype="text/plain")


def _request_params() -> dict[str, str]:
    """Query string and (for POST) the urlencoded or multipart body; body wins."""
    query = parse_form(request.query_string)
    if request.method != "POST":
        return query
    if request.mimetype == "multipart/form-data":
        body = first_values(request.form.items(multi=True))
    elif request.mimetype in ("", "application/x-www-form-urlencoded", "text/plain"):
        body = parse_form(request.get_data(cache=False))
    else:
        raise Rejected(ResultCode.REQUEST_INVALID, f"unsupported content type {request.mimetype!r}")
    return {**query, **body}


@blueprint.route("/httpapi/receiver", methods=["GET", "POST"])
def receiver() -> Response:
    try:
        params = _request_params()
    except Rejected as rejected:
        return _reply(rejected.code)
    except RequestEntityTooLarge:
        return _reply(ResultCode.BODY_TOO_LONG)
    submit = current_app.extensions["smsagg"]["submit"]
    return _reply(submit.submit(params, request.remote_addr))
