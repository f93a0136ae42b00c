"""``/httpapi/receiver`` against real Redis and a real database: every result code of
seed 000's "HTTP API Response" table, GET and POST, and what each leaves behind."""

from __future__ import annotations

import base64
import json
import threading
from concurrent.futures import ThreadPoolExecutor

from datetime import datetime, timezone

import pytest
from sqlalchemy.exc import OperationalError
from werkzeug.serving import make_server

from app.adapters.redis_scripts import RedisKeys

from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.intake import record_accepted
from app.web import create_app
from tests.integration.conftest import PASSWORD
from tests.integration.workers import wait_until

VALID = {
    "login": "acme",
    "password": PASSWORD,
    "phone_number": "12025550100",
    "sender": "99222",
    "message": "Hello",
    "message_id": "m-1",
}


def params(**changes):
    result = dict(VALID)
    for key, value in changes.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = value
    return result


def submit(client, method, data):
    if method == "GET":
        response = client.get("/httpapi/receiver", query_string=data)
    else:
        response = client.post("/httpapi/receiver", data=data)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert body.startswith("result_code=")
    return int(body.split("=", 1)[1])


METHODS = pytest.mark.parametrize("method", ["GET", "POST"])

# (case id, parameters, expected result_code): seed 000, "HTTP API Response" table.
CASES = [
    ("queued", params(), 0),
    ("queued-shortcode-name", params(sender=None, shortcode="99222"), 0),
    ("queued-trusted-carrier", params(carrier="99901"), 0),
    ("queued-priority", params(priority="INTERACTIVE"), 0),
    ("queued-receipt", params(receipt="TRUE", app_id="app", conversation_id="c1"), 0),
    ("missing-login", params(login=None), 1),
    ("missing-password", params(password=None), 1),
    ("missing-phone", params(phone_number=None), 1),
    ("missing-sender", params(sender=None), 1),
    ("missing-message", params(message=None), 1),
    ("missing-message-id", params(message_id=None), 1),
    ("phone-not-numeric", params(phone_number="1202555O100"), 1),
    ("phone-national", params(phone_number="07700900000"), 1),
    ("phone-plus", params(phone_number="+12025550100"), 1),
    ("bad-priority", params(priority="HIGH"), 1),
    ("bad-receipt", params(receipt="YES"), 1),
    ("attachments-not-from-0", params(**{"mms_attachment[1].content_type": "image/png",
                                         "mms_attachment[1].content": "eA=="}), 1),
    ("bad-base64", params(**{"mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "%%%"}), 1),
    ("content-without-type", params(**{"mms_attachment[0].content": "eA=="}), 1),
    ("mms-type-with-line-break", params(**{"mms_attachment[0].content_type": "image/png\r\nX-Evil: 1",
                                           "mms_attachment[0].content": "eA=="}), 1),
    ("mms-multipart-not-alone", params(**{
        "mms_attachment[0].content_type": 'multipart/mixed; boundary="b"',
        "mms_attachment[0].content": base64.b64encode(b"--b\r\n\r\nx\r\n--b--\r\n").decode(),
        "mms_attachment[1].content_type": "image/png", "mms_attachment[1].content": "eA=="}), 1),
    ("unknown-login", params(login="nobody"), 2),
    ("wrong-password", params(password="wrong"), 2),
    ("carrier-not-integer", params(carrier="att"), 3),
    ("carrier-unknown", params(carrier="12345"), 3),
    ("sender-unknown", params(sender="31337"), 4),
    ("sender-malformed", params(sender="!!"), 4),
    ("sender-of-another-account", params(sender="55555"), 5),
    ("sender-unowned", params(sender="77777"), 5),
    ("too-long", params(message="x" * 1601), 8),
    ("mms-too-large", params(**{"mms_attachment[0].content_type": "image/png",  # SMSAGG_MAX_MMS_BYTES, 300 KiB
                                "mms_attachment[0].content": base64.b64encode(b"x" * 300 * 1024).decode()}), 8),
]


@METHODS
@pytest.mark.parametrize("case,data,expected", CASES, ids=[c[0] for c in CASES])
def test_result_codes(client, redis_client, method, case, data, expected, queued):
    assert submit(client, method, data) == expected
    assert len(queued()) + len(queued("mt.interactive")) == (1 if expected == 0 else 0)


@METHODS
def test_rejected_request_leaves_no_claim_and_spends_no_token(gateway, redis_client, method):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(rate=1, burst=1))
    client = create_app(gateway).test_client()
    assert submit(client, method, params(sender="55555")) == 5
    assert not list(redis_client.scan_iter(f"{gateway.key_prefix}idem:*"))
    # The token was not spent: the next valid request (same message_id) is queued.
    assert submit(client, method, params()) == 0


@METHODS
def test_duplicate_message_id_is_7_and_queues_once(client, redis_client, method, queued):
    assert submit(client, method, params()) == 0
    assert submit(client, method, params(message="different text")) == 7
    assert len(queued()) == 1


def test_message_ids_are_per_account(gateway, redis_client):
    client = create_app(gateway).test_client()
    assert submit(client, "POST", params()) == 0
    assert submit(client, "POST", params(login="other", sender="55555")) == 0


@METHODS
def test_throttled_when_over_the_account_rate(gateway, redis_client, method):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(rate=1, burst=2))
    client = create_app(gateway).test_client()
    codes = [submit(client, method, params(message_id=f"t{i}")) for i in range(3)]
    assert codes == [0, 0, 6]
    assert redis_client.get(f"{gateway.key_prefix}idem:1:t2") is None


def test_optional_message_id_account_needs_none(gateway, redis_client, queued):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(message_id_optional=True))
    client = create_app(gateway).test_client()
    assert submit(client, "POST", params(message_id=None)) == 0
    assert submit(client, "POST", params(message_id=None)) == 0
    assert len(queued()) == 2


def test_disabled_account_is_2(gateway):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", enabled=False, options=AccountOptions())
    assert submit(create_app(gateway).test_client(), "POST", params()) == 2


def test_client_ip_outside_allowlist_is_2(gateway):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(allowed_ips=("10.1.0.0/16",)))
    client = create_app(gateway).test_client()
    assert submit(client, "POST", params()) == 2
    inside = client.post("/httpapi/receiver", data=params(message_id="m-2"), environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert inside.get_data(as_text=True) == "result_code=0"


@pytest.mark.parametrize("priority", ["INTERACTIVE", "INTERACTIVE_LOW", "BULK", "BULK_LOW"])
def test_priority_selects_its_queue(client, redis_client, priority, queued):
    assert submit(client, "POST", params(priority=priority)) == 0
    queue = "mt." + priority.lower()
    [payload] = queued(queue)
    assert payload["priority"] == priority
    [drain] = [json.loads(raw) for raw in redis_client.lrange(queue, 0, -1)]  # the Celery task that drains it
    assert drain["headers"]["task"] == "smsagg." + queue
    assert drain["properties"]["delivery_info"]["routing_key"] == queue


def test_default_priority_is_the_accounts(gateway, redis_client, queued):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(priority="INTERACTIVE_LOW"))
    assert submit(create_app(gateway).test_client(), "POST", params()) == 0
    assert len(queued("mt.interactive_low")) == 1


def test_queued_payload_carries_the_whole_request(client, redis_client, queued):
    data = params(receipt="true", app_id="a1", conversation_id="c9", carrier="99901", message="Grüße €",
                  **{"mms_attachment[0].content_type": "image/png", "mms_attachment[0].content": "iVBORw=="})
    assert submit(client, "POST", data) == 0
    payload = queued()[0]
    assert payload["message"] == "Grüße €" and payload["receipt"] is True
    assert payload["app_id"] == "a1" and payload["conversation_id"] == "c9" and payload["carrier"] == 99901
    assert payload["attachments"] == [["image/png", "iVBORw=="]]
    assert payload["client_message_id"] == "m-1" and len(payload["id"]) == 32


def test_post_body_with_invalid_utf8_is_1(client):
    response = client.post("/httpapi/receiver", data=b"login=acme&message=%C3%28",
                           content_type="application/x-www-form-urlencoded")
    assert response.get_data(as_text=True) == "result_code=1"


def test_multipart_post_is_accepted(client):
    response = client.post("/httpapi/receiver", data=params(), content_type="multipart/form-data")
    assert response.get_data(as_text=True) == "result_code=0"


def test_unsupported_content_type_is_1(client):
    response = client.post("/httpapi/receiver", data=json.dumps(VALID), content_type="application/json")
    assert response.get_data(as_text=True) == "result_code=1"


def test_oversize_body_is_8(gateway):
    client = create_app(gateway.with_overrides(max_request_bytes=1024)).test_client()
    response = client.post("/httpapi/receiver", data=params(message="x" * 5000))
    assert response.status_code == 200 and response.get_data(as_text=True) == "result_code=8"


def test_redis_unreachable_is_98_and_nothing_is_half_accepted(gateway, redis_client, queued):
    client = create_app(gateway.with_overrides(redis_url="redis://127.0.0.1:1/0")).test_client()
    assert submit(client, "POST", params()) == 98
    assert queued() == []


def test_database_unreachable_is_98(gateway):
    broken = gateway.with_overrides(database_url="postgresql+psycopg://postgres@127.0.0.1:1/none")
    assert submit(create_app(broken).test_client(), "POST", params()) == 98


def test_an_unexpected_error_is_99_not_98(gateway, queued):
    """98 says "an internal problem, retry" and is kept for a backing service that is
    down; anything else unforeseen is seed 000's 99, "any other error"."""
    app = create_app(gateway)

    def broken(*_args):
        raise RuntimeError("a bug")

    app.extensions["smsagg"]["submit"].directory.authenticate = broken
    assert submit(app.test_client(), "POST", params()) == 99
    assert queued() == []


def _never_refunded(*_args):
    raise AssertionError("a routed message is not refunded")


def test_a_message_id_repeated_after_its_claim_expired_is_still_7(gateway, redis_client, queued):
    """Seed 000: 7 is "the same message_id as a previously accepted request", however long
    ago; the Redis claim lives SMSAGG_IDEMPOTENCY_TTL_SECONDS (1 s here), the message log
    for good."""
    client = create_app(gateway.with_overrides(idempotency_ttl_seconds=1)).test_client()
    assert submit(client, "POST", params(message_id="old-1")) == 0
    [payload] = queued()
    with session_scope(gateway.database_url) as session:  # what the MT worker does with it
        record_accepted(
            session, payload, now=datetime.now(timezone.utc), route=lambda _number: 99901, refund=_never_refunded
        )
    claim = RedisKeys(gateway.key_prefix).idempotency(payload["account_id"], "old-1")
    wait_until(lambda: not redis_client.exists(claim), timeout=10)
    assert submit(client, "POST", params(message_id="old-1")) == 7
    assert submit(client, "POST", params(message_id="old-1", message="Other text")) == 7
    assert len(queued()) == 1 and not redis_client.exists(claim)  # a refusal claims nothing
    assert submit(client, "POST", params(message_id="new-2")) == 0


def test_the_message_log_unreachable_leaves_the_claim_to_decide(gateway, queued):
    app = create_app(gateway)

    class Unreachable:
        def accepted_id(self, *_args):
            raise OperationalError("SELECT", {}, Exception("connection refused"))

    app.extensions["smsagg"]["submit"].message_log = Unreachable()
    client = app.test_client()
    assert submit(client, "POST", params(message_id="m-9")) == 0
    assert submit(client, "POST", params(message_id="m-9")) == 7  # the Redis claim
    assert len(queued()) == 1


def test_concurrent_submits_of_one_message_id_yield_exactly_one_0(gateway, redis_client, queued):
    """Seed 000, "MT Retries": the id decides. 40 simultaneous submits over real
    sockets to a threaded server: exactly one 0, the rest 7."""
    import requests

    app = create_app(gateway)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_port}/httpapi/receiver"
    barrier = threading.Barrier(40)

    def one(_):
        barrier.wait()
        return requests.post(url, data=params(message_id="same-id"), timeout=30).text

    try:
        with ThreadPoolExecutor(40) as pool:
            answers = list(pool.map(one, range(40)))
    finally:
        server.shutdown()
    assert sorted(answers) == ["result_code=0"] + ["result_code=7"] * 39
    assert len(queued()) == 1


def test_healthz(client):
    assert client.get("/healthz").get_json() == {"status": "ok"}
