"""``/api/v1``: the REST API's blueprint. Views parse, authenticate, call
:class:`app.api.service.MessagesApi` and answer JSON.

Every route is declared with :func:`operation`, which registers it on the blueprint
*and* records it for the OpenAPI document (:mod:`app.api.spec`), so a route cannot
exist without its spec entry (``tests/unit/api/test_spec.py`` also walks Flask's
``url_map`` to prove it).

Authentication: ``Authorization: Bearer <API key>`` (:mod:`app.api.keys`), or HTTP Basic
with the account's login and password (what the older status API took, so its clients
keep working). Only the ``Authorization`` header carries credentials: one header for
proxies and logs to treat as secret. Both go through the process's guard
(docs/security.md): Basic credentials are limited like the MT API's (a locked-out login
or address is ``unauthorized`` without the KDF running; every password check busy is
``authentication_busy``, 503 with ``Retry-After``); a refused API key costs one SHA-256
and counts as a failure of the client's address. Then the account's IP allowlist and the
operator's denylist apply, as on the MT API.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import redis
from markupsafe import Markup, escape
from flask import Blueprint, Response, current_app, jsonify, render_template_string, request
from pydantic import BaseModel, ValidationError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from app.adapters.redis_scripts import NotSent
from app.api import schemas
from app.api.errors import ERROR_CODES, ApiError
from app.api.keys import KeyRing, claimed_key_id
from app.api.service import MessagesApi
from app.bulk.settings import get_bulk_settings
from app.domain.auth_limits import Scope
from app.services.auth_guard import KdfBusy
from app.services.directory import AccountView

log = logging.getLogger(__name__)
PREFIX = "/api/v1"
blueprint = Blueprint("rest_api", __name__, url_prefix=PREFIX)

_CHALLENGE = 'Bearer realm="smsagg", Basic realm="smsagg"'


@dataclass(frozen=True)
class Operation:
    """One route and method, as the OpenAPI document describes it."""

    rule: str
    method: str
    operation_id: str
    summary: str
    description: str
    success: dict[int, type[BaseModel] | None]
    errors: tuple[str, ...]
    body: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    secured: bool = True
    media_type: str = "application/json"
    parameters: tuple[dict, ...] = ()  # OpenAPI parameter objects beyond path and query


OPERATIONS: list[Operation] = []
_AUTH_ERRORS = ("unauthorized", "forbidden", "authentication_busy")
_ALWAYS = ("internal_error", "unavailable")


def operation(rule: str, method: str, *, summary: str, success: dict[int, type[BaseModel] | None],
              errors: tuple[str, ...] = (), body: type[BaseModel] | None = None,
              query: type[BaseModel] | None = None, secured: bool = True,
              media_type: str = "application/json", parameters: tuple[dict, ...] = ()) -> Callable:
    def register(view: Callable) -> Callable:
        declared = errors + (_AUTH_ERRORS if secured else ()) + _ALWAYS
        OPERATIONS.append(Operation(PREFIX + rule, method, view.__name__, summary, inspect.cleandoc(view.__doc__ or ""),
                                    success, tuple(dict.fromkeys(declared)), body, query, secured, media_type,
                                    parameters))
        blueprint.add_url_rule(rule, view_func=view, methods=[method])
        return view

    return register


@blueprint.record_once
def _build(state) -> None:
    smsagg = state.app.extensions["smsagg"]
    settings = smsagg["settings"]
    state.app.extensions["rest_api"] = {
        "keys": KeyRing(settings.database_url, refresh_seconds=settings.directory_refresh_seconds),
        "messages": MessagesApi(smsagg["submit"], lambda: state.app.extensions["bulksms"],
                                database_url=settings.database_url,
                                claim_ttl_seconds=settings.idempotency_ttl_seconds,
                                max_destinations=get_bulk_settings().max_destinations),
    }


def _api() -> MessagesApi:
    return current_app.extensions["rest_api"]["messages"]


def _authenticate() -> AccountView:
    scheme, _, credentials = request.headers.get("Authorization", "").partition(" ")
    account = None
    if scheme.lower() == "bearer":
        token = credentials.strip()
        holder = current_app.extensions["rest_api"]["keys"].authenticate(token)
        if holder is None:
            key_id = claimed_key_id(token) or "(malformed)"
            log.info("API key %s refused", key_id)
            current_app.extensions["smsagg"]["auth_guard"].record_failure(Scope.ACCOUNT, f"apikey:{key_id}",
                                                                          request.remote_addr)
        account = holder.account if holder else None
    elif scheme.lower() == "basic" and request.authorization is not None:
        auth = request.authorization
        if auth.username and auth.password is not None and "\x00" not in auth.username + auth.password:
            account = _basic_account(auth.username, auth.password)
    if account is None:
        raise ApiError("unauthorized", "Authorization: Bearer <API key>, or HTTP Basic with the account's "
                                       "login and password", headers={"WWW-Authenticate": _CHALLENGE})
    directory = current_app.extensions["smsagg"]["directory"]
    if not account.allows_ip(request.remote_addr) or directory.ip_denied(request.remote_addr):
        raise ApiError("forbidden", f"client IP {request.remote_addr} is not allowed for this account")
    return account


def _basic_account(login: str, password: str) -> AccountView | None:
    try:
        return current_app.extensions["smsagg"]["directory"].authenticate(login, password, request.remote_addr)
    except KdfBusy as busy:
        raise ApiError("authentication_busy", str(busy), {"retry_after": busy.retry_after},
                       headers={"Retry-After": str(busy.retry_after)}) from None


def _json(model: BaseModel, status: int = 200) -> Response:
    return Response(model.model_dump_json(), status=status, mimetype="application/json")


def _field(location: tuple) -> str:
    return ".".join(str(part) for part in location) or "body"


MAX_LISTED_ERRORS = 20
"""An answer lists at most this many field errors (10,000 bad phone numbers make one line
in the message, not a megabyte)."""


def _invalid(error: ValidationError, where: str) -> ApiError:
    problems = error.errors(include_url=False, include_context=False, include_input=False)
    if any(p["type"] == "json_invalid" for p in problems):
        return ApiError("invalid_json", "the body is not valid JSON (UTF-8)")
    unknown = [p for p in problems if p["type"] == "extra_forbidden"]
    code, listed = ("unknown_field", unknown) if unknown else ("validation_error", problems)
    shown = listed[:MAX_LISTED_ERRORS]
    more = f" (and {len(listed) - len(shown)} more)" if len(listed) > len(shown) else ""
    if unknown:
        message = f"unknown {where} field(s): " + ", ".join(_field(p["loc"]) for p in shown) + more
    else:
        message = "; ".join(f"{_field(p['loc'])}: {p['msg']}" for p in shown) + more
    return ApiError(code, message, {"errors": [
        {"field": _field(p["loc"]), "message": "unknown field" if unknown else p["msg"]} for p in shown]})


def _body() -> bytes:
    """The request body. A chunked body (no Content-Length) is cut at the size limit by
    werkzeug without an error: one that reaches the limit is refused as too large."""
    data = request.get_data(cache=False)
    limit = request.max_content_length
    if request.content_length is None and limit is not None and len(data) >= limit:
        raise RequestEntityTooLarge()
    return data


def _send_request() -> schemas.SendRequest:
    if request.mimetype != "application/json":
        raise ApiError("unsupported_media_type", "send application/json")
    try:
        return schemas.SendRequest.model_validate_json(_body())
    except ValidationError as error:
        raise _invalid(error, "body") from error


_IDEMPOTENCY_KEY_PATTERN = r"^[!-~]([ -~]{0,126}[!-~])?$"
_IDEMPOTENCY_KEY = re.compile(_IDEMPOTENCY_KEY_PATTERN)
IDEMPOTENCY_KEY_HEADER = {
    "name": "Idempotency-Key", "in": "header", "required": False,
    "description": "The idempotency key, instead of (or equal to) the body's message_id: printable ASCII, "
                   "at most 128 characters",
    "schema": {"type": "string", "pattern": _IDEMPOTENCY_KEY_PATTERN},
}


def _idempotency_key(body: schemas.SendRequest) -> str | None:
    header = request.headers.get("Idempotency-Key")
    if header is None:
        return body.message_id
    if not _IDEMPOTENCY_KEY.fullmatch(header) or (body.message_id is not None and header != body.message_id):
        raise ApiError("validation_error", "Idempotency-Key must be printable ASCII (at most 128 characters) "
                                           "and agree with message_id",
                       {"errors": [{"field": "Idempotency-Key", "message": "invalid or disagrees with message_id"}]})
    return header


def _list_query() -> schemas.ListQuery:
    repeated = [name for name, values in request.args.lists() if len(values) > 1]
    if repeated:
        raise ApiError("validation_error", f"repeated query parameter(s): {', '.join(repeated)}",
                       {"errors": [{"field": name, "message": "given more than once"} for name in repeated]})
    try:
        return schemas.ListQuery.model_validate_strings(request.args.to_dict())
    except ValidationError as error:
        raise _invalid(error, "query") from error


# --- routes -----------------------------------------------------------------------------------

@operation("/messages", "POST", summary="Send a message to one or many phone numbers, now or scheduled",
           body=schemas.SendRequest, success={202: schemas.SendResponse},
           errors=("invalid_json", "unsupported_media_type", "payload_too_large", "validation_error",
                   "unknown_field", "unknown_carrier", "sender_not_allowed", "message_too_long", "template_mismatch",
                   "spam", "opted_out", "dnd", "duplicate_content", "destinations_refused", "insufficient_credit",
                   "duplicate", "throttled", "outcome_unknown"),
           parameters=(IDEMPOTENCY_KEY_HEADER,))
def send_message():
    """202 means durably queued (or scheduled): the same promise as the MT API's
    `result_code=0`. A batch answers one entry per phone number; some may be refused
    (`status: refused`) while the others are queued. When every one is refused the answer
    is an error."""
    account = _authenticate()
    body = _send_request()
    result = _api().send(account, body, _idempotency_key(body), request.remote_addr)
    return _json(result, 202)


@operation("/messages", "GET", summary="The account's messages, newest first, paged",
           query=schemas.ListQuery, success={200: schemas.MessagePage},
           errors=("validation_error", "unknown_field"))
def list_messages():
    """Recorded messages only (a batch still waiting for its time is not listed). Pass
    `next_cursor` back as `cursor` for the next page; pages stay consistent while new
    messages arrive."""
    account = _authenticate()
    return _json(_api().list(account, _list_query()))


@operation("/messages/<message_id>", "GET", summary="A message, its state and its timeline",
           success={200: schemas.MessageDetail}, errors=("not_found",))
def get_message(message_id: str):
    """`message_id` is the client's message_id (idempotency key) or smsagg's id."""
    account = _authenticate()
    return _json(_api().get(account, message_id))


@operation("/messages/<message_id>", "DELETE", summary="Cancel a scheduled batch",
           success={200: schemas.CancelResponse}, errors=("not_found", "not_cancellable"))
def cancel_message(message_id: str):
    """`message_id` is a batch id or the id of any message of the batch: the whole batch
    is cancelled, a prepaid account refunded. Cancelling again answers the same."""
    account = _authenticate()
    return _json(_api().cancel(account, message_id))


@operation("/openapi.json", "GET", summary="This API's OpenAPI 3.1 document", success={200: None}, secured=False)
def openapi_document():
    """Generated from the routes and their pydantic models."""
    from app.api.spec import document

    return jsonify(document())


_DOCS_TEMPLATE = (Path(__file__).parent / "docs.html").read_text(encoding="utf-8")


@blueprint.app_template_filter("api_code_spans")
def _code_spans(text: str | None) -> Markup:
    """The document's descriptions are Markdown: show their `code` spans as code."""
    return Markup(re.sub(r"`([^`]+)`", r"<code>\1</code>", str(escape(text or ""))))


@operation("/docs", "GET", summary="This API's documentation as a page", success={200: None}, secured=False,
           media_type="text/html")
def docs_page():
    """Rendered from the OpenAPI document, with nothing fetched from elsewhere."""
    from app.api.spec import document

    return render_template_string(_DOCS_TEMPLATE, spec=document(), error_codes=ERROR_CODES)


# --- errors -----------------------------------------------------------------------------------

def _error_response(error: ApiError) -> Response:
    response = jsonify(error.body())
    response.status_code = error.status
    response.headers.update(error.headers or {})
    return response


@blueprint.errorhandler(ApiError)
def _api_error(error: ApiError):
    return _error_response(error)


@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(_error):
    return _error_response(ApiError("payload_too_large", "the body is larger than the gateway accepts"))


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    code = (error.name or "error").lower().replace(" ", "_")
    return _error_response(ApiError(code if code in ERROR_CODES else "validation_error", error.description or code))


@blueprint.errorhandler(redis.RedisError)
@blueprint.errorhandler(NotSent)
@blueprint.errorhandler(SQLAlchemyError)
@blueprint.errorhandler(OSError)
def _unavailable(error: Exception):
    log.exception("REST API request not served: a backing service failed")
    return _error_response(ApiError("unavailable", "Redis or the database could not be reached; retry with the "
                                                  "same idempotency key"))


@blueprint.errorhandler(Exception)
def _internal(error: Exception):
    log.exception("REST API request failed")
    return _error_response(ApiError("internal_error", "unexpected error; nothing was queued"))
