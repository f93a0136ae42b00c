"""``/healthz``: is this ingress able to accept messages (Redis reachable)?"""

from __future__ import annotations

import redis
from flask import Blueprint, current_app, jsonify

blueprint = Blueprint("health", __name__)


@blueprint.get("/healthz")
def healthz():
    store = current_app.extensions["smsagg"]["store"]
    try:
        store.ping()
    except redis.RedisError as exc:
        return jsonify(status="unavailable", redis=str(exc)), 503
    return jsonify(status="ok")
