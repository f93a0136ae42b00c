"""The ingress's heartbeat (:mod:`app.adapters.heartbeats`): part ``ingress``, one
per ingress process.

Under ``smsagg web`` (granian or gunicorn) it starts with each worker process
(:mod:`app.web.server`); under any other WSGI server with the first request the
process serves. An app that never serves (a test, a tool that only
builds it) starts no thread. The per-request cost is one check of a flag; the Redis
write happens on the heartbeat's own thread, never on a request. It stops (and
deletes its key) when the app is garbage collected or the process exits.
"""

from __future__ import annotations

import weakref

import redis
from flask import Flask

from app.adapters.heartbeats import Heartbeat


def install(app: Flask, client: redis.Redis, key_prefix: str) -> Heartbeat:
    heartbeat = Heartbeat(client, key_prefix, "ingress")
    weakref.finalize(app, heartbeat.stop)
    app.extensions["smsagg"]["heartbeat"] = heartbeat

    @app.before_request
    def _start_heartbeat() -> None:
        if not heartbeat.started:
            heartbeat.start()

    return heartbeat
