"""Making Redis agree with the database after a restart or a lost Redis: the schedule
index, the DND and opt-out sets, missing prepaid balances. Beat runs it when it starts
(:mod:`workers.bulk_tasks`); ``smsagg bulk resync`` runs it by hand."""

from __future__ import annotations

import logging

from app.bulk import batches, compliance, credit
from app.bulk.runtime import default_store
from app.db.session import session_scope
from app.settings import get_settings

log = logging.getLogger(__name__)


def resync() -> dict:
    """Make Redis agree with the database after a restart (or a lost Redis)."""
    store = default_store()
    with session_scope(get_settings().database_url) as session:
        report = {"schedule": batches.rebuild_index(session, store),
                  "registries": compliance.resync_registries(session, store),
                  "balances_restored": credit.resync_balances(session, store)}
    log.info("bulk resync: %s", report)
    return report
