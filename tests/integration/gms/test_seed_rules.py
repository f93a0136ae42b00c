"""Seed 003's rules across apps and configuration: match-interaction looks through ALL
services, ``_booking_expiration_timeout`` on the request overrides the resource's and
the configuration's value, and request-chat routes to a specified or configured
interaction endpoint (an agent group)."""

from __future__ import annotations

import pytest

from app.db.session import session_scope
from app.gms import registry
from app.web import create_app
from tests.integration.gms.conftest import GMS_INI, OTHER_APP, OTHER_PASSWORD, Gms

CHAT = "/genesys/1/service/{id}/ixn/chat"
AGENT_API = "/genesys/agent/api/chats"
BOB, BOB_PASSWORD = "bob", "agent-secret-2"

EXTRA_INI = """
[chat-endpoint:sales]
agents = bob

[service:vip-chat]
service = request-chat
name = vip-chat
chat_endpoint = Environment:sales

[service:long-access]
type = builtin
service = request-access
name = request-access
booking_expiration_timeout = 90
"""


def reconfigured(gms: Gms, extra: str, gms_section: str = "") -> Gms:
    """The same gateway with more in gms.ini (read when the app starts)."""
    text = GMS_INI.replace("[gms]\n", f"[gms]\n{gms_section}", 1) + extra
    (gms.settings.home / "gms.ini").write_text(text)
    app = create_app(gms.settings)
    app.testing = True
    return Gms(settings=gms.settings, app=app, client=app.test_client())


@pytest.fixture
def seeded(gms) -> Gms:
    with session_scope(gms.settings.database_url) as session:
        registry.add_agent(session, BOB, BOB_PASSWORD, "Bob")
    return reconfigured(gms, EXTRA_INI)


def other(gms: Gms) -> dict:
    return gms.auth(OTHER_APP, OTHER_PASSWORD)


def test_match_interaction_looks_through_all_services(gms):
    """Seed 003, match-interaction: "It looks through all the services for one that
    matches", "only the service id (session id) and data id will be returned", "The
    service will always release", and "The user of this service must use the Storage
    APIs to retrieve any data": the matching app (an IVR) reads the data, nothing more."""
    gms.add_group("ivr", "18005550401")
    created = gms.post("/genesys/1/service/request-interaction",
                       {"_phone_number": "6504669999", "_resource_group": "ivr", "_provide_code": "true",
                        "reason": "billing"}).get_json()
    match = {"_access_number": "18005550401", "_phone_number": "+1 650 466 9999",
             "_access_code": created["_access_code"]}
    matched = gms.client.post("/genesys/1/service/match-interaction", data=match, headers=other(gms))
    assert matched.status_code == 200
    assert matched.get_json() == {"_id": created["_id"], "_data_id": created["_data_id"]}
    # released: a second match finds nothing, the owner's service no longer shows the number
    again = gms.client.post("/genesys/1/service/match-interaction", data=match, headers=other(gms))
    assert again.status_code == 404 and again.get_json()["error"] == "no_match"
    assert "_access_number" not in gms.client.get(f"/genesys/1/service/{created['_id']}",
                                                  headers=gms.auth()).get_json()
    # the matching app reads the stored data ...
    data = f"/genesys/1/storage/{created['_data_id']}"
    assert gms.client.get(data, headers=other(gms)).get_json() == {"reason": "billing"}
    assert gms.client.get(f"{data}/reason", headers=other(gms)).get_data(as_text=True) == "billing"
    # ... and only reads it; the service stays its owner's
    assert gms.client.post(f"{data}/60", data={"reason": "x"}, headers=other(gms)).status_code == 404
    assert gms.client.delete(data, headers=other(gms)).status_code == 404
    assert gms.client.get(f"/genesys/1/service/{created['_id']}", headers=other(gms)).status_code == 404
    assert gms.client.get(data, headers=gms.auth()).get_json() == {"reason": "billing"}


def test_match_apps_limits_who_may_match(gms):
    gms.add_group("ivr", "18005550402")
    limited = reconfigured(gms, "", gms_section=f"match_apps = {OTHER_APP}\n")
    created = limited.post("/genesys/1/service/request-interaction",
                           {"_phone_number": "6504669999", "_resource_group": "ivr"}).get_json()
    match = {"_access_number": "18005550402"}
    refused = limited.post("/genesys/1/service/match-interaction", match)
    assert refused.status_code == 403 and refused.get_json()["error"] == "forbidden"
    # the refusal released nothing
    allowed = limited.client.post("/genesys/1/service/match-interaction", data=match, headers=other(limited))
    assert allowed.status_code == 200 and allowed.get_json()["_id"] == created["_id"]


def test_the_requests_booking_timeout_overrides_resource_and_configuration(seeded):
    """Seed 003, request-access, _booking_expiration_timeout: "This parameter will
    override the value in Resource options and in CME options"."""
    seeded.add_group("plain", "18005550501")
    seeded.add_group("timed", "18005550502", booking_timeout=20)
    target = seeded.post("/genesys/1/service/request-chat").get_json()["_id"]  # lives 3600 s

    def booked(group: str, **request) -> int:
        body = seeded.post("/genesys/1/service/long-access", {"_id": target, "_resource_group": group, **request})
        assert body.status_code == 200, body.get_json()
        return body.get_json()["_expiration_time"]

    assert booked("plain", _booking_expiration_timeout="5") == 5  # request over configuration (90)
    assert booked("timed", _booking_expiration_timeout="7") == 7  # request over resource (20)
    assert booked("timed") == 20  # resource over configuration
    assert booked("plain") == 90  # the configured service's value
    bad = seeded.post("/genesys/1/service/long-access",
                      {"_id": target, "_resource_group": "plain", "_booking_expiration_timeout": "0"})
    assert bad.status_code == 400 and bad.get_json()["parameter"] == "_booking_expiration_timeout"


def _start(gms: Gms, service: str = "request-chat", **control) -> str:
    created = gms.post(f"/genesys/1/service/{service}", control)
    assert created.status_code == 200, created.get_json()
    service_id = created.get_json()["_id"]
    assert gms.post(CHAT.format(id=service_id), {"nickname": "Kim"}).status_code == 200
    return service_id


def _waiting(gms: Gms, name: str, password: str) -> list[str]:
    headers = {"Authorization": gms.auth(name, password)["Authorization"]}
    return [c["_id"] for c in gms.client.get(AGENT_API, headers=headers).get_json()["waiting"]]


def test_request_chat_routes_to_the_specified_or_configured_endpoint(seeded):
    """Seed 003, request-chat: "responsible for routing the chat interaction to a
    specified (or configured) interaction endpoint". alice is in no endpoint section
    (she serves ``default``); bob serves ``sales``."""
    default_chat = _start(seeded)
    sales_chat = _start(seeded, _chat_endpoint="sales")
    configured = _start(seeded, "vip-chat", _chat_endpoint="default")  # the service's endpoint wins
    assert _waiting(seeded, "alice", "agent-secret-1") == [default_chat]
    assert _waiting(seeded, BOB, BOB_PASSWORD) == [sales_chat, configured]
    alice = {"Authorization": seeded.auth("alice", "agent-secret-1")["Authorization"]}
    stolen = seeded.client.post(f"{AGENT_API}/{sales_chat}/accept", headers=alice)
    assert stolen.status_code == 404 and stolen.get_json()["error"] == "chat_not_found"
    bob = {"Authorization": seeded.auth(BOB, BOB_PASSWORD)["Authorization"]}
    assert seeded.client.post(f"{AGENT_API}/{sales_chat}/accept", headers=bob).status_code == 200
    assert _waiting(seeded, BOB, BOB_PASSWORD) == [configured]
    assert seeded.client.post(f"{AGENT_API}/{sales_chat}/end", headers=bob).status_code == 200
    # the customer ending a waiting chat takes it off its endpoint's list
    assert seeded.post(CHAT.format(id=configured) + "/disconnect").status_code == 200
    assert _waiting(seeded, BOB, BOB_PASSWORD) == []
    assert seeded.client.delete(f"/genesys/1/service/{default_chat}", headers=seeded.auth()).status_code == 200
    assert _waiting(seeded, "alice", "agent-secret-1") == []


@pytest.mark.parametrize("endpoint", ["nowhere", "bad name", "x" * 65])
def test_an_unknown_endpoint_is_refused_and_leaves_nothing(seeded, redis_client, endpoint):
    before = set(redis_client.scan_iter(match=f"{seeded.settings.key_prefix}gms:*"))
    refused = seeded.post("/genesys/1/service/request-chat", {"_chat_endpoint": endpoint})
    assert refused.status_code == 400 and refused.get_json()["parameter"] == "_chat_endpoint"
    assert set(redis_client.scan_iter(match=f"{seeded.settings.key_prefix}gms:*")) == before
