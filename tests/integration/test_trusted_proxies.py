"""Behind deploy/'s TLS proxy, the client's address decides, not the proxy's: the MT
allowlist (seed 000 result_code 2), the bulk API's IP lists (seed 001 rows 20-21, codes 16
and 18) and the REST API's (403). X-Forwarded-For counts only from SMSAGG_TRUSTED_PROXIES,
and only its right-most untrusted address."""

from __future__ import annotations

import pytest

from app.bulk import compliance
from app.db.session import session_scope
from app.domain.forwarded import parse_networks
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.web import create_app
from tests.integration.api.conftest import body as rest_body
from tests.integration.api.conftest import issue_key
from tests.integration.bulk.conftest import params as bulk_params
from tests.integration.test_httpapi import params

PROXY, CLIENT, STRANGER = "127.0.0.1", "203.0.113.7", "198.51.100.1"

CASES = [  # (peer, X-Forwarded-For, whose address counts)
    (PROXY, CLIENT, CLIENT),                   # through the proxy
    (PROXY, f"{CLIENT}, 10.9.9.9", CLIENT),  # through the proxy and a second trusted hop
    (PROXY, STRANGER, STRANGER),
    (PROXY, f"{CLIENT}, {STRANGER}", STRANGER),  # a client naming itself CLIENT, behind the proxy
    (STRANGER, CLIENT, STRANGER),              # no proxy: what it claims is ignored
    (CLIENT, STRANGER, CLIENT),
]


@pytest.fixture
def client(gateway):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(allowed_ips=(f"{CLIENT}/32",)))
    proxied = gateway.with_overrides(trusted_proxies=parse_networks("127.0.0.0/8, 10.0.0.0/8"))
    return create_app(proxied).test_client()


def send(client, method, path, peer, forwarded, **kwargs):
    return client.open(path, method=method, headers={"X-Forwarded-For": forwarded},
                       environ_base={"REMOTE_ADDR": peer}, **kwargs)


def test_mt_api_allowlist_judges_the_client(client):
    for index, (peer, forwarded, counted) in enumerate(CASES):
        reply = send(client, "POST", "/httpapi/receiver", peer, forwarded, data=params(message_id=f"p-{index}"))
        assert reply.get_data(as_text=True) == ("result_code=0" if counted == CLIENT else "result_code=2"), forwarded


def test_bulk_allowlist_18_judges_the_client(client):
    for index, (peer, forwarded, counted) in enumerate(CASES):
        reply = send(client, "POST", "/bulksms/bulksms", peer, forwarded,
                     data=bulk_params(message=f"Hello {index}")).get_data(as_text=True)
        assert reply.startswith("1701|") if counted == CLIENT else reply == "18||", forwarded


def test_bulk_denylist_16_judges_the_client(client, gateway):
    with session_scope(gateway.database_url) as session:
        compliance.deny_ip(session, f"{CLIENT}/32")
    assert send(client, "POST", "/bulksms/bulksms", PROXY, CLIENT, data=bulk_params()).get_data(as_text=True) \
        == "16||"
    # the proxy itself is not the denied one; a stranger behind it is merely not allowlisted
    assert send(client, "POST", "/bulksms/bulksms", PROXY, STRANGER, data=bulk_params()).get_data(as_text=True) \
        == "18||"


def test_rest_api_allowlist_judges_the_client(client, gateway):
    token = issue_key(gateway.database_url)
    for index, (peer, forwarded, counted) in enumerate(CASES):
        reply = client.open("/api/v1/messages", method="POST", json=rest_body(message_id=f"r-{index}"),
                            headers={"X-Forwarded-For": forwarded, "Authorization": f"Bearer {token}"},
                            environ_base={"REMOTE_ADDR": peer})
        assert reply.status_code == (202 if counted == CLIENT else 403), forwarded


def test_without_trusted_proxies_the_header_is_ignored(gateway):
    with session_scope(gateway.database_url) as session:
        svc.update_account(session, "acme", options=AccountOptions(allowed_ips=(f"{CLIENT}/32",)))
    plain = create_app(gateway).test_client()
    assert send(plain, "POST", "/httpapi/receiver", PROXY, CLIENT, data=params()).get_data(as_text=True) \
        == "result_code=2"
