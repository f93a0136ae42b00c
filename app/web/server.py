"""Running the ingress under gunicorn (the production WSGI server).

``gthread`` workers keep client connections alive (sync workers close every
connection) and measured best among gunicorn's workers on this machine
(DESIGN.md: ~3.5k req/s gthread vs ~2.4k sync for a bare Flask + LPUSH). Each
worker process builds its own app, Redis client and database engine after the fork.
"""

from __future__ import annotations

from gunicorn.app.base import BaseApplication


class IngressServer(BaseApplication):
    def __init__(self, options: dict):
        self.options = options
        super().__init__()

    def load_config(self) -> None:
        for key, value in self.options.items():
            self.cfg.set(key, value)

    def load(self):
        from app.web import create_app

        return create_app()


def _start_heartbeat(worker) -> None:
    worker.wsgi.extensions["smsagg"]["heartbeat"].start()


def serve(host: str, port: int, *, workers: int, threads: int) -> None:
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
            # Each worker process's heartbeat (smsagg status) starts with the process,
            # not with its first request.
            "post_worker_init": _start_heartbeat,
        }
    ).run()
