"""Every endpoint under generated hostile input (hypothesis; bounded, well under a
minute): no 5xx, and nothing half-written.

* ``/httpapi/receiver``: the reply is always ``200 result_code=N`` with a documented N;
  a refusal leaves Redis exactly as it was; an acceptance adds one whole payload (every
  key the worker needs) and, with a ``message_id``, its claim pointing at it.
* the bulk API: the reply is always 200 and well formed; a refusal leaves Redis as it
  was; an accepted batch is whole (its record, every destination, its task).
* every other route of the app (whatever other areas add): random methods, path
  values, headers and bodies never get a 5xx.
"""

from __future__ import annotations

import json
import re
import string

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.adapters.redis_scripts import RedisKeys
from tests.integration.conftest import PASSWORD

pytestmark = pytest.mark.integration
FUZZ = settings(max_examples=100, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
RESULT_CODES = {0, 1, 2, 3, 4, 5, 6, 7, 8, 98, 99}
PAYLOAD_KEYS = {"id", "account_id", "client_message_id", "phone_number", "sender", "message", "carrier", "receipt",
                "app_id", "conversation_id", "priority", "attachments", "accepted_at", "price"}
"""What the MT worker reads from every accepted payload (``app.services.submit.accepted_payload``)."""

nasty_text = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=string.digits + "+-. ", max_size=20),
    st.sampled_from(["", " ", "0", "-1", "1e99", "TRUE", "FALSE", "true", "INTERACTIVE", "bulk", "99222", "acme",
                     PASSWORD, "12025550100", "447700900123", "\x00", "%ff", "😀" * 50, "x" * 2000, "null",
                     "[]", "{}", "../../etc/passwd", "<script>", "' OR 1=1 --", "=?utf-8?", "\r\nX-Injected: 1"]),
)
MT_FIELDS = ["login", "password", "phone_number", "sender", "shortcode", "carrier", "message", "message_id",
             "receipt", "app_id", "conversation_id", "priority", "mms_attachment[0].content_type",
             "mms_attachment[0].content", "mms_attachment[1].content_type", "mms_attachment[7].content"]
BULK_FIELDS = ["username", "password", "type", "dlr", "destination", "source", "message", "time", "url",
               "batch_id", "scheduled_id", "id", "date", "page", "limit"]


def form(fields: list[str], valid: dict[str, str]):
    """A form that starts from a valid one and breaks it: fields dropped, replaced by
    nasty values, or added."""
    return st.builds(
        lambda dropped, replaced, extra: {**{k: v for k, v in valid.items() if k not in dropped}, **replaced,
                                          **extra},
        st.sets(st.sampled_from(sorted(valid))),
        st.dictionaries(st.sampled_from(fields), nasty_text, max_size=4),
        st.dictionaries(st.text(min_size=1, max_size=12), nasty_text, max_size=2),
    )


def redis_state(redis_client, prefix: str, queues) -> dict:
    """Every key under the test's prefix and the Celery queues, with its size."""
    state = {}
    for key in [*redis_client.scan_iter(match=f"{prefix}*", count=1000), *map(str.encode, queues)]:
        kind = redis_client.type(key).decode()
        size = {"list": redis_client.llen, "hash": redis_client.hlen, "set": redis_client.scard,
                "zset": redis_client.zcard}.get(kind, lambda _k: 1)(key)
        if kind != "none":
            state[key.decode()] = (kind, size)
    return state


def without_buckets(state: dict) -> dict:
    """Without what lapses by itself: token buckets refilling, drain flags expiring, and the
    failed-login counts (a refusal is counted on purpose: docs/security.md)."""
    return {key: value for key, value in state.items()
            if ":bucket:" not in key and not key.endswith(":drain") and ":auth:" not in key}


@FUZZ
@given(data=form(MT_FIELDS, {"login": "acme", "password": PASSWORD, "phone_number": "12025550100",
                             "sender": "99222", "message": "hello", "message_id": "x"}),
       method=st.sampled_from(["GET", "POST"]), message_id=st.uuids())
def test_the_mt_api_answers_every_request_and_writes_whole_or_nothing(gateway, client, redis_client, queues, data,
                                                                        method, message_id):
    if data.get("message_id") == "x":
        data["message_id"] = str(message_id)  # a fresh id, so acceptances are possible
    before = redis_state(redis_client, gateway.key_prefix, queues)
    response = client.get("/httpapi/receiver", query_string=data) if method == "GET" else \
        client.post("/httpapi/receiver", data=data)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    match = re.fullmatch(r"result_code=(\d+)", response.get_data(as_text=True))
    assert match and int(match.group(1)) in RESULT_CODES
    after = redis_state(redis_client, gateway.key_prefix, queues)
    if match.group(1) != "0":
        assert without_buckets(after) == without_buckets(before)
        return
    keys = RedisKeys(gateway.key_prefix)
    payloads = [json.loads(raw) for queue in queues[:4] for raw in redis_client.lrange(keys.stage_pending(queue), 0, -1)]
    newest = {p["id"]: p for p in payloads}
    assert all(PAYLOAD_KEYS <= set(p) for p in payloads)
    client_id = data.get("message_id")
    if client_id:
        claimed = redis_client.get(keys.idempotency(1, client_id))
        assert claimed is not None and claimed.decode() in newest


@FUZZ
@given(data=form(BULK_FIELDS, {"username": "acme", "password": PASSWORD, "type": "0", "dlr": "1",
                               "destination": "12025550100,12025550101", "source": "99222", "message": "hi"}),
       path=st.sampled_from(["/bulksms/bulksms", "/bulksms/schedulemsg", "/bulksms/schedules",
                             "/bulksms/cancelschedule"]),
       method=st.sampled_from(["GET", "POST"]))
def test_the_bulk_api_answers_every_request_and_writes_whole_batches_or_nothing(gateway, client, redis_client, queues,
                                                                                data, path, method):
    before = redis_state(redis_client, gateway.key_prefix, queues)
    response = client.get(path, query_string=data) if method == "GET" else client.post(path, data=data)
    assert response.status_code == 200 and response.mimetype == "text/plain"
    body = response.get_data(as_text=True)
    assert len(body) < 1_000_000  # (an empty body is a valid answer: no schedules to list)
    after = redis_state(redis_client, gateway.key_prefix, queues)
    if not re.search(r"(^|,)1701\|", body) and path != "/bulksms/cancelschedule":
        assert without_buckets(after) == without_buckets(before)
    keys = RedisKeys(gateway.key_prefix)
    for key in redis_client.scan_iter(match=f"{gateway.key_prefix}batch:*", count=1000):
        name = key.decode()
        if name.endswith(":dests"):
            continue
        batch = {k.decode(): v.decode() for k, v in redis_client.hgetall(name).items()}
        if batch.get("mode") == "direct":
            continue
        batch_id = name.rsplit(":", 1)[1]
        assert {"state", "count", "meta", "account"} <= set(batch), batch
        assert redis_client.llen(keys.batch_destinations(batch_id)) == int(batch["count"])


def _routes(app):
    return [rule for rule in app.url_map.iter_rules() if rule.endpoint != "static"]


@FUZZ
@given(data=st.data())
def test_no_route_answers_5xx_to_anything(gateway, client, queues, data):
    app = client.application
    rule = data.draw(st.sampled_from(_routes(app)), label="route")
    methods = sorted(rule.methods - {"OPTIONS"}) + ["PUT", "PATCH"]
    method = data.draw(st.sampled_from(methods), label="method")
    values = {}
    for argument in rule.arguments - set(rule.defaults or ()):
        converter = rule._converters[argument]
        if type(converter).__name__ == "IntegerConverter":
            values[argument] = data.draw(st.integers(0, 2**40))
        elif type(converter).__name__ == "AnyConverter":
            values[argument] = data.draw(st.sampled_from(sorted(converter.items)))
        else:
            values[argument] = data.draw(st.text(alphabet=string.ascii_letters + string.digits + "-_.~%",
                                                 min_size=1, max_size=30))
    try:
        path = rule.build(values)[1]
    except Exception:
        return  # a value the route itself cannot be built with
    body = data.draw(st.one_of(st.binary(max_size=300), st.text(max_size=300).map(str.encode),
                               st.dictionaries(st.sampled_from(MT_FIELDS + BULK_FIELDS + ["from", "to", "text",
                                                                                           "status", "err"]),
                                               nasty_text, max_size=5)), label="body")
    content_type = data.draw(st.sampled_from(["application/x-www-form-urlencoded", "multipart/form-data",
                                              "application/json", "text/plain", "application/octet-stream", None]))
    headers = data.draw(st.dictionaries(st.sampled_from(["Authorization", "X-Smsagg-Carrier-Token", "gms_user",
                                                        "Content-Length-Ignored", "Accept"]),
                                        st.text(alphabet=string.printable.strip(), max_size=40), max_size=2))
    kwargs = {"data": body, "headers": headers}
    if content_type and not isinstance(body, dict):
        kwargs["content_type"] = content_type
    response = client.open(path, method=method, **kwargs)
    assert response.status_code < 500, (method, path, response.status_code, response.get_data()[:300])
