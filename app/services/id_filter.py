"""Keeping the ingress's id filter complete: rebuilt from the message log when Redis
does not hold a complete one (a fresh Redis, a lost one, one restarted from its AOF).

Until then every submit with a ``message_id`` asks the database, as it would without
a filter; once complete, only an id the filter may have seen does. Why the filter stays
exact (docs/delivery.md, "Idempotency"): the admission script sets an id's bits with its
claim; the MT worker sets them again after recording the message; a rebuild marks the
filter complete only if it is still the filter it began (its nonce in the header), and
records the Redis run it completed it on (its ``run_id``), which the admission script
compares with the running server's: bits lost with Redis never go unnoticed.

Beat asks every 5 s (``celeryconfig``: :func:`ensure_complete`); one rebuild runs at a time.
"""

from __future__ import annotations

import logging
import secrets

from sqlalchemy import select

from app.adapters.redis_scripts import RedisStore
from app.db.models import Message
from app.db.session import session_scope

log = logging.getLogger(__name__)

CHUNK = 5000
REBUILD_LOCK_SECONDS = 600


def ensure_complete(database_url: str, store: RedisStore) -> bool:
    """Rebuild the filter unless it is complete (or another rebuild is running); True
    if this call completed it."""
    if store.id_filter_complete():
        return False
    lock = f"{store.keys.id_filter()}:rebuilding"
    if not store.client.set(lock, "1", nx=True, ex=REBUILD_LOCK_SECONDS):
        return False
    try:
        return rebuild(database_url, store)
    finally:
        store.client.delete(lock)


def rebuild(database_url: str, store: RedisStore) -> bool:
    """Every client id of the message log into the filter, then the filter marked
    complete; False (still incomplete) if Redis lost it meanwhile."""
    nonce = b"\x01" + secrets.token_bytes(6)  # never all zero: a filter made anew has a zero header
    store.begin_id_filter_rebuild(nonce)
    count, after = 0, ""
    while True:
        with session_scope(database_url) as session:
            rows = session.execute(select(Message.id, Message.account_id, Message.client_message_id)
                                   .where(Message.client_message_id.is_not(None), Message.id > after)
                                   .order_by(Message.id).limit(CHUNK)).all()
        if not rows:
            break
        store.remember_client_ids([(row.account_id, row.client_message_id) for row in rows])
        count, after = count + len(rows), rows[-1].id
    completed = store.finish_id_filter_rebuild(nonce)
    log.info("id filter %s: %d ids from the message log", "complete" if completed else "lost while rebuilt", count)
    return completed
