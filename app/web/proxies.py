"""WSGI middleware that gives every view the client's address (:mod:`app.domain.forwarded`)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from app.domain.forwarded import Network, client_address


class TrustedProxies:
    """WSGI middleware: ``REMOTE_ADDR`` becomes :func:`client_address` of the request."""

    def __init__(self, app: Callable, trusted: Iterable[Network]):
        self.app = app
        self.trusted = tuple(trusted)

    def __call__(self, environ: dict[str, Any], start_response: Callable):
        peer = environ.get("REMOTE_ADDR")
        forwarded = environ.get("HTTP_X_FORWARDED_FOR")
        if forwarded is not None:
            environ["REMOTE_ADDR"] = client_address(peer, [forwarded], self.trusted)
        return self.app(environ, start_response)
