"""The message log's lookup on a raw DBAPI cursor still answers as SQLAlchemy would: the
id or ``None``, and a failing database raises SQLAlchemy's error (the ingress then lets
the Redis claim decide), the connection given back to the pool."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from app.services.message_log import MessageLog


def test_an_id_never_accepted_is_none(database_url):
    log = MessageLog(database_url)
    assert log.accepted_id(1, "never-seen") is None
    assert log.accepted_id(1, "never-seen") is None  # the pooled connection came back


def test_a_failing_database_raises_sqlalchemys_error(tmp_path):
    log = MessageLog(f"sqlite:///{tmp_path / 'no-schema.db'}")
    for _ in range(2):
        with pytest.raises(OperationalError, match="messages") as raised:
            log.accepted_id(1, "m-1")
        assert isinstance(raised.value, SQLAlchemyError)
