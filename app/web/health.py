"""The ingress's probes (the other parts': :mod:`app.health`).

* ``GET /livez``: the process answers HTTP, nothing more (kubelet's liveness probe: a
  Redis or database outage must not get every ingress restarted; they ride it out).
* ``GET /healthz``: this ingress can accept messages (Redis answers); ``503`` if not.
* ``GET /readyz``: Redis and the database answer; ``503`` with what does not
  (readiness: a load balancer sends no client to an ingress that could only refuse).
"""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

from app.health import database_error, redis_error

blueprint = Blueprint("health", __name__)


@blueprint.get("/livez")
def livez():
    return jsonify(status="ok")


@blueprint.get("/healthz")
def healthz():
    store = current_app.extensions["smsagg"]["store"]
    try:
        store.ping()
    except redis.RedisError as exc:
        return jsonify(status="unavailable", redis=str(exc)), 503
    return jsonify(status="ok")


@blueprint.get("/readyz")
def readyz():
    extensions = current_app.extensions["smsagg"]
    problems = {"redis": redis_error(extensions["store"].client),
                "database": database_error(extensions["settings"].database_url)}
    checks = {name: problem or "ok" for name, problem in problems.items()}
    if any(problems.values()):
        return jsonify(status="unavailable", **checks), 503
    return jsonify(status="ready", **checks)
