"""Managing console operators (``smsagg operator ...``) and checking their logins.

Each function takes an open session and leaves the commit to the caller's unit of
work. Passwords are stored as scrypt hashes (:mod:`app.services.passwords`), never
returned or logged.
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.console.models import Operator
from app.services.errors import AlreadyExists, InvalidValue, NotFound
from app.services.passwords import dummy_hash, hash_password, verify_password

MIN_PASSWORD_LENGTH = 8
MAX_LOGIN_LENGTH = 64


def _valid_login(login: str) -> str:
    if not login or len(login) > MAX_LOGIN_LENGTH or not login.isprintable() or login != login.strip():
        raise InvalidValue(f"operator login must be 1 to {MAX_LOGIN_LENGTH} printable characters, "
                           "without surrounding spaces")
    return login


def _valid_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise InvalidValue(f"operator password must be at least {MIN_PASSWORD_LENGTH} characters")
    return password


def get_operator(session: Session, login: str) -> Operator:
    operator = session.scalar(select(Operator).where(Operator.login == login))
    if operator is None:
        raise NotFound(f"no operator {login!r}")
    return operator


def add_operator(session: Session, login: str, password: str) -> Operator:
    _valid_login(login)
    _valid_password(password)
    if session.scalar(select(Operator.id).where(Operator.login == login)) is not None:
        raise AlreadyExists(f"operator {login!r} already exists")
    operator = Operator(login=login, password_hash=hash_password(password), enabled=True)
    session.add(operator)
    session.flush()
    return operator


def set_password(session: Session, login: str, password: str) -> None:
    """A new password; the operator's open console sessions end (:func:`session_stamp`)."""
    get_operator(session, login).password_hash = hash_password(_valid_password(password))


def set_enabled(session: Session, login: str, enabled: bool) -> None:
    """Disabling ends the operator's open console sessions at their next request."""
    get_operator(session, login).enabled = enabled


def list_operators(session: Session) -> list[Operator]:
    return list(session.scalars(select(Operator).order_by(Operator.login)))


def authenticate(session: Session, login: str, password: str, now: datetime) -> Operator | None:
    """The enabled operator with these credentials, or None. An unknown or disabled
    login costs one scrypt verification too, so the answer's timing does not tell which
    logins exist."""
    operator = session.scalar(select(Operator).where(Operator.login == login)) if login else None
    valid = verify_password(password, operator.password_hash if operator is not None else dummy_hash())
    if operator is None or not valid or not operator.enabled:
        return None
    operator.last_login_at = now
    return operator


def session_stamp(operator: Operator) -> str:
    """Ties a console session to the password it was opened with: a new password
    changes the stamp, and sessions carrying the old one are refused."""
    return hashlib.sha256(operator.password_hash.encode()).hexdigest()[:16]
