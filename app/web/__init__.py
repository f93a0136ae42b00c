"""The Flask ingress: an app factory that only wires things together."""

from __future__ import annotations

import logging
from urllib.parse import quote

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestURITooLarge

from app.adapters.redis_scripts import RedisStore, connect
from app.bulk.directory import BulkDirectory
from app.bulk.settings import get_bulk_settings
from app.services.auth_guard import build_guard
from app.services.carriers import CarrierDirectory
from app.services.directory import Directory
from app.services.message_log import MessageLog
from app.services.submit import SubmitService
from app.web.proxies import TrustedProxies
from app.settings import Settings, get_settings


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or get_settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes
    app.before_request(_request_line_check(settings.max_request_line))
    redis_client = connect(settings.require_redis_url(), retries=0)
    store = RedisStore(redis_client, settings.key_prefix)
    account_rules = BulkDirectory(settings.database_url, refresh_seconds=settings.directory_refresh_seconds,
                                  default_price_units=get_bulk_settings().default_price_units)
    auth_guard = build_guard(redis_client, settings.key_prefix, settings)  # one per process (docs/security.md)
    directory = Directory(
        settings.database_url,
        guard=auth_guard,
        credential_ttl=settings.credential_cache_seconds,
        credential_cache_size=settings.auth_cache_size,
        refresh_seconds=settings.directory_refresh_seconds,
        rules=account_rules,
    )
    app.extensions["smsagg"] = {
        "settings": settings,
        "store": store,
        "directory": directory,
        "auth_guard": auth_guard,
        "account_rules": account_rules,
        "carriers": CarrierDirectory(settings.database_url, settings.directory_refresh_seconds),
        "submit": SubmitService(directory, store, claim_ttl_seconds=settings.idempotency_ttl_seconds,
                                max_mms_bytes=settings.max_mms_bytes, message_log=MessageLog(settings.database_url)),
    }

    from app.gms.web import blueprint as gms_blueprint
    from app.api.web import blueprint as rest_api_blueprint
    from app.web import carrier_webhooks, health, httpapi

    app.register_blueprint(httpapi.blueprint)
    app.register_blueprint(health.blueprint)
    app.register_blueprint(carrier_webhooks.blueprint)
    app.register_blueprint(rest_api_blueprint)
    app.register_blueprint(gms_blueprint)
    from app.bulk.web import blueprint as bulk_blueprint

    app.register_blueprint(bulk_blueprint)
    from app.console.web import install as install_console
    from app.web import heartbeat, metrics

    install_console(app)  # /console, for operators (docs/console.md)
    heartbeat.install(app, redis_client, settings.key_prefix)  # smsagg status: this ingress process is up
    metrics.install(app, redis_client, settings)  # GET /metrics (docs/metrics.md); this process's counts
    app.register_error_handler(HTTPException, _json_errors_for_json_apis)
    if settings.trusted_proxies:  # behind deploy/'s nginx: the client, not the proxy (app.domain.forwarded)
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)
    return app


def request_line_length(environ: dict) -> int:
    """``METHOD SP target SP version``, as the client sent it when the server says
    (gunicorn's ``RAW_URI``, ``REQUEST_URI``), else (granian) rebuilt from the path and query."""
    target = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not target:
        query = environ.get("QUERY_STRING", "")
        target = quote(environ.get("PATH_INFO", "")) + (f"?{query}" if query else "")
    return len(environ.get("REQUEST_METHOD", "")) + len(target) + len(environ.get("SERVER_PROTOCOL", "")) + 2


def _request_line_check(limit: int):
    """The request-line limit is the app's, not the HTTP server's (whose own bound is set
    above it), so each API refuses a long line in its own format: the bulk API answers
    ``1702||`` (app/bulk/web.py), the GMS API a JSON 414, the REST API its own error
    document, the rest a plain 414."""

    def check() -> None:
        if request_line_length(request.environ) > limit:
            raise RequestURITooLarge(f"the request line is longer than {limit} bytes (SMSAGG_MAX_REQUEST_LINE)")

    return check


_JSON_API_PREFIXES = ("/genesys", "/gms-web", "/api/", "/carriers/")


def _json_errors_for_json_apis(error: HTTPException):
    """Unknown paths and wrong methods under the JSON APIs answer JSON, not HTML."""
    if request.path.startswith(_JSON_API_PREFIXES):
        name = (error.name or "error").lower().replace(" ", "_")
        return jsonify(error=name, message=error.description), error.code
    return error
