"""``smsagg operator ...`` and ``smsagg status`` in-process, against this test's database
and Redis."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from click.testing import CliRunner

from app.adapters.heartbeats import Heartbeat
from app.cli.main import main
from app.console import operators
from app.db.session import session_scope

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def test_operator_lifecycle(cli, settings):
    assert "operator alice added" in cli("operator", "add", "alice", "--password", "first password")
    cli("operator", "add", "alice", "--password", "first password", ok=False)  # exists
    assert "at least 8 characters" in cli("operator", "add", "bob", "--password", "short", ok=False)
    listed = json.loads(cli("operator", "list", "--json"))
    assert [(o["login"], o["enabled"]) for o in listed] == [("alice", True)]
    assert "scrypt" not in cli("operator", "list", "--json")
    cli("operator", "password", "alice", "--password", "second password")
    cli("operator", "disable", "alice")
    with session_scope(settings.database_url) as session:
        assert operators.authenticate(session, "alice", "second password", now=NOW) is None
    cli("operator", "enable", "alice")
    with session_scope(settings.database_url) as session:
        assert operators.authenticate(session, "alice", "first password", now=NOW) is None
        assert operators.authenticate(session, "alice", "second password", now=NOW) is not None
    assert "no operator 'nobody'" in cli("operator", "disable", "nobody", ok=False)


def test_the_password_is_asked_for_when_not_given(cli, settings):
    result = CliRunner().invoke(main, ["operator", "add", "carol"], input="a long password\na long password\n")
    assert result.exit_code == 0, result.output
    assert "a long password" not in result.output  # not echoed
    with session_scope(settings.database_url) as session:
        assert operators.authenticate(session, "carol", "a long password", now=NOW) is not None


def test_status_shows_parts_stages_and_alerts(cli, settings, redis_client):
    Heartbeat(redis_client, settings.key_prefix, "worker", queues=("inbound",), binds=lambda: {3: (1, 2)}).beat()
    table = cli("status")
    assert "worker" in table and "3:1/2" in table and "inbound" in table
    assert "! no ingress process is running" in table
    summary = json.loads(cli("status", "--json"))
    assert summary["part_counts"] == {"worker": 1}
    assert summary["carriers"] == [{"carrier_id": 3, "up": 1, "total": 2, "processes": 1}]


def test_status_without_redis_is_a_clean_error(cli, monkeypatch):
    from app.settings import get_settings

    monkeypatch.setenv("SMSAGG_REDIS_URL", "redis://127.0.0.1:1/0")
    get_settings.cache_clear()
    assert "Redis unavailable" in cli("status", ok=False)
