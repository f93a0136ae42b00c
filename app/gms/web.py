"""GMS HTTP endpoints (``/genesys/1/...``, also under ``/gms-web/gms/1/...``).

Views are thin: authenticate, read the parameters, call :class:`MobileServices`,
serialise. Every refusal is a :class:`~app.gms.domain.GmsError` rendered as JSON
``{"error", "message", "parameter"?}`` with its status (docs/gms.md lists them).

* Service API:  ``POST /service/<name>``, ``GET|DELETE /service/<id>``
* Chat API v1:  ``POST /service/<id>/ixn/chat[/send|refresh|startTyping|stopTyping|disconnect]``
* Storage API:  ``POST /storage/<ttl>``, ``POST /storage/<id>/<ttl>``,
  ``GET|DELETE /storage/<id>[/<key>]``
* CometD:       ``POST /genesys/cometd`` in polling mode: never holds a thread; the
  long-polls are served by ``smsagg cometd`` (:mod:`app.gms.cometd_server`)
* Agents:       ``/genesys/agent/`` (page) and ``/genesys/agent/api/...``

Apps authenticate with HTTP Basic; the ``gms_user`` header (also accepted as
``gms-user`` or ``X-GMS-User``) names the user within the app (:mod:`app.gms.http`,
shared with the CometD server).
"""

from __future__ import annotations

import json
import logging
from importlib import resources

from flask import Blueprint, Response, current_app, jsonify, redirect, request
from werkzeug.exceptions import RequestEntityTooLarge

from app.gms import http
from app.gms.cometd import MAX_BODY_BYTES, MalformedBayeux, malformed_reply, messages_from_body
from app.gms.config import load_config
from app.gms.domain import (
    GmsError,
    InvalidParameter,
    UnsupportedMediaType,
    UploadedFile,
    split_parameters,
)
from app.gms.registry import Principal, Registry
from app.gms.services import Caller, MobileServices
from app.gms.store import GmsStore
from app.services.auth_guard import AuthGuard

log = logging.getLogger(__name__)

blueprint = Blueprint("gms", __name__)

PREFIXES = ("/genesys/1", "/gms-web/gms/1")
CHAT_ACTIONS = ("send", "refresh", "startTyping", "stopTyping", "disconnect")


class GmsRuntime:
    """Everything the endpoints need, built once per Flask app."""

    def __init__(self, settings, redis_client, guard: AuthGuard):
        self.config = load_config(settings.home)
        self.store = GmsStore(redis_client, settings.key_prefix)
        self.registry = Registry(settings.database_url, self.config, guard=guard,
                                 credential_ttl=settings.credential_cache_seconds,
                                 credential_cache_size=settings.auth_cache_size,
                                 refresh_seconds=settings.directory_refresh_seconds)
        self.services = MobileServices(self.store, self.registry, self.config)


@blueprint.record_once
def _setup(state) -> None:
    smsagg = state.app.extensions["smsagg"]
    state.app.extensions["gms"] = GmsRuntime(smsagg["settings"], smsagg["store"].client, smsagg["auth_guard"])


def runtime() -> GmsRuntime:
    return current_app.extensions["gms"]


@blueprint.before_request
def _limit_body() -> None:
    # Multipart uploads (files as app data) are bounded per request; the rest of
    # the gateway keeps the app-wide MAX_CONTENT_LENGTH.
    limit = MAX_BODY_BYTES if request.path.endswith("/cometd") else runtime().config.options.max_upload_bytes
    request.max_content_length = limit


@blueprint.errorhandler(GmsError)
def _gms_error(error: GmsError):
    status, body, headers = http.error_response(error)
    response = jsonify(body)
    response.status_code = status
    response.headers.update(headers)
    return response


@blueprint.errorhandler(RequestEntityTooLarge)
def _too_large(_error):
    return _gms_error(http.body_too_large(request.max_content_length))


# --- request helpers ------------------------------------------------------------------


def _principal(kind: str) -> Principal:
    return http.principal(runtime().registry, kind, request.headers, request.remote_addr)


def _caller() -> Caller:
    return http.caller(runtime().registry, request.headers, request.remote_addr)


def _params() -> tuple[dict[str, str], dict[str, UploadedFile]]:
    """Query parameters, overlaid with the body's: form-urlencoded, multipart (files
    included) or a flat JSON object."""
    fields = request.args.to_dict()
    mimetype = request.mimetype
    if mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise InvalidParameter("body", "a JSON body must be an object of parameters")
        for key, value in body.items():
            if isinstance(value, (dict, list)):
                raise InvalidParameter(key, "JSON parameters must be strings, numbers or booleans")
            fields[key] = "" if value is None else (str(value).lower() if isinstance(value, bool) else str(value))
    elif mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        fields.update(request.form.to_dict())
    elif request.content_length:
        raise UnsupportedMediaType(
            f"{mimetype!r} is not accepted: use application/x-www-form-urlencoded or multipart/form-data")
    files = {
        name: UploadedFile(upload.filename or name, upload.mimetype or "application/octet-stream", upload.read())
        for name, upload in request.files.items()
    }
    return fields, files


def _json(body: dict, status: int = 200):
    response = jsonify(body)
    response.status_code = status
    return response


# --- service API ----------------------------------------------------------------------


def create_service(service: str):
    caller = _caller()
    fields, files = _params()
    return _json(runtime().services.create(caller, service, split_parameters(fields, files)))


def show_service(service_id: str):
    return _json(runtime().services.show(_caller(), service_id))


def delete_service(service_id: str):
    return _json(runtime().services.delete(_caller(), service_id))


def chat_start(service_id: str):
    caller = _caller()
    fields, _ = _params()
    return _json(runtime().services.chat_start(caller, service_id, fields))


def chat_action(service_id: str, action: str):
    caller = _caller()
    fields, _ = _params()
    services = runtime().services
    if action == "send":
        return _json(services.chat_send(caller, service_id, fields))
    if action == "refresh":
        return _json(services.chat_refresh(caller, service_id, fields))
    if action in ("startTyping", "stopTyping"):
        return _json(services.chat_typing(caller, service_id, fields, started=action == "startTyping"))
    return _json(services.chat_disconnect(caller, service_id, fields))


# --- storage API ----------------------------------------------------------------------


def storage_create(ttl: str):
    caller = _caller()
    fields, files = _params()
    return _json(runtime().services.storage_create(caller, ttl, fields, files))


def storage_update(data_id: str, ttl: str):
    caller = _caller()
    fields, files = _params()
    return _json(runtime().services.storage_update(caller, data_id, ttl, fields, files))


def storage_get(data_id: str):
    body = {}
    for value in runtime().services.storage_values(_caller(), data_id):
        if value.content_type:
            body[value.key] = {
                "_binary": True,
                "content_type": value.content_type,
                "filename": value.filename,
                "size": len(value.value),
                "href": f"{request.path.rstrip('/')}/{value.key}",
            }
        else:
            body[value.key] = value.value.decode("utf-8", errors="replace")
    return _json(body)


def storage_get_key(data_id: str, key: str):
    value = runtime().services.storage_value(_caller(), data_id, key)
    if not value.content_type:
        return Response(value.value, mimetype="text/plain", content_type="text/plain; charset=utf-8")
    response = Response(value.value, mimetype=value.content_type)
    if value.filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{value.filename.replace(chr(34), "")}"'
    return response


def storage_delete(data_id: str, key: str | None = None):
    return _json(runtime().services.storage_delete(_caller(), data_id, key))


_API_ROUTES = [
    # (path under the prefix, method, view, endpoint name)
    ("/service/<service>", "POST", create_service, "create_service"),
    ("/service/<service_id>", "GET", show_service, "show_service"),
    ("/service/<service_id>", "DELETE", delete_service, "delete_service"),
    ("/service/<service_id>/ixn/chat", "POST", chat_start, "chat_start"),
    (f"/service/<service_id>/ixn/chat/<any({', '.join(CHAT_ACTIONS)}):action>", "POST", chat_action, "chat_action"),
    ("/storage/<ttl>", "POST", storage_create, "storage_create"),
    ("/storage/<data_id>/<ttl>", "POST", storage_update, "storage_update"),
    ("/storage/<data_id>", "GET", storage_get, "storage_get"),
    ("/storage/<data_id>/<key>", "GET", storage_get_key, "storage_get_key"),
    ("/storage/<data_id>", "DELETE", storage_delete, "storage_delete"),
    ("/storage/<data_id>/<key>", "DELETE", storage_delete, "storage_delete_key"),
]

for _prefix in PREFIXES:
    for _path, _method, _view, _name in _API_ROUTES:
        blueprint.add_url_rule(_prefix + _path, view_func=_view, methods=[_method], endpoint=f"{_name}{_prefix}")


# --- CometD ---------------------------------------------------------------------------


@blueprint.route("/genesys/cometd", methods=["POST"])
@blueprint.route("/gms-web/cometd", methods=["POST"])
def cometd():
    caller = _caller()
    try:
        messages = messages_from_body(request.mimetype, request.get_data(cache=True))
    except MalformedBayeux as exc:
        return Response(json.dumps(malformed_reply(str(exc))), status=400, mimetype="application/json")
    replies = runtime().services.cometd_poll(caller, messages)
    return Response(json.dumps(replies), mimetype="application/json")


# --- agents ---------------------------------------------------------------------------


_STATIC = {"agent.html": "text/html", "agent.js": "text/javascript", "agent.css": "text/css"}


@blueprint.route("/genesys/agent", methods=["GET"])
def agent_redirect():
    return redirect("/genesys/agent/", code=308)


@blueprint.route("/genesys/agent/", defaults={"name": "agent.html"}, methods=["GET"])
@blueprint.route("/genesys/agent/<any(agent.js, agent.css):name>", methods=["GET"])
def agent_page(name: str):
    body = resources.files("app.gms").joinpath(name).read_bytes()
    response = Response(body, mimetype=_STATIC[name])
    response.headers["Content-Security-Policy"] = (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'"
    )
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Cache-Control"] = "no-cache"
    return response


@blueprint.route("/genesys/agent/api/chats", methods=["GET"])
def agent_chats():
    agent = _principal("agent")
    return _json({"agent": agent.name, "nickname": agent.nickname, **runtime().services.agent_chats(agent.name)})


@blueprint.route("/genesys/agent/api/chats/<service_id>", methods=["GET"])
def agent_transcript(service_id: str):
    agent = _principal("agent")
    return _json(runtime().services.agent_transcript(agent.name, service_id, request.args.to_dict()))


@blueprint.route("/genesys/agent/api/chats/<service_id>/<any(accept, send, startTyping, stopTyping, end):action>",
                 methods=["POST"])
def agent_action(service_id: str, action: str):
    agent = _principal("agent")
    services = runtime().services
    if action == "accept":
        return _json(services.agent_accept(agent.name, agent.nickname, service_id))
    if action == "send":
        fields, _ = _params()
        return _json(services.agent_send(agent.name, agent.nickname, service_id, fields))
    if action in ("startTyping", "stopTyping"):
        return _json(services.agent_typing(agent.name, agent.nickname, service_id, action == "startTyping"))
    return _json(services.agent_end(agent.name, agent.nickname, service_id))
