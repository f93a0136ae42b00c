"""A Bayeux 1.0 server over long-polling (``/genesys/cometd``), enough for GMS
mobile clients: they handshake, subscribe to ``/_genesys`` and receive the chat
events of the chats they started with ``notify_by=comet``.

Meta channels: ``/meta/handshake``, ``/meta/connect``, ``/meta/subscribe``,
``/meta/unsubscribe``, ``/meta/disconnect``; publishing to ``/_genesys`` is
acknowledged and delivered to the other clients of the same app and user;
``/service/**`` (server-side services) is refused with ``403``. Replies carry
``channel``, ``successful``, ``id`` (echoed), ``clientId``, and ``advice`` where the
specification puts it; errors use Bayeux's ``code:args:message`` form.

A ``/meta/connect`` is held until a message arrives or ``cometd_timeout`` seconds
pass (25 s by default, shorter than common proxy timeouts), so a long-poll never
holds a gthread worker thread for longer than that. A client's first connect is
answered at once. Clients not heard from for ``cometd_session_timeout`` seconds
expire with their Redis keys.

Message parsing (:func:`parse_messages`) is pure; :class:`BayeuxServer` does the I/O.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass

from app.gms.config import GmsOptions
from app.gms.store import GmsStore

VERSION = "1.0"
CONNECTION_TYPE = "long-polling"
GENESYS_CHANNEL = "/_genesys"
MAX_BATCH = 50
_CHANNEL = re.compile(r"^(/[A-Za-z0-9_\-.~!$&'()+,;=@]+)+$")
_CLIENT_ID = re.compile(r"^[0-9a-f]{40}$")


class MalformedBayeux(ValueError):
    """The request body is not a Bayeux message or array of messages."""


def parse_messages(body: bytes | str | None, *, form_message: str | None = None) -> list[dict]:
    """The messages of a long-polling request: a JSON array or object in the body, or
    the ``message`` form field. Each must be an object with a string ``channel``."""
    raw = form_message if form_message is not None else body
    if raw is None or (isinstance(raw, (bytes, str)) and not raw.strip()):
        raise MalformedBayeux("empty request: send a JSON array of Bayeux messages")
    try:
        parsed = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise MalformedBayeux("the body is not JSON") from None
    messages = parsed if isinstance(parsed, list) else [parsed]
    if not messages:
        raise MalformedBayeux("the message array is empty")
    if len(messages) > MAX_BATCH:
        raise MalformedBayeux(f"more than {MAX_BATCH} messages in one request")
    for message in messages:
        if not isinstance(message, dict):
            raise MalformedBayeux("every Bayeux message must be a JSON object")
        if not isinstance(message.get("channel"), str) or not _CHANNEL.match(message["channel"]):
            raise MalformedBayeux("every Bayeux message needs a valid 'channel'")
        if "id" in message and not isinstance(message["id"], (str, int)):
            raise MalformedBayeux("a message 'id' must be a string")
    return messages


def malformed_reply(reason: str) -> list[dict]:
    return [{"channel": "/meta/unknown", "successful": False, "error": f"400::{reason}",
             "advice": {"reconnect": "handshake", "interval": 0}}]


@dataclass(frozen=True)
class Identity:
    app: str
    user: str


def _reply(message: dict, **fields) -> dict:
    reply = {"channel": message["channel"]}
    if "id" in message:
        reply["id"] = str(message["id"])
    reply.update(fields)
    return reply


class BayeuxServer:
    def __init__(self, store: GmsStore, options: GmsOptions):
        self.store = store
        self.options = options

    @property
    def _advice(self) -> dict:
        return {"reconnect": "retry", "interval": 0, "timeout": int(self.options.cometd_timeout * 1000)}

    def handle(self, identity: Identity, messages: list[dict]) -> list[dict]:
        replies: list[dict] = []
        connects: list[dict] = []
        for message in messages:
            if message["channel"] == "/meta/connect":
                connects.append(message)
            else:
                replies.append(self._one(identity, message))
        for index, message in enumerate(connects):
            replies.extend(self._connect(identity, message, wait=index == len(connects) - 1 and not replies))
        return replies

    def _client(self, identity: Identity, message: dict) -> dict | None:
        client_id = message.get("clientId")
        if not isinstance(client_id, str) or not _CLIENT_ID.match(client_id):
            return None
        client = self.store.cometd_client(client_id)
        if client is None or client.get("app") != identity.app:
            return None
        client["id"] = client_id
        return client

    def _unknown_client(self, message: dict) -> dict:
        return _reply(message, successful=False, error="402::Unknown client",
                      advice={"reconnect": "handshake", "interval": 0})

    def _one(self, identity: Identity, message: dict) -> dict:
        channel = message["channel"]
        if channel == "/meta/handshake":
            return self._handshake(identity, message)
        client = self._client(identity, message)
        if client is None:
            return self._unknown_client(message)
        self.store.cometd_touch(client["id"], client["app"], client["user"], self.options.cometd_session_timeout)
        if channel in ("/meta/subscribe", "/meta/unsubscribe"):
            return self._subscription(client, message, subscribe=channel == "/meta/subscribe")
        if channel == "/meta/disconnect":
            self.store.cometd_forget(client["id"], client["app"], client["user"])
            return _reply(message, clientId=client["id"], successful=True)
        if channel.startswith("/meta/"):
            return _reply(message, clientId=client["id"], successful=False, error=f"400:{channel}:unknown meta channel")
        return self._publish(client, message)

    def _handshake(self, identity: Identity, message: dict) -> dict:
        types = message.get("supportedConnectionTypes", [CONNECTION_TYPE])
        if not isinstance(types, list) or CONNECTION_TYPE not in types:
            return _reply(message, successful=False, version=VERSION, supportedConnectionTypes=[CONNECTION_TYPE],
                          error=f"400:{CONNECTION_TYPE}:unsupported connection types",
                          advice={"reconnect": "none", "interval": 0})
        ext = message.get("ext") if isinstance(message.get("ext"), dict) else {}
        user = identity.user
        if user == identity.app and isinstance(ext.get("gms_user"), str) and ext["gms_user"].strip():
            user = ext["gms_user"].strip()[:128]
        client_id = secrets.token_hex(20)
        self.store.cometd_register(client_id, identity.app, user, self.options.cometd_session_timeout)
        return _reply(message, version=VERSION, supportedConnectionTypes=[CONNECTION_TYPE], clientId=client_id,
                      successful=True, advice=self._advice)

    def _subscription(self, client: dict, message: dict, *, subscribe: bool) -> dict:
        wanted = message.get("subscription")
        channels = wanted if isinstance(wanted, list) else [wanted]
        if not channels or not all(isinstance(c, str) and _CHANNEL.match(c.replace("*", "x")) for c in channels):
            return _reply(message, clientId=client["id"], successful=False, subscription=wanted,
                          error="400::missing or invalid subscription")
        denied = [c for c in channels if c != GENESYS_CHANNEL]
        if denied:
            return _reply(message, clientId=client["id"], successful=False, subscription=wanted,
                          error=f"403:{denied[0]}:subscription denied (only {GENESYS_CHANNEL})")
        current = [s for s in client.get("subs", "").split(",") if s]
        updated = sorted(set(current) | set(channels)) if subscribe else [s for s in current if s not in channels]
        self.store.cometd_set_subscriptions(client["id"], updated)
        return _reply(message, clientId=client["id"], successful=True, subscription=wanted)

    def _publish(self, client: dict, message: dict) -> dict:
        channel = message["channel"]
        if channel != GENESYS_CHANNEL:
            return _reply(message, successful=False, error=f"403:{channel}:publish denied (only {GENESYS_CHANNEL})")
        if "data" not in message:
            return _reply(message, successful=False, error=f"400:{channel}:a publish needs 'data'")
        event = {"channel": channel, "data": message["data"], "id": secrets.token_hex(8)}
        self.store.cometd_deliver(client["app"], client["user"], channel, json.dumps(event),
                                  self.options.cometd_session_timeout)
        return _reply(message, successful=True)

    def _connect(self, identity: Identity, message: dict, *, wait: bool) -> list[dict]:
        client = self._client(identity, message)
        if client is None:
            return [self._unknown_client(message)]
        if message.get("connectionType", CONNECTION_TYPE) != CONNECTION_TYPE:
            return [_reply(message, clientId=client["id"], successful=False,
                           error=f"400:{message.get('connectionType')}:unsupported connection type")]
        self.store.cometd_touch(client["id"], client["app"], client["user"], self.options.cometd_session_timeout)
        timeout = self.options.cometd_timeout
        advice = message.get("advice")
        if isinstance(advice, dict) and isinstance(advice.get("timeout"), (int, float)) and advice["timeout"] >= 0:
            timeout = min(timeout, advice["timeout"] / 1000)
        first = self.store.cometd_first_connect(client["id"])

        def alive() -> bool:
            return self.store.cometd_alive(client["id"])

        events = self.store.cometd_take(client["id"], timeout if wait and not first else 0, still_connected=alive)
        delivered = [json.loads(e) for e in events]
        if not alive():
            return [*delivered, _reply(message, clientId=client["id"], successful=False,
                                       error="402::Unknown client", advice={"reconnect": "handshake", "interval": 0})]
        return [*delivered, _reply(message, clientId=client["id"], successful=True, advice=self._advice)]
