"""``/httpapi/receiver``: the Genesys MT API (seed 000). GET or POST, always HTTP 200
``text/plain`` ``result_code=N``; the view only parses and hands over."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.domain.mt_request import parse_form
from app.domain.result_codes import Rejected, ResultCode
from app.web.forms import request_params

blueprint = Blueprint("httpapi", __name__)


def _reply(code: ResultCode) -> Response:
    return Response(code.reply_body(), status=200, mimetype="text/plain")


def _request_params() -> dict[str, str]:
    return request_params(parse_form, lambda reason: Rejected(ResultCode.REQUEST_INVALID, reason))


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
