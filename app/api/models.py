"""Tables of the REST API (migration branch ``api``, ``0400_api.py``).

* ``api_keys``: an account's API keys. Only a SHA-256 digest of each token is kept
  (:mod:`app.api.keys` says why no KDF); ``id`` is the public part of the token, safe
  to print and log. A rotated key keeps its previous digest until
  ``previous_expires_at`` so clients can switch over without a gap.
* The index ``ix_messages_account_accepted`` on the core ``messages`` table serves the
  API's paged list (one account, newest first, keyset on ``(accepted_at, id)``); it is
  declared here, beside its one user, and created by the same migration.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow
from app.db.models import Message


class ApiKey(Base):
    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    name: Mapped[str | None] = mapped_column(String(64), nullable=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    previous_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    previous_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


MESSAGES_BY_ACCOUNT = Index("ix_messages_account_accepted", Message.account_id, Message.accepted_at, Message.id)
