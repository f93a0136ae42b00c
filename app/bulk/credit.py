"""Prepaid credit: balances, top-ups, refunds, and the ledger.

* The live balance of a prepaid account is the Redis key ``credit:<account id>``, in
  credit units (1/10,000 credit). Acceptance debits it inside the admission script, so
  parallel requests can never overdraw it (bulk: the whole request or nothing, 1725;
  Genesys: the message or 99).
* Every change (debit, refund, cancellation, top-up) is journaled by the same atomic
  step in the Redis list ``credit:journal``; beat drains it into the database ledger
  (``bulk_credit_ledger``, one row per unique reference), which is what rebuilds a
  balance Redis lost (:func:`resync_balances`, run when beat starts).
* A postpaid account (the default) has no balance and is never refused for credit.

The delivery side calls :func:`refund` for a message rejected before it reached a
carrier (no route, a permanent submit error): idempotent per message id.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timezone

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.bulk.models import BulkAccountPolicy, CreditEntry
from app.bulk.store import BulkStore
from app.services.errors import InvalidValue

log = logging.getLogger(__name__)

_KINDS = {"debit": "debit", "refund": "refund", "cancel": "cancel", "topup": "topup", "adjust": "adjust"}


def refund(account_id: int, amount: int, message_id: str, *, store: BulkStore | None = None) -> bool:
    """Give ``amount`` credit units back to ``account_id`` for ``message_id``, once.

    Returns whether this call refunded (False: already refunded, amount 0, or a
    postpaid account). Pass the task payload's ``price``.
    """
    if store is None:
        from app.bulk.runtime import default_store

        store = default_store()
    return store.refund(account_id, int(amount), message_id)


def policy(session: Session, account_id: int) -> BulkAccountPolicy:
    row = session.get(BulkAccountPolicy, account_id)
    if row is None:
        row = BulkAccountPolicy(account_id=account_id, prepaid=False, templates_only=False)
        session.add(row)
        session.flush()
    return row


def ledger_balance(session: Session, account_id: int) -> int:
    return int(session.scalar(select(func.coalesce(func.sum(CreditEntry.amount), 0))
                              .where(CreditEntry.account_id == account_id)))


def balance(store: BulkStore, account_id: int) -> int | None:
    raw = store.client.get(store.keys.credit(account_id))
    return None if raw is None else int(raw)


def set_prepaid(session: Session, store: BulkStore, account_id: int, prepaid: bool) -> None:
    policy(session, account_id).prepaid = prepaid
    if prepaid:
        drain_journal(session, store)
        store.client.setnx(store.keys.credit(account_id), ledger_balance(session, account_id))


def adjust(session: Session, store: BulkStore, account_id: int, amount: int, *, kind: str = "topup") -> int:
    """Add (or with a negative ``amount``, take) credit; makes the account prepaid.
    Returns the new balance."""
    if kind not in ("topup", "adjust"):
        raise InvalidValue(f"unknown ledger kind {kind!r}")
    set_prepaid(session, store, account_id, True)
    reference = f"{kind}:{uuid.uuid4().hex}"
    pipe = store.client.pipeline(transaction=True)
    pipe.incrby(store.keys.credit(account_id), amount)
    pipe.rpush(store.keys.credit_journal(), f"{account_id}|{amount}|{reference}")
    new_balance, _ = pipe.execute()
    drain_journal(session, store)
    return int(new_balance)


def drain_journal(session: Session, store: BulkStore, limit: int = 1000) -> int:
    """Move journaled balance changes into the ledger; returns how many were read."""
    key = store.keys.credit_journal()
    entries = store.client.lrange(key, 0, limit - 1)
    if not entries:
        return 0
    now = datetime.now(timezone.utc)
    known = set(session.scalars(select(CreditEntry.reference).where(
        CreditEntry.reference.in_([e.decode().split("|", 2)[2] for e in entries]))))
    for raw in entries:
        account_id, amount, reference = raw.decode().split("|", 2)
        if reference in known:
            continue
        known.add(reference)
        session.add(CreditEntry(account_id=int(account_id), amount=int(amount), reference=reference,
                                kind=_KINDS.get(reference.split(":", 1)[0], "adjust"), at=now))
    try:
        session.flush()
    except IntegrityError:  # another drainer wrote the same references first
        session.rollback()
        return 0
    session.commit()
    store.trim_journal(len(entries), entries[0])
    return len(entries)


def resync_balances(session: Session, store: BulkStore) -> int:
    """Recreate missing Redis balances of prepaid accounts from the ledger."""
    drain_journal(session, store)
    restored = 0
    for row in session.scalars(select(BulkAccountPolicy).where(BulkAccountPolicy.prepaid.is_(True))):
        if store.client.setnx(store.keys.credit(row.account_id), ledger_balance(session, row.account_id)):
            restored += 1
            log.warning("credit balance of account %s restored from the ledger", row.account_id)
    return restored


def history(session: Session, account_id: int, limit: int = 20) -> list[CreditEntry]:
    return list(session.scalars(select(CreditEntry).where(CreditEntry.account_id == account_id)
                                .order_by(CreditEntry.id.desc()).limit(limit)))
