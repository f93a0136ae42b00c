"""Running the ingress under gunicorn (the production WSGI server).

``gthread`` workers keep client connections alive (sync workers close every
connection) and measured best among gunicorn's workers on this machine
(DESIGN.md: ~3.5k req/s gthread vs ~2.4k sync for a bare Flask + LPUSH). Each
worker process builds its own app, Redis client and database engine after the fork.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask
from gunicorn.app.base import BaseApplication
from gunicorn.http import message as gunicorn_message


class IngressServer(BaseApplication):
    def __init__(self, options: dict, factory: Callable[[], Flask] | None = None):
        self.options = options
        self.factory = factory
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
        if self.factory is not None:
            return self.factory()
        from app.web import create_app

        return create_app()


def _start_heartbeat(worker) -> None:
    worker.wsgi.extensions["smsagg"]["heartbeat"].start()


def server_request_line_limit(app_limit: int) -> int:
    """The server's own request-line bound: twice ``SMSAGG_MAX_REQUEST_LINE``, so a line
    between the two reaches the app, which answers it in the API's own format; only a
    line past this gets the server's bare refusal (gunicorn: 414). Finite, so no client
    can stream an endless request line into a worker's memory."""
    return 2 * app_limit


def _allow_request_lines(limit: int) -> None:
    # gunicorn's limit_request_line is 4094 by default and capped at MAX_REQUEST_LINE
    # (8190) unless it is 0, which means unlimited (its pure-Python parser then buffers a
    # line of any length). Raising the cap keeps the bound finite and lets a
    # 1,000-destination bulk GET (~16 KB) in.
    gunicorn_message.MAX_REQUEST_LINE = max(gunicorn_message.MAX_REQUEST_LINE, limit)


def serve(host: str, port: int, *, workers: int, threads: int, max_request_line: int,
          factory: Callable[[], Flask] | None = None) -> None:
    """Serve ``factory()``'s app (default: the ingress, :func:`app.web.create_app`)."""
    line_limit = server_request_line_limit(max_request_line)
    _allow_request_lines(line_limit)
    IngressServer(
        {
            "bind": f"{host}:{port}",
            "workers": workers,
            "worker_class": "gthread",
            "threads": threads,
            "keepalive": 30,
            "backlog": 2048,
            "accesslog": None,
            "graceful_timeout": 10,
            # GMS mobile clients send a ``gms_user`` header; gunicorn drops header
            # names with underscores unless told otherwise. smsagg trusts no proxy
            # headers, so the usual underscore/dash spoofing risk does not apply.
            "header_map": "dangerous",
            "limit_request_line": line_limit,
            # Each worker process's heartbeat (smsagg status) starts with the process,
            # not with its first request.
            "post_worker_init": _start_heartbeat,
        },
        factory,
    ).run()
