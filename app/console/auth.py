"""Console sessions, the key that signs them, and CSRF tokens.

**Session.** Flask's signed cookie session (itsdangerous HMAC-SHA1 over the JSON
payload), named ``smsagg_console``, ``Path=/console``, ``HttpOnly``,
``SameSite=Strict``, and ``Secure`` with ``SMSAGG_CONSOLE_SECURE_COOKIE=true`` (the
console behind TLS). :class:`ConsoleSessionInterface` opens the cookie only for paths
under ``/console``: every other request (the MT API's hot path) gets Flask's null
session as before and verifies nothing. A session holds the operator's id, a stamp of
their password hash (:func:`app.console.operators.session_stamp`), when it was opened
and a CSRF token. Each console request re-reads the operator: a disabled operator, a
changed password or a session older than :data:`SESSION_HOURS` is logged out.

**Secret key.** ``SMSAGG_SECRET_KEY``; unset, a random key is generated once and kept
in ``$SMSAGG_HOME/secret_key`` (mode 0600), so every ingress process of a host agrees.
Several hosts serving one console address must be given the same ``SMSAGG_SECRET_KEY``.

**CSRF.** A synchronizer token: 32 random bytes per session, sent back with every form
(field ``csrf_token``) and every ``fetch`` that changes something (header
``X-CSRF-Token``); any POST under ``/console`` without the session's token is refused
with 403 before its view runs. A browser's ``Origin`` header, when sent, must name this
host too. The cookie's ``SameSite=Strict`` is a second, independent line.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask, Request, abort, current_app, request, session
from flask.sessions import SecureCookieSessionInterface

log = logging.getLogger(__name__)

CONSOLE_PREFIX = "/console"
COOKIE_NAME = "smsagg_console"
SESSION_HOURS = 12
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECRET_KEY_FILE = "secret_key"


def is_console_path(path: str) -> bool:
    return path == CONSOLE_PREFIX or path.startswith(CONSOLE_PREFIX + "/")


class ConsoleSessionInterface(SecureCookieSessionInterface):
    """Signed cookie sessions for ``/console`` only; no session work anywhere else."""

    def open_session(self, app: Flask, request: Request):
        # PATH_INFO, not request.path: that one is rebuilt (and decoded) on every access,
        # and this runs for every request of the ingress.
        if not is_console_path(request.environ.get("PATH_INFO", "")):
            return None
        return super().open_session(app, request)


def secret_key(configured: str | None, home: Path) -> str:
    """The configured key, else the one kept in ``home`` (created once, 0600)."""
    if configured:
        return configured
    path = home / SECRET_KEY_FILE
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    home.mkdir(parents=True, exist_ok=True)
    draft = home / f".{SECRET_KEY_FILE}.{os.getpid()}.{secrets.token_hex(4)}"
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(32) + "\n")
        try:
            os.link(draft, path)  # atomic: a process that lost the race reads the winner's key
            log.info("generated the console's session key in %s", path)
        except FileExistsError:
            pass
    finally:
        draft.unlink(missing_ok=True)
    return _read_key(path)


def _read_key(path: Path) -> str:
    key = path.read_text().strip()
    if len(key) < 32:
        raise ValueError(f"{path} holds no usable key (delete it to have a new one generated)")
    if path.stat().st_mode & 0o077:
        log.warning("%s is readable by other users; it signs console sessions (chmod 600 it)", path)
    return key


def configure_sessions(app: Flask, *, key: str, secure_cookie: bool) -> None:
    app.secret_key = key
    app.session_interface = ConsoleSessionInterface()
    app.config.update(SESSION_COOKIE_NAME=COOKIE_NAME, SESSION_COOKIE_PATH=CONSOLE_PREFIX,
                      SESSION_COOKIE_HTTPONLY=True, SESSION_COOKIE_SAMESITE="Strict",
                      SESSION_COOKIE_SECURE=secure_cookie, PERMANENT_SESSION_LIFETIME=SESSION_HOURS * 3600)


def csrf_token() -> str:
    """This session's token (created on first use); none without a session key."""
    if not current_app.secret_key:
        return ""
    token = session.get(CSRF_FIELD)
    if not token:
        token = session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """403 for a state-changing request without this session's token or from another origin."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(CSRF_FIELD)
    sent = request.headers.get(CSRF_HEADER) or request.form.get(CSRF_FIELD) or ""
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(403, description="The form has expired or did not come from this console: reload the page and "
                               "try again.")
    origin = request.headers.get("Origin")
    # Host names only: behind a TLS proxy the scheme, and with nginx's $host the port, differ.
    if origin and urlsplit(origin).hostname != urlsplit("//" + request.host).hostname:
        abort(403, description="This request came from another site.")


def open_session(operator_id: int, login: str, stamp: str, now: float) -> None:
    """A fresh session for a logged-in operator (a new CSRF token too)."""
    session.clear()
    session.update(operator=operator_id, login=login, stamp=stamp, opened=now,
                   **{CSRF_FIELD: secrets.token_urlsafe(32)})


def close_session() -> None:
    session.clear()
