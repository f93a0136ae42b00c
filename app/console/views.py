"""What the console's pages show, gathered with the services the CLI and the APIs use:
``describe_message`` (the REST API's message view), the callbacks service (list, show,
replay), the bulk batches (scheduled, cancel, progress), ``gateway_status`` (the parts'
heartbeats and the stages' backlogs). No Flask here: plain functions of a session or a
Redis client, each returning plain data for a template or a JSON answer.

Nothing secret leaves this module: no password hash, no callback secret, no carrier
password or token, no HTTP carrier parameter value (credentials live there), and URLs
lose their user info and the values of their query string (:func:`public_url`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import redis
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from app.api.service import describe_message
from app.bulk import batches
from app.bulk.models import Batch
from app.bulk.store import BulkStore
from app.db.models import Account, Callback, Carrier, Message
from app.services import accounts as accounts_svc
from app.services import callbacks as callbacks_svc
from app.services.errors import NotFound
from app.services.status import gateway_status

SHOWN_CARRIER_SETTINGS = ("host", "port", "system_id", "system_type", "bind_mode", "binds", "window",
                          "response_timeout", "enquire_link_interval", "concat_mode", "preset", "method", "timeout",
                          "concurrency")
"""Carrier settings shown as they are; ``url`` is shown through :func:`public_url`,
``params`` by name only, any other key (``password``, ``webhook_token``, ...) by name only."""
SEARCH_LIMIT = 50
CAMPAIGNS_SHOWN = 20


def public_url(url: str | None) -> str | None:
    """``url`` without user info and with its query values masked:
    ``https://u:p@host/cb?token=abc`` -> ``https://host/cb?token=***``."""
    if not url:
        return url
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "(unreadable URL)"
    if ":" in host:
        host = f"[{host}]"
    query = "&".join(f"{name}=***" for name, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, host + port, parts.path, query, ""))


def _utc(moment: datetime | None) -> datetime | None:
    return callbacks_svc.utc(moment)


# --- status ---------------------------------------------------------------------------------

def status(session: Session, client: redis.Redis, key_prefix: str) -> dict[str, Any]:
    """The status summary (``smsagg status``) with carrier names."""
    summary = gateway_status(client, key_prefix).as_dict()
    names = dict(session.execute(select(Carrier.id, Carrier.name)).all())
    for carrier in summary["carriers"]:
        carrier["name"] = names.get(carrier["carrier_id"], "?")
    return summary


# --- messages -------------------------------------------------------------------------------

def find_messages(session: Session, query: str, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """Messages whose smsagg id or client ``message_id`` is ``query``, across accounts.
    The client id is looked up per account (the unique index is (account, message_id))."""
    query = query.strip()
    if not query:
        return []
    account_ids = list(session.scalars(select(Account.id)))
    by_client_id = Message.client_message_id == query
    if account_ids:
        by_client_id = Message.account_id.in_(account_ids) & by_client_id
    rows = session.execute(
        select(Message.id, Message.client_message_id, Message.state, Message.phone_number, Message.accepted_at,
               Account.login).join(Account, Account.id == Message.account_id)
        .where(or_(Message.id == query, by_client_id)).order_by(Message.accepted_at.desc()).limit(limit))
    return [{"id": r.id, "message_id": r.client_message_id, "state": r.state, "phone_number": r.phone_number,
             "accepted_at": _utc(r.accepted_at), "account": r.login} for r in rows]


def message_timeline(session: Session, message_id: str) -> dict[str, Any]:
    """The status API's view of one message (smsagg's id), its account, and one list of
    what happened in time order: events and callback attempts."""
    message = session.get(Message, message_id)
    if message is None:
        raise NotFound(f"no message {message_id!r}")
    callbacks = list(session.scalars(select(Callback).where(Callback.message_id == message.id)
                                     .order_by(Callback.created_at, Callback.id)))
    view = describe_message(message, callbacks).model_dump(mode="json")
    view["account"] = session.scalar(select(Account.login).where(Account.id == message.account_id))
    view["text_length"] = len(message.text)
    for callback, row in zip(view["callbacks"], callbacks):
        callback["url"] = public_url(row.url)
    view["timeline"] = _timeline(message, callbacks)
    return view


def _timeline(message: Message, callbacks: list[Callback]) -> list[dict[str, Any]]:
    entries = [{"at": _utc(e.at), "what": e.kind, "state": e.state, "detail": e.detail} for e in message.events]
    for callback in callbacks:
        state = next((value for name, value in callback.fields if name == "message_state"), None)
        for attempt in callback.attempt_log:
            outcome = f"HTTP {attempt.status_code}" if attempt.status_code is not None else (attempt.error or "failed")
            entries.append({"at": _utc(attempt.at), "what": f"{callback.kind} callback",
                            "state": int(state) if state is not None else None,
                            "detail": {"callback": callback.id, "outcome": outcome,
                                       "latency_ms": attempt.latency_ms}})
    entries.sort(key=lambda e: e["at"] or datetime.min.replace(tzinfo=UTC))
    start = entries[0]["at"] if entries else None
    for entry in entries:
        entry["offset_seconds"] = round((entry["at"] - start).total_seconds(), 3) if start and entry["at"] else None
    return entries


# --- callbacks ------------------------------------------------------------------------------

def _public_callback(view: dict[str, Any]) -> dict[str, Any]:
    return {**view, "url": public_url(view.get("url"))}


def list_callbacks(session: Session, *, status: str | None = "dead", account: str | None = None,
                   limit: int = 100) -> list[dict[str, Any]]:
    return [_public_callback(row) for row in callbacks_svc.list_callbacks(session, status=status, account=account,
                                                                          limit=limit)]


def callback_detail(session: Session, callback_id: str) -> dict[str, Any]:
    return _public_callback(callbacks_svc.describe_callback(session, callback_id))


# --- schedules and campaigns ----------------------------------------------------------------

def _logins(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Account.id, Account.login)).all())


def scheduled(session: Session, store: BulkStore) -> list[dict[str, Any]]:
    """What waits to be released, soonest first (``smsagg schedule list``)."""
    logins = _logins(session)
    return [{"batch_id": s.batch_id, "account": logins.get(s.account_id, str(s.account_id)),
             "due": datetime.fromtimestamp(s.due, UTC), "destinations": s.destinations, "message": s.message}
            for s in batches.list_scheduled(store)]


def campaigns(session: Session, store: BulkStore, limit: int = CAMPAIGNS_SHOWN) -> list[dict[str, Any]]:
    """The newest scheduled campaigns with their progress (``smsagg batch status``)."""
    logins = _logins(session)
    result = []
    for row in session.scalars(select(Batch).order_by(Batch.created_at.desc()).limit(limit)):
        figures = batches.progress(session, store, row.id)
        if figures is not None:
            result.append({**figures.as_dict(), "account": logins.get(row.account_id, str(row.account_id)),
                           "due": _utc(row.due_at)})
    return result


def batch_progress(session: Session, store: BulkStore, batch_id: str) -> dict[str, Any]:
    figures = batches.progress(session, store, batch_id[:24])
    if figures is None:
        raise NotFound(f"no batch {batch_id[:24]}")
    return figures.as_dict()


# --- directory (read only) ------------------------------------------------------------------

def accounts(session: Session) -> list[dict[str, Any]]:
    """Every account as ``smsagg account show`` prints it, minus the callback secret."""
    rows = []
    for account in accounts_svc.list_accounts(session):
        view = accounts_svc.describe_account(account)
        view.pop("callback_secret")
        view["dr_url"], view["mo_url"] = public_url(view["dr_url"]), public_url(view["mo_url"])
        rows.append(view)
    return rows


def senders(session: Session) -> list[dict[str, Any]]:
    logins = _logins(session)
    return [{"address": s.address, "kind": s.kind, "account": logins.get(s.account_id) if s.account_id else None,
             "enabled": s.enabled} for s in accounts_svc.list_senders(session)]


def carriers(session: Session) -> list[dict[str, Any]]:
    rows = []
    for carrier in accounts_svc.list_carriers(session):
        settings = dict(carrier.settings or {})
        shown = {key: settings[key] for key in SHOWN_CARRIER_SETTINGS if key in settings}
        if "url" in settings:
            shown["url"] = public_url(str(settings["url"]))
        if isinstance(settings.get("params"), dict):
            shown["params"] = sorted(settings["params"])
        hidden = sorted(set(settings) - set(shown))
        rows.append({"id": carrier.id, "name": carrier.name, "connector": carrier.connector,
                     "throughput": carrier.throughput, "enabled": carrier.enabled, "settings": shown,
                     "hidden_settings": hidden})
    return rows


def routes(session: Session) -> list[dict[str, Any]]:
    names = dict(session.execute(select(Carrier.id, Carrier.name)).all())
    return [{"prefix": r.prefix or "(default)", "carrier": r.carrier_id, "carrier_name": names.get(r.carrier_id),
             "weight": r.weight, "position": r.position} for r in accounts_svc.list_routes(session)]
