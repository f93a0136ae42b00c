"""What the two HTTP front ends of the mobile services must do identically: the Flask
blueprint on the ingress (:mod:`app.gms.web`) and the asyncio CometD server
(:mod:`app.gms.cometd_server`). Both hand their request headers (any mapping with a
case-insensitive ``get``) to these functions, so a client gets the same identity and
the same refusals on either port.

* :func:`principal`: HTTP Basic credentials of an app or an agent, checked by the
  :class:`~app.gms.registry.Registry` behind the guard (docs/security.md): 401
  ``unauthorized`` for wrong ones and for an address or name locked out after too many
  failures; 503 ``authentication_busy`` with ``Retry-After`` when the password check is
  busy; 503 ``authentication_unavailable`` when Redis is away and the caches cannot answer.
* :func:`caller`: an app and its ``gms_user`` (header ``gms_user``, ``gms-user`` as
  some proxies rename it, or ``X-GMS-User``; the app's name when none is sent).
* :func:`body_too_large`: the 413 for a body over the limit.
* :func:`error_response`: a :class:`~app.gms.domain.GmsError` as status, JSON body
  and headers (``WWW-Authenticate`` on 401, ``Retry-After`` when the error has one).
"""

from __future__ import annotations

import base64
from collections.abc import Mapping

import redis
from werkzeug.datastructures import Authorization

from app.gms.domain import (
    AuthenticationBusy,
    AuthenticationUnavailable,
    GmsError,
    PayloadTooLarge,
    Unauthorized,
)
from app.gms.registry import Principal, Registry
from app.gms.services import Caller
from app.services.auth_guard import KdfBusy

USER_HEADERS = ("gms_user", "gms-user", "X-GMS-User")
REALM = "smsagg-gms"


def principal(registry: Registry, kind: str, headers: Mapping[str, str], address: str | None) -> Principal:
    """The authenticated app or agent (``kind``) of a request from client ``address``.
    May run the password KDF on a cache miss: the asyncio server calls it from a thread."""
    auth = Authorization.from_header(headers.get("Authorization"))
    if auth is None or auth.type != "basic" or not auth.username:
        raise Unauthorized(f"HTTP Basic credentials of a GMS {kind} are required")
    try:
        found = registry.authenticate(kind, auth.username, auth.password or "", address)
    except KdfBusy as busy:
        raise AuthenticationBusy(str(busy), retry_after=busy.retry_after) from None
    except redis.RedisError as error:
        raise AuthenticationUnavailable(f"credentials cannot be checked now: {error}", retry_after=1) from None
    if found is None:
        raise Unauthorized(f"unknown {kind} or wrong password")
    return found


def caller(registry: Registry, headers: Mapping[str, str], address: str | None) -> Caller:
    app = principal(registry, "app", headers, address)
    user = ""
    for header in USER_HEADERS:
        user = (headers.get(header) or "").strip()
        if user:
            break
    return Caller(app=app.name, user=user[:128] or app.name)


def body_too_large(limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(f"the request body is larger than the {limit} bytes allowed")


def error_response(error: GmsError) -> tuple[int, dict, dict[str, str]]:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = f'Basic realm="{REALM}"'
    if error.retry_after is not None:
        headers["Retry-After"] = str(error.retry_after)
    return error.status, error.to_json(), headers


def basic_auth_header(name: str, password: str) -> str:
    """``Authorization`` header value (used by tests and tools)."""
    return "Basic " + base64.b64encode(f"{name}:{password}".encode()).decode()
