"""Giving credit back for a message that never reached a carrier (seed 001: credit is
debited at acceptance; issue 5: "a message rejected before it reaches the carrier is
refunded"). The refund runs after the rejection is committed and is idempotent per
message, so a redelivered task never refunds twice."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.orm import Session

from app.db.session import after_commit

Refund = Callable[[int, int, str], object]
"""Gives (account id, credit units, message id) back, once per message id: the bulk
area's :func:`app.bulk.credit.refund`, injected by the composition root."""


def refund_if_prepaid(session: Session, refund: Refund, account_id: int, message_id: str, price: int | None) -> None:
    if not price:
        return
    after_commit(session, lambda: refund(account_id, int(price), message_id))
