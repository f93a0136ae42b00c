"""The console's blueprint: thin views over :mod:`app.console.views`, under ``/console``.

Every page but the login page needs a logged-in operator (else a redirect to the login
page; ``/console/api/...`` answers 401 JSON); every POST needs the session's CSRF token
(:func:`app.console.auth.check_csrf`, else 403). Responses carry a strict
Content-Security-Policy (scripts and styles from ``/console/static`` only), deny
framing and are never cached.

:func:`install` wires it into the app (``create_app``): the session key and cookie, the
blueprint, and the optional login gate (a callable ``(login, remote_addr) -> bool``
asked before any password is checked; False answers 429 without running the KDF: the
hook for rate limiting failed logins).
"""

from __future__ import annotations

import logging
import time
from datetime import UTC, datetime
from typing import Any

import redis
from flask import (
    Blueprint,
    Flask,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as browser_session
from werkzeug.exceptions import HTTPException

from app.adapters.callback_queue import enqueue_callbacks
from app.bulk import batches
from app.bulk.store import BulkStore
from app.console import auth, operators, views
from app.console.models import Operator
from app.db.session import session_scope
from app.domain.auth_limits import Scope
from app.domain.states import MessageState
from app.services.auth_guard import AuthGuard, KdfBusy, LockedOut
from app.services import callbacks as callbacks_svc
from app.services.errors import InvalidValue, NotFound

log = logging.getLogger(__name__)

blueprint = Blueprint("console", __name__, url_prefix=auth.CONSOLE_PREFIX, template_folder="templates",
                      static_folder="static", static_url_path="/static")

PUBLIC_ENDPOINTS = frozenset({"console.login", "console.static"})
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
                               "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATE_NAMES = {int(state): state.name.lower() for state in MessageState}


def install(app: Flask) -> None:
    """The console on ``app``. Without a usable session key (``SMSAGG_SECRET_KEY`` unset
    and ``SMSAGG_HOME`` not writable) the console answers 503 saying so, and the rest
    of the ingress runs as ever."""
    settings = app.extensions["smsagg"]["settings"]
    unavailable = None
    try:
        key = auth.secret_key(settings.secret_key, settings.home)
    except (OSError, ValueError) as exc:
        unavailable = (f"The console has no session key: set SMSAGG_SECRET_KEY, or let this process write "
                       f"{settings.home / auth.SECRET_KEY_FILE} ({exc}).")
        log.error("console disabled: %s", unavailable)
    else:
        auth.configure_sessions(app, key=key, secure_cookie=settings.console_secure_cookie)
    store = app.extensions["smsagg"]["store"]
    app.extensions["console"] = {"bulk_store": BulkStore(store.client, settings.key_prefix),
                                 "unavailable": unavailable}
    app.register_blueprint(blueprint)


def _settings():
    return current_app.extensions["smsagg"]["settings"]


def _redis():
    return current_app.extensions["smsagg"]["store"].client


def _bulk_store() -> BulkStore:
    return current_app.extensions["console"]["bulk_store"]


def _unit_of_work():
    return session_scope(_settings().database_url)


# --- the gate every request passes ----------------------------------------------------------

@blueprint.before_request
def _guard():
    unavailable = current_app.extensions["console"]["unavailable"]
    if unavailable and request.endpoint != "console.static":
        return _error_page(503, unavailable)
    auth.check_csrf()
    if request.endpoint in PUBLIC_ENDPOINTS:
        return None
    g.operator = _logged_in_operator()
    if g.operator is None:
        if request.path.startswith(f"{auth.CONSOLE_PREFIX}/api/"):
            return jsonify(error="unauthorized", message="log in at /console/login"), 401
        target = request.full_path if request.method == "GET" else None
        return redirect(url_for("console.login", next=target.rstrip("?") if target else None))
    return None


def _logged_in_operator() -> str | None:
    operator_id = browser_session.get("operator")
    if not operator_id or time.time() - float(browser_session.get("opened", 0)) > auth.SESSION_HOURS * 3600:
        return None
    with _unit_of_work() as session:
        operator = session.get(Operator, operator_id)
        if operator is None or not operator.enabled or operators.session_stamp(operator) != browser_session.get("stamp"):
            auth.close_session()
            return None
        return operator.login


@blueprint.after_request
def _security_headers(response):
    response.headers.update(SECURITY_HEADERS)
    return response


@blueprint.app_template_global()
def csrf_token() -> str:
    return auth.csrf_token()


@blueprint.app_template_filter("when")
def _when(moment: datetime | float | None) -> str:
    if moment is None:
        return ""
    if isinstance(moment, (int, float)):
        moment = datetime.fromtimestamp(moment, UTC)
    if moment.tzinfo is None:  # SQLite gives naive datetimes back: they are UTC
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@blueprint.app_template_filter("state_name")
def _state_name(state: int | None) -> str:
    return STATE_NAMES.get(state, "") if state is not None else ""


@blueprint.errorhandler(NotFound)
def _not_found(error: NotFound):
    return _error_page(404, str(error))


@blueprint.errorhandler(InvalidValue)
def _invalid(error: InvalidValue):
    return _error_page(400, str(error))


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException):
    return _error_page(error.code or 500, error.description or error.name)


def _error_page(code: int, message: str):
    if request.path.startswith(f"{auth.CONSOLE_PREFIX}/api/"):
        return jsonify(error="error", message=message), code
    return render_template("console/error.html", code=code, message=message), code


# --- login ----------------------------------------------------------------------------------

def _safe_next(target: str | None) -> str:
    """Only a path of this console (never another site: no scheme, no ``//``)."""
    if target and auth.is_console_path(target) and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("console.status")


def _check_operator(name: str, password: str) -> tuple[int, str, str] | None:
    """The operator's id, login and session stamp, or ``None``; runs the KDF."""
    with _unit_of_work() as session:
        operator = operators.authenticate(session, name, password, datetime.now(UTC))
        return (operator.id, operator.login, operators.session_stamp(operator)) if operator else None


@blueprint.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "GET":
        return render_template("console/login.html", next=request.args.get("next", ""))
    name, password = request.form.get("login", ""), request.form.get("password", "")
    next_page = request.form.get("next", "")
    guard: AuthGuard = current_app.extensions["smsagg"]["auth_guard"]
    try:
        found = guard.attempt(Scope.OPERATOR, name, request.remote_addr, lambda: _check_operator(name, password))
    except LockedOut:
        return render_template("console/login.html", next=next_page,
                               error="Too many attempts: wait a while and try again."), 429
    except (KdfBusy, redis.RedisError):
        return render_template("console/login.html", next=next_page,
                               error="The login check is busy or unavailable: try again in a moment."), 503
    if found is None:
        log.warning("console: failed login for %r from %s", name[:64], request.remote_addr)
        return render_template("console/login.html", next=next_page, error="Wrong login or password."), 200
    auth.open_session(*found, now=time.time())
    log.info("console: %s logged in from %s", found[1], request.remote_addr)
    return redirect(_safe_next(next_page))


@blueprint.post("/logout")
def logout():
    auth.close_session()
    return redirect(url_for("console.login"))


# --- status ---------------------------------------------------------------------------------

def _status() -> dict[str, Any]:
    with _unit_of_work() as session:
        return views.status(session, _redis(), _settings().key_prefix)


@blueprint.get("/")
def status():
    return render_template("console/status.html", status=_status())


@blueprint.get("/api/status")
def status_json():
    return jsonify(_status())


# --- messages -------------------------------------------------------------------------------

@blueprint.get("/messages")
def messages():
    query = request.args.get("q", "").strip()
    with _unit_of_work() as session:
        found = views.find_messages(session, query) if query else []
    if len(found) == 1:
        return redirect(url_for("console.message", message_id=found[0]["id"]))
    return render_template("console/messages.html", query=query, found=found)


@blueprint.get("/messages/<message_id>")
def message(message_id: str):
    with _unit_of_work() as session:
        view = views.message_timeline(session, message_id)
    return render_template("console/message.html", message=view)


# --- callbacks ------------------------------------------------------------------------------

@blueprint.get("/callbacks")
def callbacks():
    status_filter = request.args.get("status", "dead") or None
    account = request.args.get("account", "").strip() or None
    with _unit_of_work() as session:
        rows = views.list_callbacks(session, status=status_filter, account=account)
    return render_template("console/callbacks.html", rows=rows, status=status_filter, account=account or "",
                           statuses=callbacks_svc.STATUSES)


@blueprint.get("/callbacks/<callback_id>")
def callback(callback_id: str):
    with _unit_of_work() as session:
        view = views.callback_detail(session, callback_id)
    return render_template("console/callback.html", callback=view)


@blueprint.post("/callbacks/replay")
def replay_callbacks():
    ids = [i for i in request.form.getlist("id") if i]
    replay_all = request.form.get("all") == "1"
    if not ids and not replay_all:
        raise InvalidValue("choose the callbacks to replay")
    account = request.form.get("account", "").strip() or None
    client = _redis()
    replayed = callbacks_svc.replay_and_enqueue(
        _settings().database_url, lambda found: enqueue_callbacks(client, found), ids=() if replay_all else ids,
        all_failed=replay_all, account=account if replay_all else None,
        refresh_url=request.form.get("keep_url") != "1")
    log.info("console: %s replayed %d callback(s)", g.operator, len(replayed))
    skipped = len(ids) - len(replayed) if ids else 0
    flash(f"{len(replayed)} callback(s) queued again" + (f"; {skipped} not dead, left alone" if skipped else ""))
    if len(ids) == 1:
        return redirect(url_for("console.callback", callback_id=ids[0]))
    return redirect(url_for("console.callbacks"))


# --- schedules and campaigns ----------------------------------------------------------------

@blueprint.get("/schedules")
def schedules():
    with _unit_of_work() as session:
        waiting = views.scheduled(session, _bulk_store())
        recent = views.campaigns(session, _bulk_store())
    return render_template("console/schedules.html", waiting=waiting, campaigns=recent)


@blueprint.post("/schedules/<batch_id>/cancel")
def cancel_schedule(batch_id: str):
    with _unit_of_work() as session:
        done, state = batches.cancel(session, _bulk_store(), batch_id[:24])
    log.info("console: %s cancelling batch %s: %s", g.operator, batch_id[:24], state)
    if not done and state == "missing":
        raise NotFound(f"no scheduled batch {batch_id[:24]}")
    flash(f"batch {batch_id[:24]} cancelled" if done else f"batch {batch_id[:24]} not cancelled: {state}")
    return redirect(url_for("console.schedules"))


@blueprint.get("/batches")
def batch_lookup():
    batch_id = request.args.get("batch", "").strip()
    if not batch_id:
        return redirect(url_for("console.schedules"))
    return redirect(url_for("console.batch", batch_id=batch_id[:24]))


@blueprint.get("/batches/<batch_id>")
def batch(batch_id: str):
    with _unit_of_work() as session:
        figures = views.batch_progress(session, _bulk_store(), batch_id)
    return render_template("console/batch.html", batch=figures)


@blueprint.get("/api/batches/<batch_id>")
def batch_json(batch_id: str):
    with _unit_of_work() as session:
        return jsonify(views.batch_progress(session, _bulk_store(), batch_id))


# --- directory (read only) ------------------------------------------------------------------

@blueprint.get("/accounts")
def accounts():
    with _unit_of_work() as session:
        return render_template("console/accounts.html", rows=views.accounts(session))


@blueprint.get("/senders")
def senders():
    with _unit_of_work() as session:
        return render_template("console/senders.html", rows=views.senders(session))


@blueprint.get("/carriers")
def carriers():
    with _unit_of_work() as session:
        return render_template("console/carriers.html", rows=views.carriers(session))


@blueprint.get("/routes")
def routes():
    with _unit_of_work() as session:
        return render_template("console/routes.html", rows=views.routes(session))
