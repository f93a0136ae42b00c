"""``/bulksms/bulksms`` and ``/bulksms/schedulemsg`` against real Redis and a real
database: every code of seed 001's "Response" table (rows 1-21), GET and POST, each with
what it leaves behind (nothing queued, nothing charged, unless 1701)."""

from __future__ import annotations

import re
import socket
import threading
from urllib.parse import urlencode

import pytest
from sqlalchemy import select

from app.bulk import compliance, credit
from app.bulk.models import BulkAccountPolicy
from app.bulk.runtime import ingress_store
from app.db.models import Account
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from tests.integration.bulk.conftest import (
    METHODS,
    account_id,
    call,
    codes,
    entries,
    params,
)

BULK = "/bulksms/bulksms"
MESSAGE_ID = re.compile(r"[0-9a-f]{32}")


def nothing_left(redis_client, bulk_store) -> bool:
    batches = list(redis_client.scan_iter(match=bulk_store.keys.prefix + "batch:*"))
    queued = redis_client.llen("mt.bulk") + redis_client.llen(bulk_store.keys.stage_pending("mt.bulk"))
    return queued == 0 and not batches


# (case id, parameters, expected whole-request code): seed 001 table rows 2-9 (1702-1709).
REFUSALS = [
    *[(f"1702-missing-{name}", params(**{name: None}), 1702)
      for name in ("username", "password", "type", "dlr", "destination", "source", "message")],
    *[(f"1702-blank-{name}", params(**{name: ""}), 1702) for name in ("type", "destination", "message")],
    ("1702-only-commas", params(destination=",,"), 1702),
    ("1703-username-too-long", params(username="a" * 65), 1703),
    ("1703-password-control-char", params(password="pw\x01"), 1703),
    ("1704-reserved-3", params(type="3"), 1704),
    ("1704-unknown-8", params(type="8"), 1704),
    ("1704-not-a-number", params(type="plain"), 1704),
    ("1705-not-gsm-for-type-0", params(message="Привет"), 1705),
    ("1705-not-gsm-for-flash-1", params(type="1", message="日本"), 1705),
    ("1705-not-latin1-for-type-5", params(type="5", message="price 5 €"), 1705),
    ("1705-wap-push-without-url", params(type="4", message="no url here"), 1705),
    ("1705-longer-than-account-max", params(message="x" * 1601), 1705),
    ("1706-too-many-destinations", params(destination=",".join(str(12025550000 + i) for i in range(10_001))), 1706),
    ("1707-numeric-over-18", params(source="1" * 19), 1707),
    ("1707-alphanumeric-over-11", params(source="ABCDEFGHIJKL"), 1707),
    ("1707-registered-to-another-account", params(source="55555"), 1707),
    ("1707-not-registered-to-anyone", params(source="77777"), 1707),
    ("1707-unknown-source", params(source="ACME"), 1707),
    ("1708-dlr-2", params(dlr="2"), 1708),
    ("1708-dlr-yes", params(dlr="yes"), 1708),
    ("1709-wrong-password", params(password="wrong"), 1709),
    ("1709-unknown-user", params(username="nobody"), 1709),
]


@METHODS
@pytest.mark.parametrize("case,data,expected", REFUSALS, ids=[c[0] for c in REFUSALS])
def test_whole_request_refusals(bulk_client, redis_client, bulk_store, method, case, data, expected):
    """Rows 2-9: a refused request answers one entry ``<code>||`` and leaves nothing behind."""
    assert call(bulk_client, method, BULK, data) == f"{expected}||"
    assert nothing_left(redis_client, bulk_store)


GARBLED = [
    ("1702-garbled-parameter-name", "user%ZZname=acme", 1702),
    ("1703-username-invalid-utf8", "username=%FF%FE", 1703),
    ("1705-message-bad-escape", "message=%ZZhello", 1705),
    ("1705-message-invalid-utf8", "message=%C3%28", 1705),
    ("1706-destination-invalid-utf8", "destination=%FF", 1706),
]


@METHODS
@pytest.mark.parametrize("case,raw,expected", GARBLED, ids=[c[0] for c in GARBLED])
def test_garbled_percent_encoding_blames_its_parameter(bulk_client, redis_client, bulk_store, method, case, raw,
                                                       expected):
    """Bad input: malformed escapes and invalid UTF-8 get the code of the parameter they
    are in (1702 when it is a parameter name)."""
    name = raw.split("=", 1)[0]
    rest = urlencode({k: v for k, v in params().items() if k != name})
    assert call(bulk_client, method, BULK, f"{rest}&{raw}") == f"{expected}||"
    assert nothing_left(redis_client, bulk_store)


@METHODS
def test_1701_single_destination_is_queued_with_its_message_id(bulk_client, redis_client, gateway, method, queued_tasks):
    """Row 1: ``1701|<CELL_NO>|<MESSAGE ID>``; the message id is smsagg's own (the task id)."""
    [(code, destination, message_id)] = entries(call(bulk_client, method, BULK, params(destination="+12025550100")))
    assert (code, destination) == (1701, "+12025550100") and MESSAGE_ID.fullmatch(message_id)
    [(task, [payload])] = queued_tasks()
    assert task == "smsagg.mt.bulk"
    assert payload["id"] == message_id and payload["phone_number"] == "12025550100"
    assert payload["api"] == "bulk" and payload["batch_id"] is None and payload["price"] == 0
    assert payload["dlr"] is True and payload["receipt"] is True
    assert (payload["encoding"], payload["flash"], payload["wap_push"]) == ("gsm7", False, False)
    assert payload["account_id"] == account_id(gateway.database_url) and payload["sender"] == "99222"


@METHODS
def test_mixed_destination_list_answers_each_in_request_order(bulk_client, redis_client, bulk_store, gateway, method, queued_tasks):
    """Rows 1, 6, 13, 15, 16: each destination succeeds or fails on its own, in request order."""
    with session_scope(gateway.database_url) as session:
        compliance.dnd_add(session, bulk_store, ["447700900001"])
        compliance.opt_out(session, bulk_store, account_id(gateway.database_url), "447700900002", source="operator")
    destinations = "12025550100,12ab,+12025550102,12025550100,447700900001,+447700900002,0044770"
    body = call(bulk_client, method, BULK, params(destination=destinations))
    result = entries(body)
    assert [c for c, _, _ in result] == [1701, 1706, 1701, 1041, 1732, 1042, 1706]
    assert [d for _, d, _ in result] == destinations.split(",")
    assert all(MESSAGE_ID.fullmatch(m) for c, _, m in result if c == 1701)
    assert all(m == "" for c, _, m in result if c != 1701)
    [(task, [batch_id])] = queued_tasks()
    assert task == "smsagg.bulk.fanout" and result[0][2].startswith(batch_id)


@METHODS
def test_1041_same_text_to_the_same_destination_within_the_window(bulk_client, method):
    """Row 15: the same account, destination and text again is a duplicate; another text is not."""
    assert codes(call(bulk_client, method, BULK, params())) == [1701]
    assert codes(call(bulk_client, method, BULK, params(destination="12025550100,12025550199"))) == [1041, 1701]
    assert codes(call(bulk_client, method, BULK, params(message="Hello again"))) == [1701]


@METHODS
def test_1042_after_an_mo_stop_and_1701_after_start(bulk_client, bulk_store, gateway, method):
    """Row 16: a destination that sent STOP to this account is refused; START re-subscribes;
    another account is not affected."""
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        assert compliance.record_mo_keyword(session, acme, "12025550100", " stop ", store=bulk_store) == "stop"
    assert codes(call(bulk_client, method, BULK, params())) == [1042]
    with session_scope(gateway.database_url) as session:
        assert compliance.record_mo_keyword(session, acme, "12025550100", "START", store=bulk_store) == "start"
    assert codes(call(bulk_client, method, BULK, params())) == [1701]


@METHODS
def test_1732_destination_on_the_dnd_registry(bulk_client, redis_client, bulk_store, gateway, method, queued_tasks):
    """Row 13: the operator's DND registry refuses the destination for every account."""
    with session_scope(gateway.database_url) as session:
        compliance.dnd_add(session, bulk_store, ["+12025550100"])
    assert call(bulk_client, method, BULK, params()) == "1732|12025550100|"
    assert queued_tasks() == []


@METHODS
def test_1028_spam_rule(bulk_client, redis_client, gateway, method, queued_tasks):
    """Row 14: a text matching a spam rule (phrase, any case; or a regex) is refused whole."""
    with session_scope(gateway.database_url) as session:
        compliance.spam_add(session, "free money", is_regex=False)
        compliance.spam_add(session, r"win\s+\d+\s*USD", is_regex=True)
    assert call(bulk_client, method, BULK, params(message="Get FREE Money now")) == "1028||"
    assert call(bulk_client, method, BULK, params(message="You win 500 usd")) == "1028||"
    assert queued_tasks() == []
    assert codes(call(bulk_client, method, BULK, params(message="Your order shipped"))) == [1701]


@METHODS
def test_1033_template_mismatch(bulk_client, gateway, method):
    """Row 17: an account that sends only registered templates; ``{#var#}`` is 1-30 characters."""
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        compliance.template_add(session, acme, "Your code is {#var#}. Do not share it.")
        credit.policy(session, acme).templates_only = True
    assert call(bulk_client, method, BULK, params(message="Hello")) == "1033||"
    assert codes(call(bulk_client, method, BULK, params(message="Your code is 482913. Do not share it."))) == [1701]


@METHODS
def test_16_client_ip_on_the_denylist(bulk_client, redis_client, gateway, method):
    """Row 20: a denied client IP is refused before anything else, even with bad credentials."""
    with session_scope(gateway.database_url) as session:
        compliance.deny_ip(session, "203.0.113.0/24")
    assert call(bulk_client, method, BULK, params(), remote_addr="203.0.113.7") == "16||"
    assert call(bulk_client, method, BULK, params(password="wrong"), remote_addr="203.0.113.7") == "16||"
    assert codes(call(bulk_client, method, BULK, params(), remote_addr="198.51.100.1")) == [1701]


@METHODS
def test_18_client_ip_not_on_the_accounts_allowlist(bulk_client, gateway, method):
    """Row 21: the account's allowlist (``smsagg account update --allow-ip``) excludes the client."""
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(allowed_ips=("10.0.0.0/8",)))
    assert call(bulk_client, method, BULK, params(), remote_addr="192.0.2.1") == "18||"
    assert codes(call(bulk_client, method, BULK, params(), remote_addr="10.1.2.3")) == [1701]


def _prepaid(gateway, bulk_store, amount_units: int) -> int:
    acme = account_id(gateway.database_url)
    with session_scope(gateway.database_url) as session:
        credit.adjust(session, bulk_store, acme, amount_units)
    return acme


@METHODS
def test_1725_insufficient_credit_refuses_the_whole_request(bulk_client, redis_client, bulk_store, gateway, method, queued_tasks):
    """Row 11: the balance covers one message but not two: both 1725, nothing charged or queued;
    one destination goes through and is debited (default price: 1 credit per segment)."""
    acme = _prepaid(gateway, bulk_store, 10_000)
    assert call(bulk_client, method, BULK, params(destination="12025550100,12025550101")) == \
        "1725|12025550100|,1725|12025550101|"
    assert credit.balance(bulk_store, acme) == 10_000 and queued_tasks() == []
    [(code, _, _)] = entries(call(bulk_client, method, BULK, params()))
    assert code == 1701 and credit.balance(bulk_store, acme) == 0
    [(_, [payload])] = queued_tasks()
    assert payload["price"] == 10_000
    assert codes(call(bulk_client, method, BULK, params(destination="12025550101"))) == [1725]


@METHODS
def test_1710_redis_unreachable_nothing_queued(bulk_app, redis_client, gateway, method):
    """Row 10: Redis cannot be reached before anything ran: 1710, safe to look into."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    bulk_app.extensions["bulksms"].store = ingress_store(f"redis://127.0.0.1:{port}/0", gateway.key_prefix)
    assert call(bulk_app.test_client(), method, BULK, params()) == "1710||"


class _AnswerSwallowingProxy:
    """Forwards everything to Redis, and its answers back until the client sends an
    EVALSHA: from then on that connection's answers are dropped. Redis runs the script,
    the client never hears back (a lost response)."""

    def __init__(self, target_port: int):
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.target_port = target_port
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            swallow = threading.Event()
            threading.Thread(target=self._requests, args=(client, upstream, swallow), daemon=True).start()
            threading.Thread(target=self._answers, args=(upstream, client, swallow), daemon=True).start()

    @staticmethod
    def _requests(client, upstream, swallow) -> None:
        try:
            while data := client.recv(65536):
                if b"EVALSHA" in data.upper():
                    swallow.set()
                upstream.sendall(data)
        except OSError:
            pass

    @staticmethod
    def _answers(upstream, client, swallow) -> None:
        try:
            while data := upstream.recv(65536):
                if not swallow.is_set():
                    client.sendall(data)
        except OSError:
            pass

    def close(self) -> None:
        self.server.close()


@METHODS
def test_1715_answer_lost_outcome_unknown(bulk_app, redis_client, bulk_store, gateway, method, queued_tasks):
    """Row 12 (and the seed's note "do NOT re-submit"): Redis got the request but no answer
    came back, nor to the follow-up: 1715. And indeed the batch WAS queued, exactly once,
    so a resubmission would have duplicated it."""
    from tests.conftest import TEST_REDIS_URL

    host_port, db = TEST_REDIS_URL.rsplit("/", 1)
    proxy = _AnswerSwallowingProxy(int(host_port.rsplit(":", 1)[1]))
    try:
        store = ingress_store(f"redis://127.0.0.1:{proxy.port}/{db}", gateway.key_prefix)
        store.client.connection_pool.connection_kwargs["socket_timeout"] = 0.3
        bulk_app.extensions["bulksms"].store = store
        body = call(bulk_app.test_client(), method, BULK, params(destination="12025550100,12025550101"))
    finally:
        proxy.close()
    assert body == "1715||"
    wait = __import__("tests.integration.workers", fromlist=["wait_until"]).wait_until
    wait(lambda: redis_client.llen("mt.bulk") == 1, timeout=5)
    assert [t for t, _ in queued_tasks()] == ["smsagg.bulk.fanout"]


@METHODS
def test_type_4_wap_push_and_the_other_types_carry_their_encoding(bulk_client, redis_client, method, queued_tasks):
    """Type table: each type reaches the task as encoding / flash / wap_push."""
    expected = {"0": ("gsm7", False, False), "1": ("gsm7", True, False), "2": ("ucs2", False, False),
                "4": (None, False, True), "5": ("latin1", False, False), "6": ("ucs2", True, False),
                "7": ("latin1", True, False)}
    for index, (message_type, keys) in enumerate(expected.items()):
        text = "http://example.com/offer Spring sale" if message_type == "4" else f"Hello {index}"
        assert codes(call(bulk_client, method, BULK, params(type=message_type, message=text))) == [1701]
        _, [payload] = queued_tasks()[-1]
        assert (payload["encoding"], payload["flash"], payload["wap_push"]) == keys
        assert payload["message_type"] == int(message_type)


def test_post_takes_a_long_destination_list_in_one_fan_out(bulk_client, redis_client, queued_tasks):
    """POST for long lists: 10,000 destinations, one fan-out task, every entry 1701 (how
    fast it answers is measured by ``smsagg bench bulk``, not asserted here)."""
    numbers = [str(12025550000 + i) for i in range(10_000)]
    result = entries(call(bulk_client, "POST", BULK, params(destination=",".join(numbers))))
    assert len(result) == 10_000 and {c for c, _, _ in result} == {1701}
    assert [d for _, d, _ in result] == numbers
    assert [t for t, _ in queued_tasks()] == ["smsagg.bulk.fanout"]


def test_policy_rows_stay_out_of_core_tables(gateway):
    with session_scope(gateway.database_url) as session:
        assert session.scalar(select(BulkAccountPolicy)) is None
        assert session.scalar(select(Account).where(Account.login == "acme")) is not None
