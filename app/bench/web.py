"""The bare baseline ``smsagg bench ingress`` and ``smsagg bench rest`` compare against:
the same server, one Redis ``LPUSH`` and nothing else.

It is registered only in the bench's own app (:func:`create_bench_app`: the product's
app plus ``/_bench/baseline``), served by ``smsagg bench web``; the production app
never has it."""

from __future__ import annotations

from flask import Blueprint, Flask, Response, current_app, request

from app.web import create_app

blueprint = Blueprint("bench", __name__)


@blueprint.route("/_bench/baseline", methods=["GET", "POST"])
def baseline() -> Response:
    store = current_app.extensions["smsagg"]["store"]
    request.get_data(cache=False)
    store.client.lpush(store.keys.prefix + "bench:baseline", b"x")
    return Response("result_code=0", status=200, mimetype="text/plain")


def create_bench_app() -> Flask:
    app = create_app()
    app.register_blueprint(blueprint)
    return app

