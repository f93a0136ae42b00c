"""The Bayeux protocol as pure code (app.gms.cometd): what a batch answers, writes and
leaves pending, for the ingress's polling route and the CometD server alike."""

from __future__ import annotations

import itertools
import json

import pytest

from app.gms import cometd as c

APP = c.Identity("mobileapp", "device-1")
LONG = c.Advice.long_polling(25)
POLL = c.Advice.polling(2)
CID = "a" * 40
OTHER = "b" * 40
NEW_CLIENT, NEW_EVENT = f"{1:040x}", f"{1:016x}"  # the first ids _ids() hands out


def _ids():
    counter = itertools.count(1)
    return lambda n: f"{next(counter):0{2 * n}x}"


def plan(messages, clients=(), advice=LONG, max_hold=25.0):
    known = {client.client_id: client for client in clients}
    return c.plan(APP, messages, known, advice=advice, max_hold=max_hold, new_id=_ids())


def client(client_id=CID, connected=True, subscriptions=("/_genesys",), app="mobileapp", user="device-1"):
    return c.ClientRecord(client_id, app, user, subscriptions, connected)


def test_advice_for_long_polling_and_polling():
    assert LONG.to_json() == {"reconnect": "retry", "interval": 0, "timeout": 25000}
    assert POLL.to_json() == {"reconnect": "retry", "interval": 2000, "timeout": 0}


def test_handshake_registers_a_client_with_the_servers_advice():
    result = plan([{"channel": "/meta/handshake", "id": "1", "supportedConnectionTypes": ["long-polling"]}],
                  advice=POLL)
    [reply] = result.replies
    assert reply == {"channel": "/meta/handshake", "id": "1", "version": "1.0", "supportedConnectionTypes":
                     ["long-polling"], "clientId": NEW_CLIENT, "successful": True, "advice": POLL.to_json()}
    assert result.writes == [c.Register(NEW_CLIENT, "mobileapp", "device-1")] and result.connect is None


def test_handshake_takes_gms_user_from_ext_only_when_no_header_named_one():
    messages = [{"channel": "/meta/handshake", "ext": {"gms_user": " phone-9 "}}]
    by_ext = c.plan(c.Identity("mobileapp", "mobileapp"), messages, {}, advice=LONG, max_hold=25, new_id=_ids())
    assert by_ext.writes == [c.Register(NEW_CLIENT, "mobileapp", "phone-9")]
    assert plan(messages).writes == [c.Register(NEW_CLIENT, "mobileapp", "device-1")]


def test_handshake_refuses_other_transports():
    [reply] = plan([{"channel": "/meta/handshake", "supportedConnectionTypes": ["websocket"]}]).replies
    assert reply["successful"] is False and reply["advice"]["reconnect"] == "none"


def test_subscribe_and_unsubscribe_only_the_genesys_channel():
    fresh = client(subscriptions=())
    result = plan([{"channel": "/meta/subscribe", "clientId": CID, "subscription": "/_genesys", "id": "2"},
                   {"channel": "/meta/subscribe", "clientId": CID, "subscription": "/other"},
                   {"channel": "/meta/unsubscribe", "clientId": CID, "subscription": ["/_genesys"]},
                   {"channel": "/meta/subscribe", "clientId": CID}], clients=[fresh])
    ok, denied, unsubscribed, invalid = result.replies
    assert ok == {"channel": "/meta/subscribe", "id": "2", "clientId": CID, "successful": True,
                  "subscription": "/_genesys"}
    assert denied["successful"] is False and denied["error"].startswith("403:/other:")
    assert unsubscribed["successful"] is True and invalid["error"].startswith("400::")
    assert result.writes == [c.Touch(CID, "mobileapp", "device-1"), c.SetSubscriptions(CID, ("/_genesys",)),
                             c.SetSubscriptions(CID, ())]


@pytest.mark.parametrize("known", [[], [client(app="otherapp")]], ids=["unknown", "another-apps"])
def test_unknown_or_another_apps_client_is_402_with_handshake_advice(known):
    result = plan([{"channel": "/meta/connect", "clientId": CID, "id": "x"},
                   {"channel": "/meta/subscribe", "clientId": "not-an-id", "subscription": "/_genesys"}],
                  clients=known)
    assert [r["error"] for r in result.replies] == ["402::Unknown client"] * 2
    assert result.replies[1]["id"] == "x" and result.replies[1]["advice"]["reconnect"] == "handshake"
    assert result.writes == [] and result.connect is None


def test_first_connect_is_answered_at_once_and_marks_the_client():
    result = plan([{"channel": "/meta/connect", "clientId": CID, "connectionType": "long-polling"}],
                  clients=[client(connected=False)])
    assert result.connect.hold == 0 and result.connect.client.connected is True
    assert result.writes == [c.Touch(CID, "mobileapp", "device-1"), c.MarkConnected(CID)]


def test_a_later_connect_may_be_held_up_to_the_servers_limit_or_the_clients_advice():
    connect = {"channel": "/meta/connect", "clientId": CID, "connectionType": "long-polling"}
    assert plan([connect], clients=[client()]).connect.hold == 25.0
    assert plan([{**connect, "advice": {"timeout": 5000}}], clients=[client()]).connect.hold == 5.0
    assert plan([{**connect, "advice": {"timeout": 60000}}], clients=[client()]).connect.hold == 25.0
    assert plan([connect], clients=[client()], max_hold=0).connect.hold == 0  # the ingress: never held


def test_a_connect_batched_with_other_messages_is_not_held():
    result = plan([{"channel": "/meta/connect", "clientId": CID},
                   {"channel": "/meta/subscribe", "clientId": CID, "subscription": "/_genesys"}], clients=[client()])
    assert [r["channel"] for r in result.replies] == ["/meta/subscribe"] and result.connect.hold == 0


def test_only_the_last_connect_of_a_batch_takes_messages():
    result = plan([{"channel": "/meta/connect", "clientId": CID, "id": "1"},
                   {"channel": "/meta/connect", "clientId": CID, "id": "2"}], clients=[client()])
    assert result.replies == [{"channel": "/meta/connect", "id": "1", "clientId": CID, "successful": True,
                               "advice": LONG.to_json()}]
    assert result.connect.message["id"] == "2" and result.connect.hold == 0


def test_unsupported_connection_type():
    [reply] = plan([{"channel": "/meta/connect", "clientId": CID, "connectionType": "websocket"}],
                   clients=[client()]).replies
    assert reply["successful"] is False and reply["error"].startswith("400:websocket:")


def test_disconnect_forgets_and_later_messages_of_the_batch_are_402():
    result = plan([{"channel": "/meta/disconnect", "clientId": CID},
                   {"channel": "/meta/subscribe", "clientId": CID, "subscription": "/_genesys"}], clients=[client()])
    assert result.replies[0]["successful"] is True and result.replies[1]["error"] == "402::Unknown client"
    assert result.writes == [c.Touch(CID, "mobileapp", "device-1"), c.Forget(CID, "mobileapp", "device-1")]


def test_publish_to_genesys_is_delivered_to_the_same_app_and_user():
    result = plan([{"channel": "/_genesys", "clientId": CID, "data": {"hello": 1}, "id": "7"},
                   {"channel": "/service/echo", "clientId": CID, "data": {}},
                   {"channel": "/_genesys", "clientId": CID},
                   {"channel": "/meta/other", "clientId": CID}], clients=[client()])
    ok, service, no_data, meta = result.replies
    assert ok == {"channel": "/_genesys", "id": "7", "successful": True}
    assert service["error"].startswith("403:/service/echo:") and no_data["error"].startswith("400:/_genesys:")
    assert meta["error"].startswith("400:/meta/other:")
    [touch, deliver] = result.writes
    assert touch == c.Touch(CID, "mobileapp", "device-1")
    assert (deliver.app, deliver.user, deliver.channel) == ("mobileapp", "device-1", "/_genesys")
    assert json.loads(deliver.message_json) == {"channel": "/_genesys", "data": {"hello": 1}, "id": NEW_EVENT}


def test_each_client_is_touched_once_per_batch():
    result = plan([{"channel": "/meta/subscribe", "clientId": CID, "subscription": "/_genesys"},
                   {"channel": "/_genesys", "clientId": OTHER, "data": 1},
                   {"channel": "/meta/unsubscribe", "clientId": CID, "subscription": "/_genesys"}],
                  clients=[client(), client(OTHER)])
    assert [w for w in result.writes if isinstance(w, c.Touch)] == [c.Touch(CID, "mobileapp", "device-1"),
                                                                   c.Touch(OTHER, "mobileapp", "device-1")]


def test_client_ids_are_the_well_formed_ones_once_each():
    assert c.client_ids([{"channel": "/meta/connect", "clientId": CID}, {"channel": "/a", "clientId": CID},
                         {"channel": "/a", "clientId": "x"}, {"channel": "/a", "clientId": 5},
                         {"channel": "/a", "clientId": OTHER}]) == [CID, OTHER]


def test_connect_replies_carry_the_events_then_the_reply():
    pending = c.PendingConnect({"channel": "/meta/connect", "id": "9"}, client(), 25.0)
    event = json.dumps({"channel": "/_genesys", "data": {"n": 1}, "id": "e1"})
    assert c.connect_replies(pending, [event], alive=True, advice=POLL) == [
        {"channel": "/_genesys", "data": {"n": 1}, "id": "e1"},
        {"channel": "/meta/connect", "id": "9", "clientId": CID, "successful": True, "advice": POLL.to_json()}]
    [gone] = c.connect_replies(pending, [], alive=False, advice=POLL)
    assert gone["error"] == "402::Unknown client" and gone["advice"]["reconnect"] == "handshake"


def test_unavailable_reply_answers_every_message():
    assert c.unavailable_reply([{"channel": "/meta/connect", "id": "1"}, {"channel": "/_genesys"}]) == [
        {"channel": "/meta/connect", "id": "1", "successful": False, "error": "503::temporarily unavailable",
         "advice": {"reconnect": "retry", "interval": 1000}},
        {"channel": "/_genesys", "successful": False, "error": "503::temporarily unavailable",
         "advice": {"reconnect": "retry", "interval": 1000}}]


def test_messages_from_a_form_body_or_json():
    message = json.dumps([{"channel": "/meta/handshake"}])
    from urllib.parse import urlencode

    assert c.messages_from_body("application/x-www-form-urlencoded", urlencode({"message": message}).encode()) == [
        {"channel": "/meta/handshake"}]
    assert c.messages_from_body("application/json", message.encode()) == [{"channel": "/meta/handshake"}]
    with pytest.raises(c.MalformedBayeux):
        c.messages_from_body("application/x-www-form-urlencoded", b"other=1")
    with pytest.raises(c.MalformedBayeux):
        c.messages_from_body("application/x-www-form-urlencoded", b"message=\xff")
