"""The operator console through Flask's test client, against real Redis and a real
database: logins (one answer for every failure, the gate, sessions that end),
CSRF refusals, cookie flags, no session work outside /console, no secret on any page,
404s, and each page's data: status, message search and timeline, dead letters and
replay, schedules with cancel and campaign progress, the read-only directory."""

from __future__ import annotations

import base64
import json
import re
import time
from datetime import UTC, datetime, timedelta

import pytest

from app.adapters.heartbeats import Heartbeat
from app.bulk.store import BulkStore
from app.console import auth, operators
from app.db.models import Account, Callback, CallbackAttempt, Carrier, Message
from app.db.session import session_scope
from app.services import accounts as accounts_svc
from app.web import create_app
from tests.integration.conftest import PASSWORD
from tests.integration.console.conftest import OPERATOR, OPERATOR_PASSWORD, Console, csrf_of
from tests.integration.test_carrier_webhooks_and_status import record_one
from tests.integration.workers import wait_until

PAGES = ["/console/", "/console/messages", "/console/callbacks", "/console/schedules", "/console/accounts",
         "/console/senders", "/console/carriers", "/console/routes"]


def text(response) -> str:
    return response.get_data(as_text=True)


def message_id_of(database_url: str, client_id: str, login: str = "acme") -> str:
    with session_scope(database_url) as session:
        account_id = accounts_svc.get_account(session, login).id
        return session.query(Message.id).filter_by(account_id=account_id, client_message_id=client_id).scalar()


def dead_callback(database_url: str, message_id: str, callback_id: str = "cb" + "0" * 30,
                  url: str = "http://127.0.0.1:9/dr") -> str:
    with session_scope(database_url) as session:
        message = session.get(Message, message_id)
        session.add(Callback(id=callback_id, account_id=message.account_id, message_id=message.id, kind="dr", url=url,
                             fields=[["type", "receipt"], ["message_id", message.client_message_id],
                                     ["message_state", "6"], ["result_code", "0"]],
                             status="dead", attempts=1, max_retries=0, retry_interval=600, last_error="HTTP 500"))
        session.flush()
        session.add(CallbackAttempt(callback_id=callback_id, status_code=500, latency_ms=3.5))
    return callback_id


# --- logging in ---------------------------------------------------------------------------------

@pytest.mark.parametrize("path", PAGES + ["/console/messages/abc", "/console/callbacks/abc", "/console/batches/abc"])
def test_every_page_needs_a_logged_in_operator(console, path):
    response = console.client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/console/login")


def test_the_json_api_answers_401_without_a_session(console):
    for path in ("/console/api/status", "/console/api/batches/abc"):
        response = console.client.get(path)
        assert response.status_code == 401 and response.get_json()["error"] == "unauthorized"


def test_login_shows_the_console_and_logout_ends_it(logged_in):
    page = logged_in.client.get("/console/")
    assert page.status_code == 200 and OPERATOR in text(page) and 'id="status"' in text(page)
    response = logged_in.post("/console/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/console/login"
    assert logged_in.client.get("/console/").status_code == 302


def _answer(console: Console, login: str, password: str) -> str:
    response = console.login(login, password)
    assert response.status_code == 200
    body = text(response)
    assert "Wrong login or password." in body
    return body.replace(csrf_of(body), "TOKEN")


def test_every_failed_login_gets_the_same_answer(console, gateway):
    with session_scope(gateway.database_url) as session:
        operators.add_operator(session, "bob", OPERATOR_PASSWORD)
        operators.set_enabled(session, "bob", False)
    answers = {_answer(console, OPERATOR, "wrong password"), _answer(console, "nobody", OPERATOR_PASSWORD),
               _answer(console, "bob", OPERATOR_PASSWORD),
               _answer(console, "acme", PASSWORD)}  # an API account's credentials are no operator's
    assert len(answers) == 1
    assert console.client.get("/console/").status_code == 302


@pytest.mark.parametrize("target, landing", [
    ("/console/schedules", "/console/schedules"), ("//evil.example/console/", "/console/"),
    ("https://evil.example/", "/console/"), ("/httpapi/receiver", "/console/"), ("/console\\@evil", "/console/")])
def test_after_login_only_a_console_page_is_followed(console, target, landing):
    response = console.login(next=target)
    assert response.headers["Location"] == landing


def test_the_login_page_remembers_where_the_operator_was_going(console):
    response = console.client.get("/console/schedules?x=1")
    assert response.headers["Location"] == "/console/login?next=/console/schedules?x%3D1"
    assert 'value="/console/schedules?x=1"' in text(console.client.get(response.headers["Location"]))


def test_disabling_an_operator_or_a_new_password_ends_their_sessions(logged_in, gateway):
    with session_scope(gateway.database_url) as session:
        operators.set_password(session, OPERATOR, "a brand new password")
    assert logged_in.client.get("/console/").status_code == 302
    assert logged_in.login(OPERATOR, "a brand new password").status_code == 302
    assert logged_in.client.get("/console/").status_code == 200
    with session_scope(gateway.database_url) as session:
        operators.set_enabled(session, OPERATOR, False)
    assert logged_in.client.get("/console/").status_code == 302


def test_a_session_lasts_at_most_its_hours(logged_in):
    with logged_in.client.session_transaction("/console/") as session:
        session["opened"] = time.time() - auth.SESSION_HOURS * 3600 - 1
    assert logged_in.client.get("/console/").status_code == 302


def test_a_forged_session_cookie_is_nobody(console):
    console.client.set_cookie(auth.COOKIE_NAME, "eyJvcGVyYXRvciI6MX0.forged.signature", path="/console")
    assert console.client.get("/console/").status_code == 302


# --- CSRF -----------------------------------------------------------------------------------------

def test_posts_without_the_sessions_token_are_refused(logged_in, gateway, redis_client):
    record_one(gateway, logged_in.client)
    callback_id = dead_callback(gateway.database_url, message_id_of(gateway.database_url, "st-1"))
    for token in (None, "", "not-the-token", logged_in.token() + "x"):
        data = {"id": callback_id} if token is None else {"id": callback_id, "csrf_token": token}
        response = logged_in.client.post("/console/callbacks/replay", data=data)
        assert response.status_code == 403 and "reload the page" in text(response)
    assert logged_in.client.post("/console/logout").status_code == 403
    with session_scope(gateway.database_url) as session:
        assert session.get(Callback, callback_id).status == "dead"
    assert redis_client.llen("callbacks") == 0
    assert logged_in.client.get("/console/").status_code == 200  # still logged in


def test_the_token_may_come_as_a_header(logged_in):
    response = logged_in.client.post("/console/logout", headers={auth.CSRF_HEADER: logged_in.token("/console/")})
    assert response.status_code == 302


def test_a_post_from_another_origin_is_refused_even_with_the_token(logged_in):
    token = logged_in.token("/console/")
    other = logged_in.client.post("/console/logout", data={"csrf_token": token}, headers={"Origin": "http://evil.example"})
    assert other.status_code == 403
    same = logged_in.client.post("/console/logout", data={"csrf_token": token},
                                 headers={"Origin": "https://localhost:8443"})
    assert same.status_code == 302  # same host (scheme and port may differ behind a TLS proxy)


def test_the_login_form_needs_its_token_too(console):
    console.client.get("/console/login")
    response = console.client.post("/console/login", data={"login": OPERATOR, "password": OPERATOR_PASSWORD})
    assert response.status_code == 403
    assert console.client.get("/console/").status_code == 302


# --- cookies and headers --------------------------------------------------------------------------

def _set_cookie(response) -> str:
    return next(v for k, v in response.headers.items() if k == "Set-Cookie" and v.startswith(auth.COOKIE_NAME))


def test_the_session_cookie_is_httponly_strict_and_only_for_the_console(console):
    cookie = _set_cookie(console.login())
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/console" in cookie
    assert "Secure" not in cookie


def test_the_cookie_is_secure_when_configured(gateway, operator):
    app = create_app(gateway.with_overrides(console_secure_cookie=True))
    console = Console(app, app.test_client(), gateway)
    assert "Secure" in _set_cookie(console.login())


def test_no_session_work_outside_the_console(logged_in):
    """The MT API and every other path get Flask's null session: no cookie is read,
    verified or written there."""
    response = logged_in.client.get("/healthz")
    assert response.status_code == 200 and "Set-Cookie" not in response.headers
    with logged_in.app.test_request_context("/httpapi/receiver"):
        from flask import request

        assert logged_in.app.session_interface.open_session(logged_in.app, request) is None


def test_pages_carry_security_headers(logged_in):
    response = logged_in.client.get("/console/")
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    assert response.headers["X-Frame-Options"] == "DENY" and response.headers["Cache-Control"] == "no-store"


def test_without_a_usable_session_key_the_console_says_so_and_the_rest_runs(gateway, operator, tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret_key").write_text("too short\n")
    app = create_app(gateway.with_overrides(home=home))
    client = app.test_client()
    for path in ("/console/", "/console/login"):
        response = client.get(path)
        assert response.status_code == 503 and "set SMSAGG_SECRET_KEY" in text(response)
    assert client.post("/console/login", data={"login": OPERATOR}).status_code == 503
    assert client.get("/healthz").status_code == 200


def test_the_session_key_is_kept_in_smsagg_home(console, gateway):
    assert console.app.secret_key == (gateway.home / "secret_key").read_text().strip()
    assert create_app(gateway).secret_key == console.app.secret_key  # another process of the host agrees


# --- no secrets -----------------------------------------------------------------------------------

SECRETS = ("smpp-pass-123", "hook-token-456", "param-pass-789", "apikey-abc", "user:urlpass", "tok-in-query")


def test_no_page_shows_a_secret(logged_in, gateway):
    with session_scope(gateway.database_url) as session:
        carrier = session.get(Carrier, 99901)
        carrier.connector = "smpp"
        carrier.settings = {"host": "127.0.0.1", "port": 2775, "system_id": "acme", "password": "smpp-pass-123",
                            "webhook_token": "hook-token-456"}
        accounts_svc.add_carrier(session, 99902, "http-carrier", connector="http", throughput=None, settings={
            "url": "https://sms.example/send?key=apikey-abc", "params": {"password": "param-pass-789"}})
        account = session.get(Account, 1)
        account.dr_url = "https://user:urlpass@client.example/dr?t=tok-in-query"
        account_secret, password_hash = account.callback_secret, account.password_hash
    record_one(gateway, logged_in.client)
    internal_id = message_id_of(gateway.database_url, "st-1")
    callback_id = dead_callback(gateway.database_url, internal_id,
                                url="https://user:urlpass@client.example/dr?t=tok-in-query")
    logged_in.client.post("/bulksms/bulksms", data={"username": "acme", "password": PASSWORD, "type": "0",
                                                    "destination": "12025550100,12025550101", "source": "99222",
                                                    "message": "Hello", "dlr": "1"})
    pages = PAGES + ["/console/messages?q=st-1", f"/console/messages/{internal_id}", f"/console/callbacks/{callback_id}",
                     "/console/callbacks?status=", "/console/api/status"]
    for path in pages:
        response = logged_in.client.get(path, follow_redirects=True)
        assert response.status_code == 200, path
        body = text(response)
        for secret in (*SECRETS, account_secret, password_hash, PASSWORD, "scrypt$"):
            assert secret not in body, (path, secret)
    assert "client.example/dr?t=***" in text(logged_in.client.get(f"/console/callbacks/{callback_id}"))


# --- 404s -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("path", ["/console/messages/no-such-message", "/console/callbacks/no-such-callback",
                                  "/console/batches/0123456789abcdef01234567", "/console/no-such-page"])
def test_unknown_things_are_404(logged_in, path):
    assert logged_in.client.get(path).status_code == 404


def test_unknown_things_in_the_json_api_are_404_json(logged_in):
    response = logged_in.client.get("/console/api/batches/0123456789abcdef01234567")
    assert response.status_code == 404 and "no batch" in response.get_json()["message"]


def test_replaying_or_cancelling_something_unknown_is_404(logged_in):
    assert logged_in.post("/console/callbacks/replay", {"id": "no-such-callback"}).status_code == 404
    assert logged_in.post("/console/schedules/0123456789abcdef01234567/cancel").status_code == 404
    assert logged_in.post("/console/callbacks/replay").status_code == 400  # nothing chosen


# --- status ---------------------------------------------------------------------------------------

def test_status_shows_the_parts_their_binds_and_the_backlog(logged_in, gateway, redis_client):
    logged_in.app.extensions["smsagg"]["heartbeat"].stop()  # only the worker below reports
    Heartbeat(redis_client, gateway.key_prefix, "worker", queues=("mt.bulk", "mt.bulk_low"),
              binds=lambda: {99901: (0, 1)}).beat()
    record_one(gateway, logged_in.client, "st-2")  # one accepted message waits on mt.bulk
    status = logged_in.client.get("/console/api/status").get_json()
    assert status["part_counts"] == {"worker": 1}
    assert status["carriers"] == [{"carrier_id": 99901, "name": "us", "up": 0, "total": 1, "processes": 1}]
    bulk = next(q for q in status["queues"] if q["queue"] == "mt.bulk")
    assert bulk["waiting"] == 1 and bulk["consumers"] == 1
    assert "carrier 99901: no SMPP bind is up (1 worker process(es) keep trying)" in status["alerts"]
    page = text(logged_in.client.get("/console/"))
    assert 'data-carrier="99901" class="down"' in page and "no ingress process is running" in page


def test_the_ingress_beats_once_it_serves(console, redis_client, gateway):
    heartbeat = console.app.extensions["smsagg"]["heartbeat"]
    assert not heartbeat.started
    console.client.get("/healthz")
    try:
        assert json.loads(wait_until(lambda: redis_client.get(heartbeat.key), timeout=5))["part"] == "ingress"
    finally:
        heartbeat.stop()
    assert redis_client.get(heartbeat.key) is None


# --- messages -------------------------------------------------------------------------------------

def test_find_a_message_by_the_clients_id_or_smsaggs(logged_in, gateway):
    record_one(gateway, logged_in.client, "shared-id")
    internal_id = message_id_of(gateway.database_url, "shared-id")
    for query in ("shared-id", internal_id, f"  {internal_id} "):
        response = logged_in.client.get("/console/messages", query_string={"q": query})
        assert response.status_code == 302 and response.headers["Location"] == f"/console/messages/{internal_id}"
    page = text(logged_in.client.get(f"/console/messages/{internal_id}"))
    assert re.search(r'data-kind="accepted".*data-kind="routed"', page, re.S)
    assert ">acme<" in page and "shared-id" in page


def test_the_same_client_id_in_two_accounts_lists_both(logged_in, gateway):
    record_one(gateway, logged_in.client, "dup-id")
    with session_scope(gateway.database_url) as session:
        message = session.get(Message, message_id_of(gateway.database_url, "dup-id"))
        session.add(Message(id="f" * 32, account_id=2, client_message_id="dup-id", phone_number="12025550100",
                            sender="55555", text="hi", priority="BULK", state=6, accepted_at=message.accepted_at))
    page = text(logged_in.client.get("/console/messages", query_string={"q": "dup-id"}))
    assert "2 messages have the id" in page and ">acme<" in page and ">other<" in page


def test_a_message_nobody_has(logged_in):
    page = logged_in.client.get("/console/messages", query_string={"q": "never-sent"})
    assert page.status_code == 200 and 'id="not-found"' in text(page)


def test_the_timeline_interleaves_events_and_callback_attempts(logged_in, gateway):
    record_one(gateway, logged_in.client, "tl-1")
    internal_id = message_id_of(gateway.database_url, "tl-1")
    callback_id = dead_callback(gateway.database_url, internal_id)
    page = text(logged_in.client.get(f"/console/messages/{internal_id}"))
    assert re.search(r'data-kind="accepted".*data-kind="routed".*data-kind="dr callback"', page, re.S)
    assert "outcome=HTTP 500" in page and f'data-callback="{callback_id}" class="dead"' in page
    assert 'class="replay"' in page  # a dead callback can be replayed from the message


# --- dead letters ---------------------------------------------------------------------------------

def _task_ids(redis_client) -> list[list[str]]:
    return [json.loads(base64.b64decode(json.loads(raw)["body"]))[0][0] for raw in redis_client.lrange("callbacks", 0, -1)]


def test_replay_a_dead_letter(logged_in, gateway, redis_client):
    record_one(gateway, logged_in.client, "dl-1")
    callback_id = dead_callback(gateway.database_url, message_id_of(gateway.database_url, "dl-1"))
    listing = text(logged_in.client.get("/console/callbacks"))
    assert f'value="{callback_id}"' in listing
    response = logged_in.post("/console/callbacks/replay", {"id": callback_id})
    assert response.status_code == 302 and response.headers["Location"] == f"/console/callbacks/{callback_id}"
    assert "1 callback(s) queued again" in text(logged_in.client.get(response.headers["Location"]))
    with session_scope(gateway.database_url) as session:
        callback = session.get(Callback, callback_id)
        assert (callback.status, callback.attempts, len(callback.attempt_log)) == ("pending", 0, 1)
    assert _task_ids(redis_client) == [[callback_id]]
    again = logged_in.post("/console/callbacks/replay", {"id": callback_id})
    assert "0 callback(s) queued again; 1 not dead, left alone" in text(logged_in.client.get(again.headers["Location"]))


def test_replay_all_dead_of_one_account(logged_in, gateway, redis_client):
    record_one(gateway, logged_in.client, "dl-2")
    first = dead_callback(gateway.database_url, message_id_of(gateway.database_url, "dl-2"), "a" * 32)
    second = dead_callback(gateway.database_url, message_id_of(gateway.database_url, "dl-2"), "b" * 32)
    response = logged_in.post("/console/callbacks/replay", {"all": "1", "account": "other"})
    assert "0 callback(s) queued again" in text(logged_in.client.get(response.headers["Location"]))
    response = logged_in.post("/console/callbacks/replay", {"all": "1", "account": "acme", "keep_url": "1"})
    assert response.headers["Location"] == "/console/callbacks"
    assert sorted(_task_ids(redis_client)[0]) == [first, second]
    assert "nothing here" in text(logged_in.client.get("/console/callbacks"))


# --- schedules --------------------------------------------------------------------------------------

def _schedule(client, destinations: str) -> str:
    due = datetime.now(UTC) + timedelta(days=30)
    body = text(client.post("/bulksms/schedulemsg", data={
        "username": "acme", "password": PASSWORD, "type": "0", "dlr": "1", "destination": destinations,
        "source": "99222", "message": "Spring sale <b>50%</b>", "date": due.strftime("%m/%d/%Y"),
        "time": "10:00 am", "gmt": "GMT +5:30"}))
    assert body.startswith("1701|"), body
    return body.split("|")[2][:24]


def test_cancel_a_schedule(logged_in, gateway, redis_client):
    batch_id = _schedule(logged_in.client, "12025550100,12025550101,12025550102")
    page = text(logged_in.client.get("/console/schedules"))
    assert f'data-batch="{batch_id}"' in page and "Spring sale &lt;b&gt;50%&lt;/b&gt;" in page
    response = logged_in.post(f"/console/schedules/{batch_id}/cancel")
    assert response.status_code == 302
    page = text(logged_in.client.get("/console/schedules"))
    assert f"batch {batch_id} cancelled" in page and f'<tr data-batch="{batch_id}">' not in page
    store = BulkStore(redis_client, gateway.key_prefix)
    assert redis_client.hget(store.keys.batch(batch_id), "state") == b"cancelled"
    again = logged_in.post(f"/console/schedules/{batch_id}/cancel")
    assert "not cancelled: cancelled" in text(logged_in.client.get(again.headers["Location"]))


def test_campaign_progress(logged_in, gateway):
    batch_id = _schedule(logged_in.client, "12025550100,12025550101")
    progress = logged_in.client.get(f"/console/api/batches/{batch_id}").get_json()
    assert (progress["status"], progress["total"], progress["queued"], progress["finished"]) == ("scheduled", 2, 2, False)
    page = text(logged_in.client.get(f"/console/batches/{batch_id}"))
    assert f'data-api="/console/api/batches/{batch_id}"' in page and 'data-finished="false"' in page
    lookup = logged_in.client.get("/console/batches", query_string={"batch": batch_id})
    assert lookup.headers["Location"] == f"/console/batches/{batch_id}"


# --- directory ------------------------------------------------------------------------------------

def test_the_directory_pages_list_what_the_cli_lists(logged_in, gateway):
    assert ">acme<" in text(logged_in.client.get("/console/accounts"))
    senders = text(logged_in.client.get("/console/senders"))
    assert "99222" in senders and "77777" in senders and "(unassigned)" in senders
    assert "99901" in text(logged_in.client.get("/console/carriers"))
    routes = text(logged_in.client.get("/console/routes"))
    assert "99901 us" in routes
