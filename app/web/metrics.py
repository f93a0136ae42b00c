"""``GET /metrics`` on the ingress's port: the whole gateway's Prometheus metrics
(:mod:`app.services.metrics`), and this ingress process's own counting.

Who may scrape: with ``SMSAGG_METRICS_TOKEN`` set, a request carrying
``Authorization: Bearer <token>`` (anything else: ``401``); unset, clients on loopback
only (anything else: ``403``). The client is the address :mod:`app.web.proxies` gives
(behind a trusted proxy, the address the proxy saw), so a proxy on the same host does
not make every client loopback. Redis unavailable: ``503``.

This process counts the submits each API answered, by the code the client got, read
from the response of the submit endpoints after the view (one dict lookup for every
other request), and flushes its counts to Redis on a thread of its own
(:class:`app.adapters.metrics.MetricsFlusher`), started with the first request the
process serves, like the heartbeat.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Callable

import redis
from flask import Blueprint, Flask, Response, current_app, jsonify, request
from prometheus_client import CONTENT_TYPE_LATEST

from app.adapters.metrics import SUBMITS, MetricsFlusher, process_flusher
from app.adapters.redis_scripts import RedisKeys
from app.services.metrics import metrics_registry, render
from app.settings import Settings

blueprint = Blueprint("metrics", __name__)


def _is_loopback(address: str | None) -> bool:
    try:
        ip = ipaddress.ip_address(address or "")
    except ValueError:
        return False
    mapped = getattr(ip, "ipv4_mapped", None)
    return (mapped or ip).is_loopback


def _refusal(token: str | None) -> Response | None:
    """Why this request may not scrape, or None."""
    if token:
        scheme, _, given = (request.headers.get("Authorization") or "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
            return None
        response = jsonify(error="unauthorized", message="send Authorization: Bearer <SMSAGG_METRICS_TOKEN>")
        response.status_code = 401
        response.headers["WWW-Authenticate"] = 'Bearer realm="smsagg metrics"'
        return response
    if _is_loopback(request.remote_addr):
        return None
    response = jsonify(error="forbidden", message="without SMSAGG_METRICS_TOKEN, /metrics answers loopback clients only")
    response.status_code = 403
    return response


@blueprint.get("/metrics")
def metrics() -> Response:
    extension = current_app.extensions["smsagg"]
    refusal = _refusal(extension["settings"].metrics_token)
    if refusal is not None:
        return refusal
    try:
        body = render(extension["metrics_registry"])
    except (redis.RedisError, OSError) as exc:
        return Response(f"# Redis unavailable: {exc}\n", status=503, mimetype="text/plain")
    return Response(body, status=200, headers={"Content-Type": CONTENT_TYPE_LATEST, "Cache-Control": "no-store"})


# --- submits, counted at the edge ----------------------------------------------------------


def _genesys_codes(response: Response) -> list[str]:
    """``result_code=N``."""
    return [response.get_data().partition(b"=")[2].strip().decode("ascii", "replace") or "unknown"]


def _bulk_codes(response: Response) -> list[str]:
    """``<code>|<destination>|<message id>`` entries, comma-separated: one code each."""
    return [entry.partition(b"|")[0].strip().decode("ascii", "replace") or "unknown"
            for entry in response.get_data().split(b",")]


def _http_status(response: Response) -> list[str]:
    return [str(response.status_code)]


SUBMIT_ENDPOINTS: dict[str, tuple[str, Callable[[Response], list[str]]]] = {
    "httpapi.receiver": ("genesys", _genesys_codes),
    "bulksms.bulksms": ("bulk", _bulk_codes),
    "bulksms.schedulemsg": ("bulk", _bulk_codes),
    "rest_api.send_message": ("rest", _http_status),
}
"""The endpoints that submit messages: their API, and how to read the codes they answered.
The counting runs after the requests of their blueprints only, so no other request
pays for it."""


def _count_submit(response: Response) -> Response:
    counted = SUBMIT_ENDPOINTS.get(request.endpoint or "")
    if counted is not None:
        api, codes = counted
        for code in codes(response):
            SUBMITS.inc(api, code)
    return response


def install(app: Flask, client: redis.Redis, settings: Settings) -> MetricsFlusher:
    """``/metrics``, the submit counting and this process's flusher (it stops when the
    process exits)."""
    flusher = process_flusher(client, RedisKeys(settings.key_prefix).metrics(), settings.metrics_flush_seconds)
    app.extensions["smsagg"]["metrics_flusher"] = flusher
    app.extensions["smsagg"]["metrics_registry"] = metrics_registry(client, settings.key_prefix)
    app.register_blueprint(blueprint)
    for blueprint_name in sorted({endpoint.partition(".")[0] for endpoint in SUBMIT_ENDPOINTS}):
        app.after_request_funcs.setdefault(blueprint_name, []).append(_count_submit)

    @app.before_request
    def _start_flushing() -> None:
        if not flusher.started:
            flusher.start()

    return flusher
