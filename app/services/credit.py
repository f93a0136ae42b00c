"""Giving credit back for a message that never reached a carrier (seed 001: credit is
debited at acceptance; issue 5: "a message rejected before it reaches the carrier is
refunded"). The refund runs after the rejection is committed and is idempotent per
message, so a redelivered task never refunds twice."""

from __future__ import annotations

from sqlalchemy.orm import Session

from app.db.session import after_commit


def refund_if_prepaid(session: Session, account_id: int, message_id: str, price: int | None) -> None:
    if not price:
        return

    def give_back() -> None:
        from app.bulk.credit import refund

        refund(account_id, int(price), message_id)

    after_commit(session, give_back)
