"""A property-based run of the published OpenAPI document against the live REST API
(schemathesis, valid and invalid inputs generated from the spec): no 5xx, and every
answer conforms to the spec (status, media type, headers, body); anything the spec
calls invalid is refused with a 4xx.

The server is the real app under werkzeug on a free port of 127.0.0.1, on real Redis
and SQLite. Half of the generated sends use the account's own sender, so the accepted
paths (MT admission, batches, schedules) run too, not only the refusals. Bounded by
``MAX_EXAMPLES`` per operation so the run takes seconds.
"""

from __future__ import annotations

import threading
from collections import Counter
import zlib

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode, checks
from werkzeug.serving import make_server

from app.web import create_app
from tests.integration.api.conftest import issue_key

MAX_EXAMPLES = 40
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_headers_conformance, checks.response_schema_conformance,
          checks.negative_data_rejection, checks.ignored_auth]


@pytest.fixture
def live_api(gateway):
    server = make_server("127.0.0.1", 0, create_app(gateway), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", issue_key(gateway.database_url)
    finally:
        server.shutdown()
        thread.join(timeout=10)


def _operations(base_url: str):
    schema = schemathesis.openapi.from_url(f"{base_url}/api/v1/openapi.json")
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_the_spec_holds_against_the_live_server(live_api, mode):
    base_url, token = live_api
    operations = _operations(base_url)
    answers: Counter = Counter()
    assert {(op.method.upper(), op.path) for op in operations} >= {("POST", "/api/v1/messages"),
                                                                    ("GET", "/api/v1/messages/{message_id}")}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and not ({"parameters", "requestBody"} & set(operation.definition.raw)):
            continue  # nothing of it can be made invalid
        @given(case=operation.as_strategy(mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def holds(case):
            if mode is GenerationMode.POSITIVE and case.method == "POST" and isinstance(case.body, dict) \
                    and zlib.crc32(repr(case.body).encode()) % 2:
                case.body["sender"] = "99222"
            response = case.call_and_validate(base_url=base_url, headers={"Authorization": f"Bearer {token}"},
                                              checks=CHECKS)
            answers[(case.method, operation.path, response.status_code)] += 1

        holds()
    if mode is GenerationMode.POSITIVE:  # the accepted paths ran, not only refusals
        assert answers[("POST", "/api/v1/messages", 202)] > 0, answers
        assert answers[("GET", "/api/v1/messages", 200)] > 0, answers
