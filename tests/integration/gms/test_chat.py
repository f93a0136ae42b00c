"""Chat (request-chat, Chat API v1) in poll mode and pushed over CometD in polling
mode on the ingress, with the agent API on the other side (long-polling on the
CometD server: test_cometd_server.py)."""

from __future__ import annotations

import json
import time

import requests

CHAT = "/genesys/1/service/{id}/ixn/chat"
AGENT_API = "/genesys/agent/api/chats"


def _events(body: dict) -> list[tuple[str, str, str]]:
    return [(e[0], e[1], e[4]) for e in body["transcriptToShow"]]


def test_chat_in_poll_mode(gms):
    service = gms.post("/genesys/1/service/request-chat", {"topic": "billing"}).get_json()
    sid = service["_id"]
    early = gms.post(CHAT.format(id=sid) + "/send", {"message": "hi"})
    assert early.status_code == 409 and early.get_json()["error"] == "chat_state"

    started = gms.post(CHAT.format(id=sid), {"firstName": "Kristi", "lastName": "Sippola", "subject": "Bill",
                                             "email": "k@example.com", "notify_by": "none"})
    assert started.status_code == 200, started.get_json()
    body = started.get_json()
    assert body["chatIxnState"] == "CONNECTED" and body["chatSessionId"]
    assert body["transcriptToShow"] == [["Notice.Joined", "Kristi Sippola", "has joined the session", "1", "CLIENT"]]
    assert body["transcriptPosition"] == "2"
    assert gms.post(CHAT.format(id=sid), {"nickname": "again"}).status_code == 409

    waiting = gms.client.get(AGENT_API, headers=gms.agent_auth()).get_json()
    assert [c["_id"] for c in waiting["waiting"]] == [sid] and waiting["waiting"][0]["subject"] == "Bill"
    accepted = gms.client.post(f"{AGENT_API}/{sid}/accept", headers=gms.agent_auth())
    assert accepted.status_code == 200
    assert gms.client.post(f"{AGENT_API}/{sid}/accept", headers=gms.agent_auth()).status_code == 409

    sent = gms.post(CHAT.format(id=sid) + "/send", {"message": "My bill is wrong"}).get_json()
    assert _events(sent) == [("Message.Text", "Kristi Sippola", "CLIENT")]
    gms.client.post(f"{AGENT_API}/{sid}/startTyping", headers=gms.agent_auth())
    gms.client.post(f"{AGENT_API}/{sid}/send", data={"message": "Let me check."}, headers=gms.agent_auth())
    gms.client.post(f"{AGENT_API}/{sid}/stopTyping", headers=gms.agent_auth())

    refreshed = gms.post(CHAT.format(id=sid) + "/refresh", {"transcriptPosition": sent["transcriptPosition"]})
    assert _events(refreshed.get_json()) == [
        ("Notice.TypingStarted", "Alice", "AGENT"), ("Message.Text", "Alice", "AGENT"),
        ("Notice.TypingStopped", "Alice", "AGENT")]
    assert refreshed.get_json()["transcriptToShow"][1][2] == "Let me check."
    full = gms.post(CHAT.format(id=sid) + "/refresh").get_json()
    assert [e[0] for e in full["transcriptToShow"]][:3] == ["Notice.Joined", "Notice.Joined", "Message.Text"]

    assert gms.post(CHAT.format(id=sid) + "/startTyping").status_code == 200
    assert gms.post(CHAT.format(id=sid) + "/stopTyping").status_code == 200
    bye = gms.post(CHAT.format(id=sid) + "/disconnect").get_json()
    assert bye["chatIxnState"] == "DISCONNECTED"
    assert bye["transcriptToShow"][-1][:2] == ["Notice.Left", "Kristi Sippola"]
    assert gms.post(CHAT.format(id=sid) + "/send", {"message": "late"}).status_code == 409
    agent_view = gms.client.get(f"{AGENT_API}/{sid}", headers=gms.agent_auth()).get_json()
    assert agent_view["chatIxnState"] == "DISCONNECTED"


def test_chat_errors(gms):
    sid = gms.post("/genesys/1/service/request-chat").get_json()["_id"]
    r = gms.post(CHAT.format(id=sid), {"firstName": "OnlyFirst"})
    assert r.status_code == 400 and r.get_json()["parameter"] == "nickname"
    r = gms.post(CHAT.format(id=sid), {"nickname": "n", "notify_by": "pigeon"})
    assert r.status_code == 400 and r.get_json()["parameter"] == "notify_by"
    gms.post(CHAT.format(id=sid), {"nickname": "n"})
    r = gms.post(CHAT.format(id=sid) + "/send", {})
    assert r.status_code == 400 and r.get_json()["parameter"] == "message"
    r = gms.post(CHAT.format(id=sid) + "/refresh", {"transcriptPosition": "-1"})
    assert r.status_code == 400 and r.get_json()["parameter"] == "transcriptPosition"
    assert gms.post(CHAT.format(id="feedface") + "/refresh").status_code == 404
    assert gms.client.post(f"{AGENT_API}/{sid}/send", data={"message": "x"},
                           headers=gms.agent_auth()).status_code == 403  # not accepted by this agent
    assert gms.client.get(AGENT_API, headers=gms.auth()).status_code == 401  # apps are not agents
    voice = gms.post("/genesys/1/service/request-chat").get_json()["_id"]
    gms.client.delete(f"/genesys/1/service/{voice}", headers=gms.auth())
    assert gms.post(CHAT.format(id=voice), {"nickname": "n"}).status_code == 404


def _bayeux(base, headers, messages, timeout=10):
    r = requests.post(f"{base}/genesys/cometd", data=json.dumps(messages), timeout=timeout,
                      headers={**headers, "Content-Type": "application/json"})
    return r.status_code, r.json()


POLLING_ADVICE = {"reconnect": "retry", "interval": 500, "timeout": 0}  # cometd_poll_interval = 0.5 (conftest)


def test_chat_pushed_over_cometd_in_polling_mode_on_the_ingress(gms, live_server):
    """The ingress's /genesys/cometd never holds a thread: every connect is answered at
    once with what is waiting and advice to poll again (seed 003: request-chat
    "supports both poll and async (via cometd) mode of message delivery")."""
    base = live_server()
    headers = {**gms.auth(), "X-GMS-User": "device-42"}
    status, [hs] = _bayeux(base, headers, [{"channel": "/meta/handshake", "version": "1.0", "id": "1",
                                            "supportedConnectionTypes": ["long-polling"]}])
    assert status == 200 and hs["successful"] is True and hs["id"] == "1"
    assert hs["advice"] == POLLING_ADVICE and hs["supportedConnectionTypes"] == ["long-polling"]
    cid = hs["clientId"]
    _, [sub] = _bayeux(base, headers, [{"channel": "/meta/subscribe", "clientId": cid, "subscription": "/_genesys",
                                        "id": "2"}])
    assert sub == {"channel": "/meta/subscribe", "clientId": cid, "subscription": "/_genesys", "successful": True,
                   "id": "2"}
    _, [denied] = _bayeux(base, headers, [{"channel": "/meta/subscribe", "clientId": cid, "subscription": "/other",
                                           "id": "3"}])
    assert denied["successful"] is False and denied["error"].startswith("403:")
    _, [first] = _bayeux(base, headers, [{"channel": "/meta/connect", "clientId": cid,
                                          "connectionType": "long-polling", "id": "4"}])
    assert first["successful"] is True

    # nothing waiting: answered at once (cometd_timeout is 2 s), with the polling advice
    began = time.monotonic()
    _, replies = _bayeux(base, headers, [{"channel": "/meta/connect", "clientId": cid,
                                          "connectionType": "long-polling", "id": "5"}])
    assert time.monotonic() - began < 1.0 and replies == [
        {"channel": "/meta/connect", "clientId": cid, "successful": True, "id": "5", "advice": POLLING_ADVICE}]

    sid = requests.post(f"{base}/genesys/1/service/request-chat", headers=headers, timeout=5).json()["_id"]
    started = requests.post(f"{base}{CHAT.format(id=sid)}", headers=headers, timeout=5,
                            data={"nickname": "Kristi", "notify_by": "comet"})
    assert started.status_code == 200
    requests.post(f"{base}{AGENT_API}/{sid}/accept", headers=gms.agent_auth(), timeout=5).raise_for_status()
    requests.post(f"{base}{AGENT_API}/{sid}/send", headers=gms.agent_auth(), data={"message": "Hello!"},
                  timeout=5).raise_for_status()

    # the next poll carries every event queued since, in order, then the connect reply
    _, replies = _bayeux(base, headers, [{"channel": "/meta/connect", "clientId": cid,
                                          "connectionType": "long-polling", "id": "6"}])
    assert replies[-1] == {"channel": "/meta/connect", "clientId": cid, "successful": True, "id": "6",
                           "advice": POLLING_ADVICE}
    assert all(m["channel"] == "/_genesys" and m["data"]["tag"] == f"service.chat.refresh.{sid}"
               for m in replies[:-1])
    received = [m["data"]["message"] for m in replies[:-1]]
    assert [(e["transcriptToShow"][0][0], e["transcriptToShow"][0][4]) for e in received] == [
        ("Notice.Joined", "CLIENT"), ("Notice.Joined", "AGENT"), ("Message.Text", "AGENT")]
    assert received[-1]["chatIxnState"] == "CONNECTED" and received[-1]["chatSessionId"]
    _, again = _bayeux(base, headers, [{"channel": "/meta/connect", "clientId": cid,
                                        "connectionType": "long-polling", "id": "7"}])
    assert [m["channel"] for m in again] == ["/meta/connect"]  # taken once

    _, [bye] = _bayeux(base, headers, [{"channel": "/meta/disconnect", "clientId": cid, "id": "8"}])
    assert bye["successful"] is True
    _, [gone] = _bayeux(base, headers, [{"channel": "/meta/connect", "clientId": cid,
                                         "connectionType": "long-polling", "id": "9"}])
    assert gone["successful"] is False and gone["advice"]["reconnect"] == "handshake"


def test_malformed_bayeux(gms, live_server):
    base = live_server()
    headers = {**gms.auth(), "Content-Type": "application/json"}
    for body in ("not json", "[]", "[1, 2]", '[{"id": "1"}]', '{"channel": 5}', ""):
        r = requests.post(f"{base}/genesys/cometd", data=body, headers=headers, timeout=5)
        assert r.status_code == 400, body
        assert r.json()[0]["successful"] is False and r.json()[0]["error"].startswith("400::")
    _, [unknown] = _bayeux(base, gms.auth(), [{"channel": "/meta/connect", "clientId": "0" * 40, "id": "x"}])
    assert unknown["error"] == "402::Unknown client" and unknown["id"] == "x"
    _, [bad_type] = _bayeux(base, gms.auth(), [{"channel": "/meta/handshake", "version": "1.0",
                                               "supportedConnectionTypes": ["websocket"]}])
    assert bad_type["successful"] is False and bad_type["advice"]["reconnect"] == "none"
    assert requests.post(f"{base}/genesys/cometd", data="[]", timeout=5).status_code == 401
