"""Console operators (app.console.operators) on SQLite and PostgreSQL, the session key
kept in SMSAGG_HOME (app.console.auth.secret_key), and what the console never shows
(app.console.views.public_url, carrier settings)."""

from __future__ import annotations

import multiprocessing
import stat
from datetime import UTC, datetime

import pytest

from app.console import auth, operators, views
from app.console.models import Operator
from app.db import migrate
from app.db.session import session_scope
from app.services import accounts as accounts_svc
from app.services.errors import AlreadyExists, InvalidValue, NotFound
from app.services.passwords import verify_password

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
PASSWORD = "correct horse"


@pytest.fixture
def sqlite_db(sqlite_url):
    """A migrated SQLite database: the rules below do not depend on the database, and a
    PostgreSQL database per case would cost seconds each (the first tests run on both)."""
    migrate.upgrade(sqlite_url)
    return sqlite_url


def test_add_and_authenticate(database_url):
    with session_scope(database_url) as session:
        operators.add_operator(session, "alice", PASSWORD)
    with session_scope(database_url) as session:
        stored = operators.get_operator(session, "alice")
        assert stored.enabled and stored.password_hash.startswith("scrypt$") and verify_password(PASSWORD, stored.password_hash)
        assert operators.authenticate(session, "alice", PASSWORD, NOW).login == "alice"
    with session_scope(database_url) as session:
        assert operators.get_operator(session, "alice").last_login_at is not None


@pytest.mark.parametrize("login, password", [("alice", "wrong password"), ("nobody", PASSWORD), ("", PASSWORD),
                                             ("alice", "")])
def test_wrong_credentials_answer_none(sqlite_db, login, password):
    with session_scope(sqlite_db) as session:
        operators.add_operator(session, "alice", PASSWORD)
    with session_scope(sqlite_db) as session:
        assert operators.authenticate(session, login, password, NOW) is None


def test_an_unknown_login_costs_a_kdf_run_too(sqlite_db, monkeypatch):
    checked = []
    monkeypatch.setattr(operators, "verify_password", lambda password, stored: checked.append(stored) or False)
    with session_scope(sqlite_db) as session:
        assert operators.authenticate(session, "nobody", PASSWORD, NOW) is None
    assert checked == [operators.dummy_hash()]


def test_a_disabled_operator_cannot_log_in_and_enabling_restores(sqlite_db):
    with session_scope(sqlite_db) as session:
        operators.add_operator(session, "alice", PASSWORD)
        operators.set_enabled(session, "alice", False)
    with session_scope(sqlite_db) as session:
        assert operators.authenticate(session, "alice", PASSWORD, NOW) is None
        operators.set_enabled(session, "alice", True)
    with session_scope(sqlite_db) as session:
        assert operators.authenticate(session, "alice", PASSWORD, NOW) is not None


def test_a_new_password_changes_the_session_stamp(database_url):
    with session_scope(database_url) as session:
        before = operators.session_stamp(operators.add_operator(session, "alice", PASSWORD))
        operators.set_password(session, "alice", "another long one")
        after = operators.session_stamp(operators.get_operator(session, "alice"))
        assert before != after
        assert operators.authenticate(session, "alice", PASSWORD, NOW) is None
        assert operators.authenticate(session, "alice", "another long one", NOW) is not None


@pytest.mark.parametrize("login, password, error", [
    ("alice", "short", InvalidValue), ("", PASSWORD, InvalidValue), (" alice", PASSWORD, InvalidValue),
    ("a" * 65, PASSWORD, InvalidValue), ("tab\there", PASSWORD, InvalidValue)])
def test_bad_logins_and_passwords_are_refused(sqlite_db, login, password, error):
    with pytest.raises(error), session_scope(sqlite_db) as session:
        operators.add_operator(session, login, password)


def test_duplicates_and_unknown_operators(sqlite_db):
    with session_scope(sqlite_db) as session:
        operators.add_operator(session, "alice", PASSWORD)
    with pytest.raises(AlreadyExists), session_scope(sqlite_db) as session:
        operators.add_operator(session, "alice", PASSWORD)
    for change in (lambda s: operators.set_password(s, "bob", PASSWORD), lambda s: operators.set_enabled(s, "bob", False)):
        with pytest.raises(NotFound), session_scope(sqlite_db) as session:
            change(session)
    with session_scope(sqlite_db) as session:
        assert [o.login for o in operators.list_operators(session)] == ["alice"]
        assert session.query(Operator).count() == 1


# --- the session key ---------------------------------------------------------------------------

def test_a_configured_key_is_used_as_it_is(tmp_path):
    assert auth.secret_key("k" * 40, tmp_path) == "k" * 40
    assert not (tmp_path / "secret_key").exists()


def test_an_unset_key_is_generated_once_with_mode_0600(tmp_path):
    home = tmp_path / "home"
    first = auth.secret_key(None, home)
    assert len(first) == 64 and auth.secret_key(None, home) == first
    assert stat.S_IMODE((home / "secret_key").stat().st_mode) == 0o600
    assert [p.name for p in home.iterdir()] == ["secret_key"]  # no draft left behind


def _key_of(home, results):
    results.put(auth.secret_key(None, home))


def test_processes_starting_together_agree_on_one_key(tmp_path):
    context = multiprocessing.get_context("fork")
    results = context.Queue()
    processes = [context.Process(target=_key_of, args=(tmp_path, results)) for _ in range(6)]
    for process in processes:
        process.start()
    keys = {results.get(timeout=20) for _ in processes}
    for process in processes:
        process.join(10)
    assert len(keys) == 1 and keys == {(tmp_path / "secret_key").read_text().strip()}


def test_an_unusable_key_file_is_a_clear_error(tmp_path):
    (tmp_path / "secret_key").write_text("short\n")
    with pytest.raises(ValueError, match="no usable key"):
        auth.secret_key(None, tmp_path)


# --- what the console never shows --------------------------------------------------------------

@pytest.mark.parametrize("url, shown", [
    ("https://user:pa55@client.example/dr?token=abc&x=1", "https://client.example/dr?token=***&x=***"),
    ("http://127.0.0.1:8080/cb", "http://127.0.0.1:8080/cb"),
    ("http://[::1]:81/cb#frag", "http://[::1]:81/cb"),
    (None, None), ("", ""), ("http://[broken/", "(unreadable URL)"),
])
def test_public_url(url, shown):
    assert views.public_url(url) == shown


def test_carrier_settings_lose_passwords_tokens_and_parameter_values(sqlite_db):
    with session_scope(sqlite_db) as session:
        accounts_svc.add_carrier(session, 7, "uk-smsc", connector="smpp", throughput=10, settings={
            "host": "smsc.example", "port": 2775, "system_id": "acme", "password": "smpp-secret",
            "webhook_token": "hook-secret", "window": 20})
        accounts_svc.add_carrier(session, 8, "uk-http", connector="http", throughput=None, settings={
            "url": "https://api:key-secret@sms.example/send?apikey=query-secret", "preset": "bulksms",
            "params": {"username": "acme", "password": "param-secret"}})
    with session_scope(sqlite_db) as session:
        rows = views.carriers(session)
    text = repr(rows)
    for secret in ("smpp-secret", "hook-secret", "key-secret", "query-secret", "param-secret"):
        assert secret not in text
    smpp, http = rows
    assert smpp["settings"] == {"host": "smsc.example", "port": 2775, "system_id": "acme", "window": 20}
    assert smpp["hidden_settings"] == ["password", "webhook_token"]
    assert http["settings"] == {"url": "https://sms.example/send?apikey=***", "preset": "bulksms",
                                "params": ["password", "username"]}
    assert http["hidden_settings"] == []
