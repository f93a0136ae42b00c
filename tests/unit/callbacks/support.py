"""Rows for callback tests: accounts and outbox rows written directly (the inbound side
that creates them in production is tested on its own)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select

from app.db.models import Account, Callback, CallbackAttempt
from app.db.session import session_scope
from app.services import accounts as accounts_svc
from app.services.accounts import AccountOptions


def make_account(database_url: str, login: str, *, dr_url: str | None = None, interval: int = 1,
                 retries: int = 25) -> tuple[int, str]:
    """(account id, callback secret)."""
    with session_scope(database_url) as session:
        accounts_svc.create_account(session, login, "pw-" + login, senders=(), default_max_length=1600,
                                    options=AccountOptions(dr_url=dr_url, callback_retry_interval=interval,
                                                           callback_max_retries=retries))
    with session_scope(database_url) as session:
        account = session.scalar(select(Account).where(Account.login == login))
        return account.id, account.callback_secret


def dr_fields(message_id: str, state: int = 2) -> list[list[str]]:
    return [["type", "receipt"], ["message_id", message_id], ["message_state", str(state)], ["result_code", "0"]]


def make_callback(database_url: str, account_id: int, url: str, *, message_id: str | None = None,
                  client_message_id: str | None = None, state: int = 2, max_retries: int = 25,
                  retry_interval: int = 1, created_at: datetime | None = None,
                  next_attempt_at: datetime | None = None, kind: str = "dr") -> str:
    callback_id = uuid.uuid4().hex
    now = datetime.now(UTC)
    with session_scope(database_url) as session:
        session.add(Callback(
            id=callback_id, account_id=account_id, message_id=message_id, kind=kind, url=url,
            fields=dr_fields(client_message_id or message_id or callback_id, state), status="pending", attempts=0,
            max_retries=max_retries, retry_interval=retry_interval, created_at=created_at or now,
            next_attempt_at=next_attempt_at or created_at or now,
        ))
    return callback_id


def load(database_url: str, callback_id: str) -> tuple[Callback, list[CallbackAttempt]]:
    with session_scope(database_url) as session:
        callback = session.get(Callback, callback_id)
        attempts = list(session.scalars(select(CallbackAttempt).where(CallbackAttempt.callback_id == callback_id)
                                        .order_by(CallbackAttempt.id)))
        session.expunge_all()
        return callback, attempts
