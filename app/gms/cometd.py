"""The Bayeux 1.0 protocol of the mobile services' CometD endpoint, as pure code (no
I/O, no clock), so that the blocking route on the ingress and the asyncio CometD
server (:mod:`app.gms.cometd_server`) run the same protocol.

GMS mobile clients handshake, subscribe to ``/_genesys`` and receive the chat events
of the chats they started with ``notify_by=comet``. Meta channels:
``/meta/handshake``, ``/meta/connect``, ``/meta/subscribe``, ``/meta/unsubscribe``,
``/meta/disconnect``. A publish to ``/_genesys`` is acknowledged and queued for the
clients of the same app and user subscribed to it (the publisher too, as Bayeux
does); ``/service/**`` (server-side services) is refused with ``403``. Replies carry
``channel``, ``successful``, ``id`` (echoed), ``clientId``, and ``advice`` where the
specification puts it; errors use Bayeux's ``code:args:message`` form.

A request is handled in three steps, with the caller's I/O between them:

1. :func:`messages_from_body` (or :func:`parse_messages`) reads the Bayeux messages;
2. :func:`plan` decides, from the messages and the client records
   (:class:`ClientRecord`) read from Redis for the client ids they name
   (:func:`client_ids`), every reply that can be given now, the writes to make
   (:data:`Write`), and at most one ``/meta/connect`` still to answer
   (:class:`PendingConnect`) with how long it may be held;
3. :func:`connect_replies` answers that connect with the events taken from the
   client's queue.

Holding a connect is the server's choice: the CometD server holds it up to
``hold`` seconds; the ingress never holds one (it answers with what is waiting and
polling :class:`Advice`). A client's first connect, a connect batched with other
messages and every connect but the last of a batch are answered at once.
"""

from __future__ import annotations

import json
import re
import secrets
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

VERSION = "1.0"
CONNECTION_TYPE = "long-polling"
GENESYS_CHANNEL = "/_genesys"
MAX_BATCH = 50
# Largest request body on /genesys/cometd (413 payload_too_large beyond), and the
# most queued messages one connect reply carries (it always carries at least one).
MAX_BODY_BYTES = 256 * 1024
MAX_REPLY_BYTES = 256 * 1024
MAX_REPLY_MESSAGES = 100
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


def messages_from_body(mimetype: str, body: bytes) -> list[dict]:
    """The messages of a request body: form-urlencoded bodies carry them in the
    ``message`` field (as CometD's JavaScript client can send them), others are JSON."""
    form_message = None
    if mimetype == "application/x-www-form-urlencoded":
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8"), strict_parsing=False)
        except UnicodeDecodeError:
            raise MalformedBayeux("the form body is not UTF-8") from None
        form_message = fields["message"][0] if fields.get("message") else None
    return parse_messages(body if form_message is None else None, form_message=form_message)


def malformed_reply(reason: str) -> list[dict]:
    return [{"channel": "/meta/unknown", "successful": False, "error": f"400::{reason}",
             "advice": {"reconnect": "handshake", "interval": 0}}]


@dataclass(frozen=True)
class Identity:
    app: str
    user: str


@dataclass(frozen=True)
class Advice:
    """Bayeux ``advice`` for a successful handshake or connect: wait ``interval_ms``
    before the next connect; the server holds a connect up to ``timeout_ms``."""

    interval_ms: int
    timeout_ms: int

    @classmethod
    def long_polling(cls, hold_seconds: float) -> "Advice":
        return cls(0, int(hold_seconds * 1000))

    @classmethod
    def polling(cls, interval_seconds: float) -> "Advice":
        return cls(int(interval_seconds * 1000), 0)

    def to_json(self) -> dict:
        return {"reconnect": "retry", "interval": self.interval_ms, "timeout": self.timeout_ms}


@dataclass(frozen=True)
class ClientRecord:
    """What Redis holds about a handshaken client."""

    client_id: str
    app: str
    user: str
    subscriptions: tuple[str, ...] = ()
    connected: bool = False  # a /meta/connect was answered before


# --- writes the caller makes for a plan (app.gms.store.CometdCommands runs them) ---


@dataclass(frozen=True)
class Register:
    client_id: str
    app: str
    user: str


@dataclass(frozen=True)
class Touch:
    """The client was heard from: its keys live ``cometd_session_timeout`` more."""

    client_id: str
    app: str
    user: str


@dataclass(frozen=True)
class SetSubscriptions:
    client_id: str
    subscriptions: tuple[str, ...]


@dataclass(frozen=True)
class MarkConnected:
    client_id: str


@dataclass(frozen=True)
class Forget:
    client_id: str
    app: str
    user: str


@dataclass(frozen=True)
class Deliver:
    """Queue ``message_json`` for the clients of (app, user) subscribed to ``channel``."""

    app: str
    user: str
    channel: str
    message_json: str


Write = Register | Touch | SetSubscriptions | MarkConnected | Forget | Deliver


@dataclass(frozen=True)
class PendingConnect:
    """A ``/meta/connect`` answered after the client's queue has been read: at once
    (``hold == 0``) or once a message arrives, within ``hold`` seconds."""

    message: dict
    client: ClientRecord
    hold: float


@dataclass(frozen=True)
class Plan:
    replies: list[dict]
    writes: list[Write]
    connect: PendingConnect | None


def client_ids(messages: list[dict]) -> list[str]:
    """The well-formed client ids of a batch, each once: the records to read."""
    seen: dict[str, None] = {}
    for message in messages:
        client_id = message.get("clientId")
        if isinstance(client_id, str) and _CLIENT_ID.match(client_id):
            seen[client_id] = None
    return list(seen)


def _reply(message: dict, **fields) -> dict:
    reply = {"channel": message["channel"]}
    if "id" in message:
        reply["id"] = str(message["id"])
    reply.update(fields)
    return reply


def unknown_client(message: dict) -> dict:
    return _reply(message, successful=False, error="402::Unknown client",
                  advice={"reconnect": "handshake", "interval": 0})


class _Batch:
    """One request's messages applied in order to the clients they name."""

    def __init__(self, identity: Identity, clients: Mapping[str, ClientRecord], advice: Advice,
                 new_id: Callable[[int], str]):
        self.identity = identity
        self.clients = {cid: c for cid, c in clients.items() if c.app == identity.app}
        self.advice = advice
        self.new_id = new_id
        self.writes: list[Write] = []
        self.touched: set[str] = set()

    def client(self, message: dict) -> ClientRecord | None:
        client = self.clients.get(message.get("clientId")) if isinstance(message.get("clientId"), str) else None
        if client is not None and client.client_id not in self.touched:
            self.touched.add(client.client_id)
            self.writes.append(Touch(client.client_id, client.app, client.user))
        return client

    def one(self, message: dict) -> dict:
        channel = message["channel"]
        if channel == "/meta/handshake":
            return self.handshake(message)
        client = self.client(message)
        if client is None:
            return unknown_client(message)
        if channel in ("/meta/subscribe", "/meta/unsubscribe"):
            return self.subscription(client, message, subscribe=channel == "/meta/subscribe")
        if channel == "/meta/disconnect":
            del self.clients[client.client_id]
            self.writes.append(Forget(client.client_id, client.app, client.user))
            return _reply(message, clientId=client.client_id, successful=True)
        if channel.startswith("/meta/"):
            return _reply(message, clientId=client.client_id, successful=False,
                          error=f"400:{channel}:unknown meta channel")
        return self.publish(client, message)

    def handshake(self, message: dict) -> dict:
        types = message.get("supportedConnectionTypes", [CONNECTION_TYPE])
        if not isinstance(types, list) or CONNECTION_TYPE not in types:
            return _reply(message, successful=False, version=VERSION, supportedConnectionTypes=[CONNECTION_TYPE],
                          error=f"400:{CONNECTION_TYPE}:unsupported connection types",
                          advice={"reconnect": "none", "interval": 0})
        ext = message.get("ext") if isinstance(message.get("ext"), dict) else {}
        user = self.identity.user
        if user == self.identity.app and isinstance(ext.get("gms_user"), str) and ext["gms_user"].strip():
            user = ext["gms_user"].strip()[:128]
        client = ClientRecord(self.new_id(20), self.identity.app, user)
        self.clients[client.client_id] = client
        self.writes.append(Register(client.client_id, client.app, client.user))
        return _reply(message, version=VERSION, supportedConnectionTypes=[CONNECTION_TYPE],
                      clientId=client.client_id, successful=True, advice=self.advice.to_json())

    def subscription(self, client: ClientRecord, message: dict, *, subscribe: bool) -> dict:
        wanted = message.get("subscription")
        channels = wanted if isinstance(wanted, list) else [wanted]
        if not channels or not all(isinstance(c, str) and _CHANNEL.match(c.replace("*", "x")) for c in channels):
            return _reply(message, clientId=client.client_id, successful=False, subscription=wanted,
                          error="400::missing or invalid subscription")
        denied = [c for c in channels if c != GENESYS_CHANNEL]
        if denied:
            return _reply(message, clientId=client.client_id, successful=False, subscription=wanted,
                          error=f"403:{denied[0]}:subscription denied (only {GENESYS_CHANNEL})")
        current = set(client.subscriptions)
        updated = tuple(sorted(current | set(channels) if subscribe else current - set(channels)))
        self.clients[client.client_id] = replace(client, subscriptions=updated)
        self.writes.append(SetSubscriptions(client.client_id, updated))
        return _reply(message, clientId=client.client_id, successful=True, subscription=wanted)

    def publish(self, client: ClientRecord, message: dict) -> dict:
        channel = message["channel"]
        if channel != GENESYS_CHANNEL:
            return _reply(message, successful=False, error=f"403:{channel}:publish denied (only {GENESYS_CHANNEL})")
        if "data" not in message:
            return _reply(message, successful=False, error=f"400:{channel}:a publish needs 'data'")
        event = {"channel": channel, "data": message["data"], "id": self.new_id(8)}
        self.writes.append(Deliver(client.app, client.user, channel, json.dumps(event)))
        return _reply(message, successful=True)

    def connect(self, message: dict, *, may_hold: bool, max_hold: float) -> tuple[dict | None, PendingConnect | None]:
        client = self.client(message)
        if client is None:
            return unknown_client(message), None
        if message.get("connectionType", CONNECTION_TYPE) != CONNECTION_TYPE:
            return _reply(message, clientId=client.client_id, successful=False,
                          error=f"400:{message.get('connectionType')}:unsupported connection type"), None
        if not client.connected:
            self.writes.append(MarkConnected(client.client_id))
            self.clients[client.client_id] = client = replace(client, connected=True)
            may_hold = False  # the first connect is answered at once
        hold = max_hold if may_hold else 0.0
        advice = message.get("advice")
        if isinstance(advice, dict) and isinstance(advice.get("timeout"), (int, float)) and advice["timeout"] >= 0:
            hold = min(hold, advice["timeout"] / 1000)
        return None, PendingConnect(message, client, hold)


def plan(identity: Identity, messages: list[dict], clients: Mapping[str, ClientRecord], *, advice: Advice,
         max_hold: float, new_id: Callable[[int], str] = secrets.token_hex) -> Plan:
    """What to answer and write for one request's ``messages``; ``clients`` are the
    records of :func:`client_ids` found in Redis (another app's are ignored)."""
    batch = _Batch(identity, clients, advice, new_id)
    replies = [batch.one(m) for m in messages if m["channel"] != "/meta/connect"]
    connects = [m for m in messages if m["channel"] == "/meta/connect"]
    pending = None
    for index, message in enumerate(connects):
        last = index == len(connects) - 1
        reply, candidate = batch.connect(message, may_hold=last and not replies, max_hold=max_hold)
        if reply is not None:
            replies.append(reply)
        elif last:
            pending = candidate
        else:  # an earlier connect of the batch: the last one takes the client's messages
            replies.append(_reply(message, clientId=candidate.client.client_id, successful=True,
                                  advice=advice.to_json()))
    return Plan(replies, batch.writes, pending)


def connect_replies(pending: PendingConnect, events: list[str], *, alive: bool, advice: Advice) -> list[dict]:
    """The answer to a pending connect: the queued ``events`` (JSON texts), then the
    connect reply; ``402`` if the client was forgotten or expired meanwhile."""
    delivered = [json.loads(e) for e in events]
    client_id = pending.client.client_id
    if not alive:
        return [*delivered, _reply(pending.message, clientId=client_id, successful=False,
                                   error="402::Unknown client", advice={"reconnect": "handshake", "interval": 0})]
    return [*delivered, _reply(pending.message, clientId=client_id, successful=True, advice=advice.to_json())]


def unavailable_reply(messages: list[dict]) -> list[dict]:
    """Redis could not be reached: every message is answered unsuccessful, to retry."""
    return [_reply(m, successful=False, error="503::temporarily unavailable",
                   advice={"reconnect": "retry", "interval": 1000}) for m in messages]
