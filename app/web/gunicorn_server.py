"""The ingress under gunicorn (``SMSAGG_WEB_SERVER=gunicorn``): what granian cannot do,
it does (app/web/server.py says what), at 1.3-1.5x granian's CPU per request.

``gthread`` workers keep client connections alive (sync workers close every
connection) and measured best among gunicorn's workers on this machine
(DESIGN.md: ~3.5k req/s gthread vs ~2.4k sync for a bare Flask + LPUSH).
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.http import message as gunicorn_message

from app.web.server import BACKLOG, KEEPALIVE_SECONDS, WORKER_STOP_SECONDS


class IngressServer(BaseApplication):
    def __init__(self, options: dict, load: Callable[[], Flask]):
        self.options = options
        self.loader = load
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)
        if "control_socket_disable" in self.cfg.settings:
            # gunicorn >= 25 opens a control socket at one path per user
            # (~/.gunicorn/gunicorn.ctl): every ingress on the machine would fight over
            # it, and smsagg never uses it.
            self.cfg.set("control_socket_disable", True)

    def load(self):
        # called in each worker process after the fork (no preload_app): the app,
        # with its heartbeat started
        return self.loader()


def _allow_request_lines(limit: int) -> None:
    # gunicorn's limit_request_line is 4094 by default and capped at MAX_REQUEST_LINE
    # (8190) unless it is 0, which means unlimited (its pure-Python parser then buffers a
    # line of any length). Raising the cap keeps the bound finite and lets a
    # 1,000-destination bulk GET (~16 KB) in.
    gunicorn_message.MAX_REQUEST_LINE = max(gunicorn_message.MAX_REQUEST_LINE, limit)


def ingress_options(host: str, port: int, *, workers: int, threads: int, line_limit: int = 8190) -> dict:
    """gunicorn's settings for the ingress (tests run them around an app of their own)."""
    return {
        "bind": f"{host}:{port}",
        "workers": workers,
        "worker_class": "gthread",
        "threads": threads,
        "keepalive": KEEPALIVE_SECONDS,
        "backlog": BACKLOG,
        "accesslog": None,
        "graceful_timeout": WORKER_STOP_SECONDS,
        # GMS mobile clients send a ``gms_user`` header. Other names with an
        # underscore are dropped: ``X_Forwarded_For`` would otherwise be merged into
        # ``X-Forwarded-For`` (one WSGI key) and name any client address it likes
        # behind a trusted proxy (SMSAGG_TRUSTED_PROXIES). gunicorn lets a
        # "forwarder" header through only from forwarded_allow_ips, so that is every
        # peer, and it believes no scheme header from them (smsagg never reads it).
        "header_map": "drop",
        "forwarder_headers": "GMS_USER",
        "forwarded_allow_ips": "*",
        "secure_scheme_headers": {},
        "limit_request_line": line_limit,
    }


def serve_gunicorn(host: str, port: int, *, workers: int, threads: int, line_limit: int,
                   load: Callable[[], Flask]) -> None:
    _allow_request_lines(line_limit)
    IngressServer(ingress_options(host, port, workers=workers, threads=threads, line_limit=line_limit), load).run()
