"""``GET /api/v1/messages/<message_id>``: a message's state, carrier, segments and
timeline (events and callback attempts), as JSON, for its own account only.

Authentication is HTTP Basic with the account's login and password (the same cached
check as the MT API). ``message_id`` is the client's ``message_id``, or smsagg's own
id (what the bulk API replies). 401 without valid credentials, 404 for a message
this account does not have (another account's message is indistinguishable from a
missing one).
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request
from sqlalchemy import or_, select

from app.db.models import Callback, Message
from app.db.session import session_scope
from app.domain.states import MessageState

blueprint = Blueprint("status_api", __name__)


def _iso(moment) -> str | None:
    return moment.isoformat() if moment is not None else None


def _unauthorized():
    response = jsonify(error="unauthorized", message="HTTP Basic with the account's login and password")
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Basic realm="smsagg"'
    return response


def describe_message(message: Message, callbacks: list[Callback]) -> dict:
    state = MessageState(message.state)
    return {
        "id": message.id,
        "message_id": message.client_message_id,
        "phone_number": message.phone_number,
        "sender": message.sender,
        "priority": message.priority,
        "state": int(state),
        "state_name": state.name.lower(),
        "result_code": message.result_code,
        "carrier": message.carrier_id,
        "segments": message.segments,
        "accepted_at": _iso(message.accepted_at),
        "segment_submits": [
            {"seq": s.seq, "carrier": s.carrier_id, "smsc_message_id": s.smsc_message_id, "state": s.state,
             "submitted_at": _iso(s.submitted_at)}
            for s in message.submits
        ],
        "events": [{"at": _iso(e.at), "kind": e.kind, "state": e.state, "detail": e.detail} for e in message.events],
        "callbacks": [
            {"id": c.id, "kind": c.kind, "status": c.status, "fields": dict(c.fields), "attempts": [
                {"at": _iso(a.at), "status_code": a.status_code, "latency_ms": a.latency_ms, "error": a.error}
                for a in c.attempt_log]}
            for c in callbacks
        ],
    }


@blueprint.get("/api/v1/messages/<message_id>")
def message_status(message_id: str):
    auth = request.authorization
    if auth is None or not auth.username or auth.password is None:
        return _unauthorized()
    account = current_app.extensions["smsagg"]["directory"].authenticate(auth.username, auth.password)
    if account is None:
        return _unauthorized()
    settings = current_app.extensions["smsagg"]["settings"]
    with session_scope(settings.database_url) as session:
        message = session.scalars(select(Message).where(
            Message.account_id == account.id,
            or_(Message.client_message_id == message_id, Message.id == message_id),
        ).limit(1)).first()
        if message is None:
            return jsonify(error="not_found", message=f"no message {message_id!r} for this account"), 404
        callbacks = list(session.scalars(select(Callback).where(Callback.message_id == message.id)
                                         .order_by(Callback.created_at, Callback.id)))
        return jsonify(describe_message(message, callbacks))
