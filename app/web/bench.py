"""The bare baseline ``smsagg bench ingress`` compares against: the same server,
one Redis ``LPUSH`` and nothing else. Registered only with ``SMSAGG_BENCH_ENDPOINTS=1``."""

from __future__ import annotations

from flask import Blueprint, Response, current_app, request

blueprint = Blueprint("bench", __name__)


@blueprint.route("/_bench/baseline", methods=["GET", "POST"])
def baseline() -> Response:
    store = current_app.extensions["smsagg"]["store"]
    request.get_data(cache=False)
    store.client.lpush(store.keys.prefix + "bench:baseline", b"x")
    return Response("result_code=0", status=200, mimetype="text/plain")
