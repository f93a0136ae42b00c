"""GMS HTTP endpoints (``/genesys/1/...``)."""

from flask import Blueprint

blueprint = Blueprint("gms", __name__)
