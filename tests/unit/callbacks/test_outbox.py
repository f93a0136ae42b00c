"""Where DR callbacks are written (the outbox): the DR mask decides which states get a
row at all, the request's mask before the account's; a masked state costs no row and
nothing handed to the callbacks queue."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest
from sqlalchemy import select

from app.db.models import Callback
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.callback_outbox import queue_dr_callback, queue_dr_callbacks, take_new_callbacks

NOW = datetime(2026, 12, 2, 12, 0, tzinfo=timezone.utc)
ACCEPTED, DELIVERED = MessageState.ACCEPTED, MessageState.DELIVERED


@pytest.fixture
def accounts(database_url):
    """``all-acct`` (the default mask) and ``final-acct``, both with a DR URL; their ids."""
    ids = {}
    for login, mask in (("all-acct", None), ("final-acct", "final")):
        with session_scope(database_url) as session:
            ids[login] = svc.create_account(session, login, "pw", default_max_length=1600, options=AccountOptions(
                dr_url="https://client.example/dr", dr_mask=mask)).id
    return ids


def subject(message_id: str, account_id: int, **options) -> SimpleNamespace:
    return SimpleNamespace(id=message_id, account_id=account_id, client_message_id=f"c-{message_id}",
                           phone_number="12025550100", receipt=True, app_id=None, conversation_id=None,
                           options=options)


def written(database_url, reports) -> tuple[list[tuple[str, str]], list[str]]:
    """Queue ``reports`` in one unit of work: the (message, state) rows written and the
    ids handed to the callbacks queue."""
    with session_scope(database_url) as session:
        queue_dr_callbacks(session, reports, NOW)
        handed_on = take_new_callbacks(session)
    with session_scope(database_url) as session:
        rows = [(c.message_id, dict(c.fields)["message_state"]) for c in session.scalars(
            select(Callback).where(Callback.id.in_(handed_on)).order_by(Callback.created_at))]
    return rows, handed_on


def test_an_account_with_final_only_gets_the_final_state_alone(database_url, accounts):
    m = subject("m1", accounts["final-acct"])
    rows, handed_on = written(database_url, [(m, ACCEPTED, 0), (m, MessageState.ENROUTE, 0), (m, DELIVERED, 0)])
    assert rows == [("m1", "2")] and len(handed_on) == 1


def test_the_default_reports_every_state(database_url, accounts):
    m = subject("m1", accounts["all-acct"])
    rows, _ = written(database_url, [(m, ACCEPTED, 0), (m, DELIVERED, 0)])
    assert rows == [("m1", "6"), ("m1", "2")]


def test_a_masked_batch_writes_and_hands_on_nothing(database_url, accounts):
    reports = [(subject(f"m{i}", accounts["final-acct"]), ACCEPTED, 0) for i in range(3)]
    assert written(database_url, reports) == ([], [])
    with session_scope(database_url) as session:
        assert session.scalar(select(Callback.id)) is None


def test_the_requests_mask_wins_over_the_accounts(database_url, accounts):
    loud = subject("loud", accounts["final-acct"], dr_mask="all")
    quiet = subject("quiet", accounts["all-acct"], dr_mask="final")
    rows, _ = written(database_url, [(loud, ACCEPTED, 0), (quiet, ACCEPTED, 0), (loud, DELIVERED, 0),
                                     (quiet, DELIVERED, 0)])
    assert rows == [("loud", "6"), ("loud", "2"), ("quiet", "2")]


def test_one_callback_at_a_time_follows_the_mask_too(database_url, accounts):
    with session_scope(database_url) as session:
        assert queue_dr_callback(session, subject("m1", accounts["final-acct"]), ACCEPTED, 0, NOW) is None
        rejected = queue_dr_callback(session, subject("m1", accounts["final-acct"]), MessageState.REJECTED, 3, NOW)
        assert rejected is not None and take_new_callbacks(session) == [rejected.id]
