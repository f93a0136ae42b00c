"""Credit under concurrency, refunds, the Genesys API's prepaid and opt-out answers,
the operator's CLI, and the bulk tables on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import requests
from werkzeug.serving import make_server

from app.bulk import compliance, credit
from app.bulk.models import CreditEntry, OptOut
from app.bulk.store import BulkStore
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from tests.integration.bulk.conftest import account_id, params
from tests.integration.test_httpapi import params as genesys_params
from tests.integration.test_httpapi import submit as genesys_submit
from tests.integration.workers import environment


def test_parallel_requests_never_overdraw_a_small_balance(bulk_app, bulk_store, gateway, redis_client):
    """Concurrency: 12 credits, 60 parallel requests of 1 or 2 destinations over HTTP,
    bulk and Genesys mixed: what is accepted adds up to at most the balance, exactly."""
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(message_id_optional=True))
        credit.adjust(session, bulk_store, acme, 12 * 10_000)
    server = make_server("127.0.0.1", 0, bulk_app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}"

    def one(index: int) -> int:
        if index % 3 == 0:
            body = requests.post(f"{url}/httpapi/receiver", timeout=10, data=genesys_params(
                message_id=None, phone_number=str(12025560000 + index))).text
            return 1 if body == "result_code=0" else 0
        destinations = ",".join(str(12025570000 + index * 10 + k) for k in range(1 + index % 2))
        body = requests.post(f"{url}/bulksms/bulksms", data=params(destination=destinations), timeout=10).text
        return sum(1 for entry in body.split(",") if entry.startswith("1701|"))

    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            accepted = sum(pool.map(one, range(60)))
    finally:
        server.shutdown()
    balance = credit.balance(bulk_store, acme)
    assert balance >= 0 and accepted * 10_000 + balance == 12 * 10_000
    assert accepted >= 11  # all but possibly one credit (a 2-destination request cannot use the last one)
    with session_scope(gateway.database_url) as session:
        credit.drain_journal(session, bulk_store)
        assert credit.ledger_balance(session, acme) == balance


def test_refund_is_exact_and_once_per_message(bulk_store, gateway):
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        credit.adjust(session, bulk_store, acme, 5_000)
    assert credit.refund(acme, 3_000, "m" * 32, store=bulk_store) is True
    assert credit.refund(acme, 3_000, "m" * 32, store=bulk_store) is False
    assert credit.refund(acme, 0, "n" * 32, store=bulk_store) is False
    assert credit.balance(bulk_store, acme) == 8_000
    with session_scope(gateway.database_url) as session:
        credit.drain_journal(session, bulk_store)
        kinds = sorted(e.kind for e in session.query(CreditEntry).filter_by(account_id=acme))
    assert kinds == ["refund", "topup"]


def test_genesys_api_prepaid_and_opt_out_answer_99(client, bulk_store, gateway, redis_client):
    """docs/bulk.md: the Genesys API answers 99 for insufficient credit and for an opted-out
    destination; an accepted prepaid message carries its price."""
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        credit.adjust(session, bulk_store, acme, 10_000)
        compliance.record_mo_keyword(session, acme, "12025550199", "STOP", store=bulk_store)
    assert genesys_submit(client, "POST", genesys_params(phone_number="12025550199", message_id="g-0")) == 99
    assert genesys_submit(client, "POST", genesys_params(message_id="g-1")) == 0
    assert genesys_submit(client, "POST", genesys_params(message_id="g-2")) == 99
    assert credit.balance(bulk_store, acme) == 0
    with session_scope(gateway.database_url) as session:
        compliance.deny_ip(session, "127.0.0.1")
    assert genesys_submit(client, "POST", genesys_params(message_id="g-3")) == 2


def test_operator_cli(gateway, tmp_path, redis_client, monkeypatch):
    from click.testing import CliRunner

    from app.bulk.runtime import default_store
    from app.cli.main import main
    from app.settings import get_settings

    for name, value in environment(gateway).items():
        if name.startswith("SMSAGG_"):
            monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    default_store.cache_clear()
    runner = CliRunner()

    def smsagg(*args: str, ok: bool = True) -> str:
        result = runner.invoke(main, list(args), catch_exceptions=False)
        assert (result.exit_code == 0) is ok, result.output
        return result.output

    try:
        _cli_session(smsagg, gateway, tmp_path, redis_client)
    finally:
        get_settings.cache_clear()
        default_store.cache_clear()


def _cli_session(smsagg, gateway, tmp_path, redis_client) -> None:
    assert "balance 2.5000" in smsagg("account", "credit", "add", "acme", "2.5")
    assert "balance 2.0000" in smsagg("account", "credit", "deduct", "acme", "0.5")
    assert '"balance": "2.0000"' in smsagg("account", "credit", "show", "acme", "--json")
    smsagg("price", "set", "--prefix", "44", "--price", "0.05")
    assert "0.0500" in smsagg("price", "list", "--json")
    numbers = tmp_path / "dnd.txt"
    numbers.write_text("# registry\n447700900001\n+447700900002\n\n")
    assert "2 number(s) added" in smsagg("dnd", "import", str(numbers))
    assert "is on" in smsagg("dnd", "check", "+447700900001")
    smsagg("optout", "add", "--account", "acme", "12025550100")
    smsagg("spam", "add", "lottery", "--regex")
    smsagg("template", "add", "--account", "acme", "Code {#var#}")
    smsagg("template", "enforce", "acme")
    smsagg("ip", "deny", "198.51.100.0/24")
    assert "198.51.100.0/24" in smsagg("ip", "list", "--json")
    store = BulkStore(redis_client, gateway.key_prefix)
    assert redis_client.sismember(store.keys.dnd(), "447700900002")
    acme = account_id(gateway.database_url)
    assert redis_client.sismember(store.keys.optouts(acme), "12025550100")
    redis_client.delete(store.keys.dnd(), store.keys.optouts(acme), store.keys.credit(acme))
    assert '"dnd": 2' in smsagg("bulk", "resync")
    assert redis_client.sismember(store.keys.dnd(), "447700900001")
    assert int(redis_client.get(store.keys.credit(acme))) == 20_000
    assert "[]" == smsagg("schedule", "list", "--json").strip()
    assert "not an E.164 number" in smsagg("dnd", "add", "not-a-number", ok=False)


def test_bulk_tables_on_every_database(database_url):
    """DB layer on SQLite and PostgreSQL: opt-outs by MO keyword, the DND registry, the ledger."""
    from app.db.models import Account

    with session_scope(database_url) as session:
        account = Account(login="db", password_hash="x", max_message_length=10, callback_secret="s")
        session.add(account)
        session.flush()
        account_id_ = account.id
    with session_scope(database_url) as session:
        assert compliance.record_mo_keyword(session, account_id_, "+12025550100", "Stop", store=_NullStore()) == "stop"
        assert compliance.record_mo_keyword(session, account_id_, "12025550100", "STOP", store=_NullStore()) == "stop"
        assert compliance.record_mo_keyword(session, account_id_, "12025550100", "hello", store=_NullStore()) is None
        compliance.dnd_add(session, _NullStore(), ["12025550101", "12025550101", "+12025550102"])
        session.add(CreditEntry(account_id=account_id_, kind="topup", amount=70, reference="topup:x"))
    with session_scope(database_url) as session:
        assert [o.phone_number for o in session.query(OptOut)] == ["12025550100"]
        assert compliance.dnd_list(session) == ["12025550101", "12025550102"]
        assert credit.ledger_balance(session, account_id_) == 70


class _NullStore:
    """A store whose Redis side is a no-op: these tests look at the database only."""

    class _Client:
        def __getattr__(self, _name):
            return lambda *args, **kwargs: None

    client = _Client()

    class keys:  # noqa: N801
        @staticmethod
        def optouts(account_id):
            return f"optout:{account_id}"

        @staticmethod
        def dnd():
            return "dnd"
