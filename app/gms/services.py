"""The mobile services: what each API call does, between the pure core
(:mod:`app.gms.domain`) and the Redis store (:mod:`app.gms.store`).

Every call names its :class:`Caller` (the authenticated app and the ``gms_user``);
services, storage and chats belong to the app that created them, and another app
gets the same 404 as for an id that never existed. One exception, the seed's:
match-interaction looks through ALL services, whichever app created them, and the
app that matched a service may then read its stored data (the seed: "The user of this
service must use the Storage APIs to retrieve any data that was associated with the
matched service"); ``[gms] match_apps`` names the apps allowed to match (default: any).

Chats are routed to an endpoint, an agent group: the request's ``_chat_endpoint``,
else the configured service's, else ``[gms] chat_endpoint``; an agent sees and accepts
only the waiting chats of the endpoints it serves (:meth:`GmsConfig.agent_endpoints`).

A refused create leaves nothing behind: the service and its number are taken by one
script, and the application data written just before is deleted again when the
group turns out to be exhausted.
"""

from __future__ import annotations

import json
import math
import secrets
from dataclasses import dataclass

from app.gms.cometd import GENESYS_CHANNEL, Advice, Identity, client_ids, connect_replies
from app.gms.cometd import plan as plan_bayeux
from app.gms.config import GmsConfig
from app.gms.domain import (
    DEFAULT_CHAT_ENDPOINT,
    AccessCodesExhausted,
    Builtin,
    ChatEvent,
    ChatIxnState,
    ChatNotFound,
    ChatStateConflict,
    CreateRequest,
    Forbidden,
    InvalidParameter,
    MissingParameter,
    NoMatch,
    PartyType,
    ResourceExhausted,
    ResourceGroup,
    ServiceDefinition,
    ServiceNotFound,
    StorageNotFound,
    Strategy,
    TranscriptEntry,
    UnknownService,
    UploadedFile,
    allocation_order,
    booking_seconds,
    chat_endpoint_name,
    chat_response,
    effective_parameters,
    new_access_codes,
    normalise_access_number,
    normalise_phone,
    notice,
    parse_bool,
    parse_chat_message,
    parse_chat_start,
    parse_transcript_position,
    parse_ttl,
    reservation_matches,
)
from app.gms.registry import Registry
from app.gms.store import CodesExhausted, Exhausted, GmsStore

CLIENT_PARTY = "1"
AGENT_PARTY = "2"
_MAX_KEY = 128


@dataclass(frozen=True)
class Caller:
    app: str
    user: str  # the gms_user header; the app's name when the client sends none


def _endpoint(chat: dict[str, str]) -> str:
    """The endpoint a chat was routed to (chats started before endpoints: ``default``)."""
    return chat.get("endpoint") or DEFAULT_CHAT_ENDPOINT


def new_id() -> str:
    return secrets.token_hex(16)


def _storage_fields(data: dict[str, str], files: dict[str, UploadedFile]) -> dict[str, bytes | str]:
    fields: dict[str, bytes | str] = {}
    for key, value in data.items():
        fields[f"v:{key}"] = value.encode("utf-8")
        fields[f"t:{key}"] = ""
    for key, upload in files.items():
        fields[f"v:{key}"] = upload.content
        fields[f"t:{key}"] = upload.content_type or "application/octet-stream"
        fields[f"f:{key}"] = upload.filename
    for key in [*data, *files]:
        if not key or len(key) > _MAX_KEY:
            raise InvalidParameter(key[:_MAX_KEY] or "(empty)", "storage keys are 1-128 characters")
    return fields


@dataclass(frozen=True)
class StoredValue:
    key: str
    value: bytes
    content_type: str  # "" for a text value
    filename: str | None


class MobileServices:
    def __init__(self, store: GmsStore, registry: Registry, config: GmsConfig):
        self.store = store
        self.registry = registry
        self.config = config
        self.options = config.options

    # --- service API -------------------------------------------------------------------

    def create(self, caller: Caller, service_name: str, request: CreateRequest) -> dict:
        definition = self.config.service(service_name)
        if definition is None:
            raise UnknownService(service_name)
        control = effective_parameters(definition, request.control)
        if definition.builtin is Builtin.REQUEST_INTERACTION:
            return self._request_interaction(caller, definition, control, request)
        if definition.builtin is Builtin.REQUEST_ACCESS:
            return self._request_access(caller, definition, control, request)
        if definition.builtin is Builtin.MATCH_INTERACTION:
            return self._match_interaction(caller, control)
        return self._request_chat(caller, definition, control, request)

    def _group(self, control: dict[str, str]) -> ResourceGroup:
        name = (control.get("_resource_group") or "").strip()
        if not name:
            raise MissingParameter("_resource_group", "no resource group was given or configured")
        group = self.registry.group(name)
        if group is None:
            raise InvalidParameter("_resource_group", f"no resource group named {name!r}")
        return group

    def _booking(self, control: dict[str, str], group: ResourceGroup, definition: ServiceDefinition) -> int:
        return booking_seconds(control, group, definition, self.options.booking_expiration_timeout)

    def _codes(self, definition: ServiceDefinition, provide: bool) -> list[str]:
        if not provide:
            return []
        return new_access_codes(definition.access_code_length or self.options.access_code_length)

    def _new_data(self, caller: Caller, request: CreateRequest, ttl: int) -> str:
        data_id = new_id()
        self.store.storage_create(data_id, caller.app, _storage_fields(request.data, request.files), ttl)
        return data_id

    def _service_fields(self, caller: Caller, definition: ServiceDefinition, data_id: str, ttl: int,
                        phone: str | None) -> dict[str, str]:
        return {
            "app": caller.app,
            "user": caller.user,
            "service": definition.name,
            "builtin": definition.builtin.value,
            "data_id": data_id,
            "ttl": str(ttl),
            "phone_number": phone or "",
        }

    def _reserve(self, *, service_id: str, create_fields: dict[str, str] | None, ttl: int, caller: Caller,
                 group: ResourceGroup, phone: str | None, booking: int, codes: list[str]):
        result = self.store.reserve(
            service_id=service_id,
            create_fields=create_fields,
            service_ttl=ttl,
            app=caller.app,
            group=group.name,
            phone=phone,
            numbers=allocation_order(group),
            round_robin=group.strategy is Strategy.ROUND_ROBIN,
            booking_seconds=booking,
            codes=codes,
        )
        if isinstance(result, CodesExhausted):
            raise AccessCodesExhausted(f"no free access code for resource group {group.name}", retry_after=1)
        if isinstance(result, Exhausted):
            retry = max(1, math.ceil(result.retry_after_ms / 1000))
            raise ResourceExhausted(
                f"every access number of resource group {group.name} is reserved; retry in {retry} s",
                parameter="_resource_group", retry_after=retry)
        return result

    @staticmethod
    def _access_response(reserved) -> dict:
        body = {"_access_number": reserved.number, "_expiration_time": reserved.seconds}
        if reserved.code:
            body["_access_code"] = reserved.code
        return body

    def _request_interaction(self, caller: Caller, definition: ServiceDefinition, control: dict[str, str],
                             request: CreateRequest) -> dict:
        phone = normalise_phone("_phone_number", control.get("_phone_number"))
        if phone is None:
            raise MissingParameter("_phone_number")
        provide = parse_bool("_provide_code", control.get("_provide_code"), False)
        group = self._group(control)
        booking = self._booking(control, group, definition)
        codes = self._codes(definition, bool(provide))
        ttl = definition.effective_ttl
        service_id = new_id()
        data_id = self._new_data(caller, request, ttl)
        try:
            reserved = self._reserve(
                service_id=service_id, create_fields=self._service_fields(caller, definition, data_id, ttl, phone),
                ttl=ttl, caller=caller, group=group, phone=phone, booking=booking, codes=codes)
        except BaseException:
            self.store.storage_delete(data_id)
            raise
        return {"_id": service_id, "_data_id": data_id, **self._access_response(reserved)}

    def _request_access(self, caller: Caller, definition: ServiceDefinition, control: dict[str, str],
                        request: CreateRequest) -> dict:
        target = (control.get("_id") or "").strip()
        if not target:
            raise MissingParameter("_id")
        found = self.store.get_service(target) if len(target) <= 64 else None
        if found is None or found[0].get("app") != caller.app:
            raise ServiceNotFound(f"no active service with _id {target!r}", parameter="_id")
        fields, _ = found
        group = self._group(control)
        provide = parse_bool("_provide_code", control.get("_provide_code"), False)
        phone = normalise_phone("_phone_number", control.get("_phone_number")) or fields.get("phone_number") or None
        booking = self._booking(control, group, definition)
        reserved = self._reserve(service_id=target, create_fields=None, ttl=0, caller=caller, group=group,
                                 phone=phone, booking=booking, codes=self._codes(definition, bool(provide)))
        if reserved is None:
            raise ServiceNotFound(f"no active service with _id {target!r}", parameter="_id")
        if request.data or request.files:
            self.store.storage_update(fields["data_id"], caller.app, _storage_fields(request.data, request.files),
                                      max(1, self.store.storage_ttl(fields["data_id"])))
        return {"_id": target, **self._access_response(reserved)}

    def _match_interaction(self, caller: Caller, control: dict[str, str]) -> dict:
        if not self.config.may_match(caller.app):
            raise Forbidden(f"app {caller.app} may not call match-interaction ([gms] match_apps)")
        raw_number = control.get("_access_number")
        if raw_number is None or raw_number.strip() == "":
            raise MissingParameter("_access_number")
        number = normalise_access_number("_access_number", raw_number)
        phone = normalise_phone("_phone_number", control.get("_phone_number"))
        code = (control.get("_access_code") or "").strip() or None
        if code is not None and not code.isdigit():
            raise InvalidParameter("_access_code", "an access code is digits only")
        found = self.store.reservation(number)
        if found is None:
            raise NoMatch(f"no live reservation of access number {number}")
        reservation, raw = found
        if not reservation_matches(reservation, phone=phone, code=code):
            raise NoMatch(f"no live reservation of access number {number} matches the phone number and access code")
        if not self.store.release(reservation.service_id, number, raw, require_live=True):
            raise NoMatch(f"the reservation of access number {number} ended meanwhile")
        service = self.store.get_service(reservation.service_id)
        if service is None:
            raise NoMatch(f"the service that reserved access number {number} has ended")
        data_id = service[0]["data_id"]
        if reservation.app != caller.app:
            self.store.storage_grant(data_id, caller.app)
        return {"_id": reservation.service_id, "_data_id": data_id}

    def _chat_endpoint(self, control: dict[str, str]) -> str:
        endpoint = chat_endpoint_name(control.get("_chat_endpoint")) or self.options.chat_endpoint
        if not self.config.endpoint_known(endpoint):
            raise InvalidParameter("_chat_endpoint", f"no chat endpoint named {endpoint!r}")
        return endpoint

    def _request_chat(self, caller: Caller, definition: ServiceDefinition, control: dict[str, str],
                      request: CreateRequest) -> dict:
        endpoint = self._chat_endpoint(control)
        ttl = definition.ttl or self.options.chat_ttl
        service_id = new_id()
        data_id = self._new_data(caller, request, ttl)
        fields = {**self._service_fields(caller, definition, data_id, ttl, None), "chat_endpoint": endpoint}
        self.store.create_service(service_id, fields, ttl)
        return {"_id": service_id, "_data_id": data_id, "_chat_endpoint": endpoint}

    def _owned_service(self, caller: Caller, service_id: str) -> tuple[dict[str, str], int]:
        found = self.store.get_service(service_id) if len(service_id) <= 64 else None
        if found is None or found[0].get("app") != caller.app:
            raise ServiceNotFound(f"no service with id {service_id!r}")
        return found

    def show(self, caller: Caller, service_id: str) -> dict:
        fields, pttl = self._owned_service(caller, service_id)
        body = {
            "_id": service_id,
            "_service": fields.get("service"),
            "_data_id": fields.get("data_id"),
            "_expiration_time": max(0, math.ceil(pttl / 1000)),
        }
        if fields.get("phone_number"):
            body["_phone_number"] = fields["phone_number"]
        number = fields.get("access_number")
        if number and self.store.reservation(number) is not None:
            body["_access_number"] = number
            body["_resource_group"] = fields.get("resource_group")
            if fields.get("access_code"):
                body["_access_code"] = fields["access_code"]
        chat = self.store.chat_get(service_id)
        if chat is not None:
            body["chatIxnState"] = chat.get("state")
            body["chatSessionId"] = chat.get("session_id")
        return body

    def delete(self, caller: Caller, service_id: str) -> dict:
        fields, _ = self._owned_service(caller, service_id)
        number = fields.get("access_number")
        if number:
            found = self.store.reservation(number)
            if found is not None and found[0].service_id == service_id:
                self.store.release(service_id, number, found[1], require_live=False)
        chat = self.store.chat_get(service_id)
        if chat is not None and chat.get("state") == ChatIxnState.CONNECTED.value:
            self.chat_disconnect(caller, service_id, {})
        self.store.chat_delete(service_id, fields.get("chat_endpoint") or DEFAULT_CHAT_ENDPOINT)
        if fields.get("data_id"):
            self.store.storage_delete(fields["data_id"])
        self.store.delete_service(service_id)
        return {"_id": service_id, "_deleted": True}

    # --- storage API -------------------------------------------------------------------

    def storage_create(self, caller: Caller, ttl_raw: str, data: dict[str, str], files: dict[str, UploadedFile]) -> dict:
        ttl = parse_ttl(ttl_raw, maximum=self.options.max_ttl)
        data_id = new_id()
        self.store.storage_create(data_id, caller.app, _storage_fields(data, files), ttl)
        return {"id": data_id}

    def storage_update(self, caller: Caller, data_id: str, ttl_raw: str, data: dict[str, str],
                       files: dict[str, UploadedFile]) -> dict:
        ttl = parse_ttl(ttl_raw, maximum=self.options.max_ttl)
        if not self.store.storage_update(data_id, caller.app, _storage_fields(data, files), ttl):
            raise StorageNotFound(f"no stored data with id {data_id!r}")
        return {"id": data_id}

    def _owned_data(self, caller: Caller, data_id: str, *, read: bool = False) -> dict[str, bytes]:
        """The data's fields if ``caller`` owns it, or (``read``) matched its service."""
        raw = self.store.storage_get(data_id) if len(data_id) <= 64 else {}
        owner = raw.pop("o", None)
        granted = read and GmsStore.grant_field(caller.app) in raw
        if owner is None or (owner.decode() != caller.app and not granted):
            raise StorageNotFound(f"no stored data with id {data_id!r}")
        return raw

    def storage_values(self, caller: Caller, data_id: str) -> list[StoredValue]:
        raw = self._owned_data(caller, data_id, read=True)
        values = []
        for field, value in raw.items():
            if field.startswith("v:"):
                key = field[2:]
                filename = raw.get(f"f:{key}")
                values.append(StoredValue(key, value, (raw.get(f"t:{key}") or b"").decode(),
                                          filename.decode() if filename is not None else None))
        return sorted(values, key=lambda v: v.key)

    def storage_value(self, caller: Caller, data_id: str, key: str) -> StoredValue:
        for value in self.storage_values(caller, data_id):
            if value.key == key:
                return value
        raise StorageNotFound(f"stored data {data_id!r} has no key {key!r}", parameter="key")

    def storage_delete(self, caller: Caller, data_id: str, key: str | None = None) -> dict:
        self._owned_data(caller, data_id)
        if key is None:
            self.store.storage_delete(data_id)
        else:
            self.storage_value(caller, data_id, key)
            self.store.storage_delete_fields(data_id, [f"v:{key}", f"t:{key}", f"f:{key}"])
        return {"id": data_id, "_deleted": key or True}

    # --- chat: the customer's side (Chat API v1) ---------------------------------------

    def _chat(self, service_id: str) -> dict[str, str]:
        chat = self.store.chat_get(service_id)
        if chat is None:
            raise ChatStateConflict("the chat has not been started (POST .../ixn/chat first)")
        return chat

    def _chat_service(self, caller: Caller, service_id: str) -> dict[str, str]:
        fields, _ = self._owned_service(caller, service_id)
        if fields.get("builtin") != Builtin.REQUEST_CHAT.value:
            raise ServiceNotFound(f"service {service_id!r} is not a chat service")
        return fields

    def _append(self, service_id: str, chat: dict[str, str], entry: TranscriptEntry) -> int:
        position = self.store.chat_append(service_id, json.dumps(entry.to_wire()), self.options.chat_ttl)
        self.store.touch_service(service_id, self.options.chat_ttl)
        if chat.get("notify_by", "").lower() == "comet":
            current = self.store.chat_get(service_id)
            state = ChatIxnState(current["state"]) if current else ChatIxnState.DISCONNECTED
            message = {
                "channel": GENESYS_CHANNEL,
                "id": secrets.token_hex(8),
                "data": {
                    "id": service_id,
                    "tag": f"service.chat.refresh.{service_id}",
                    "message": chat_response(state=state, session_id=chat["session_id"], entries=[entry],
                                             total=position, user_id=chat.get("user_id")),
                },
            }
            self.store.cometd_deliver(chat["app"], chat["user"], GENESYS_CHANNEL, json.dumps(message),
                                      self.options.cometd_session_timeout)
        return position

    def _chat_body(self, service_id: str, from_position: int, message: str | None = None) -> dict:
        chat = self.store.chat_get(service_id)
        if chat is None:
            raise ChatNotFound(f"no chat for service {service_id!r}")
        rows, total = self.store.chat_entries(service_id, from_position)
        return chat_response(
            state=ChatIxnState(chat["state"]),
            session_id=chat["session_id"],
            entries=[TranscriptEntry.from_wire(json.loads(r)) for r in rows],
            total=total,
            user_id=chat.get("user_id"),
            message=message,
        )

    def chat_start(self, caller: Caller, service_id: str, params: dict[str, str]) -> dict:
        service = self._chat_service(caller, service_id)
        start = parse_chat_start(params)
        chat = {
            "endpoint": service.get("chat_endpoint") or DEFAULT_CHAT_ENDPOINT,
            "state": ChatIxnState.CONNECTED.value,
            "session_id": secrets.token_hex(8).upper(),
            "user_id": secrets.token_hex(8).upper(),
            "app": caller.app,
            "user": caller.user,
            "nickname": start.nickname,
            "subject": start.subject or "",
            "email": start.email or "",
            "notify_by": start.notify_by or "",
            "agent": "",
            "agent_nickname": "",
        }
        if not self.store.chat_create(service_id, chat, self.options.chat_ttl):
            raise ChatStateConflict("the chat of this service was started already")
        self._append(service_id, chat, notice(ChatEvent.JOINED, start.nickname, CLIENT_PARTY, PartyType.CLIENT))
        return self._chat_body(service_id, 1)

    def _connected_chat(self, caller: Caller, service_id: str) -> dict[str, str]:
        self._chat_service(caller, service_id)
        chat = self._chat(service_id)
        if chat["state"] != ChatIxnState.CONNECTED.value:
            raise ChatStateConflict("the chat is disconnected")
        return chat

    def chat_send(self, caller: Caller, service_id: str, params: dict[str, str]) -> dict:
        chat = self._connected_chat(caller, service_id)
        text = parse_chat_message(params)
        position = self._append(service_id, chat, TranscriptEntry(
            ChatEvent.TEXT, chat["nickname"], text, CLIENT_PARTY, PartyType.CLIENT))
        start = parse_transcript_position(params["transcriptPosition"]) if params.get("transcriptPosition") else position
        return self._chat_body(service_id, start)

    def chat_refresh(self, caller: Caller, service_id: str, params: dict[str, str]) -> dict:
        self._chat_service(caller, service_id)
        chat = self._chat(service_id)
        position = parse_transcript_position(params.get("transcriptPosition"))
        text = parse_chat_message(params, required=False)
        if text is not None:
            if chat["state"] != ChatIxnState.CONNECTED.value:
                raise ChatStateConflict("the chat is disconnected")
            self._append(service_id, chat, TranscriptEntry(
                ChatEvent.TEXT, chat["nickname"], text, CLIENT_PARTY, PartyType.CLIENT))
        return self._chat_body(service_id, position)

    def chat_typing(self, caller: Caller, service_id: str, params: dict[str, str], started: bool) -> dict:
        chat = self._connected_chat(caller, service_id)
        event = ChatEvent.TYPING_STARTED if started else ChatEvent.TYPING_STOPPED
        position = self._append(service_id, chat, notice(event, chat["nickname"], CLIENT_PARTY, PartyType.CLIENT))
        return self._chat_body(service_id, parse_transcript_position(params.get("transcriptPosition") or str(position)))

    def chat_disconnect(self, caller: Caller, service_id: str, params: dict[str, str]) -> dict:
        self._chat_service(caller, service_id)
        chat = self._chat(service_id)
        if self.store.chat_end(service_id, _endpoint(chat)):
            self._append(service_id, chat, notice(ChatEvent.LEFT, chat["nickname"], CLIENT_PARTY, PartyType.CLIENT))
        return self._chat_body(service_id, parse_transcript_position(params.get("transcriptPosition")))

    # --- chat: the agent's side --------------------------------------------------------

    def agent_chats(self, agent: str) -> dict:
        """The waiting chats of the agent's endpoints, oldest first, and its own active ones."""
        endpoints = sorted(self.config.agent_endpoints(agent))
        waiting_ids, active_ids = self.store.chat_ids(endpoints)
        chats = self.store.chats(waiting_ids + active_ids, endpoints)

        def summary(service_id: str, chat: dict[str, str]) -> dict:
            _, total = self.store.chat_entries(service_id, 10**9)
            return {
                "_id": service_id,
                "chatSessionId": chat.get("session_id"),
                "nickname": chat.get("nickname"),
                "subject": chat.get("subject"),
                "chatIxnState": chat.get("state"),
                "agent": chat.get("agent") or None,
                "endpoint": _endpoint(chat),
                "transcriptPosition": str(total + 1),
            }

        return {
            "waiting": [summary(i, chats[i]) for i in waiting_ids if i in chats and not chats[i].get("agent")],
            "active": [summary(i, chats[i]) for i in active_ids if i in chats and chats[i].get("agent") == agent],
        }

    def _agent_chat(self, agent: str, service_id: str) -> dict[str, str]:
        chat = self.store.chat_get(service_id) if len(service_id) <= 64 else None
        if chat is None:
            raise ChatNotFound(f"no chat for service {service_id!r}")
        if chat.get("agent") != agent:
            raise Forbidden("this chat is not assigned to you (accept it first)")
        return chat

    def agent_accept(self, agent: str, nickname: str, service_id: str) -> dict:
        chat = self.store.chat_get(service_id) if len(service_id) <= 64 else None
        if chat is None or _endpoint(chat) not in self.config.agent_endpoints(agent):
            # a chat routed to an endpoint the agent does not serve is not the agent's to see
            raise ChatNotFound(f"no chat for service {service_id!r}")
        outcome = self.store.chat_accept(service_id, _endpoint(chat), agent, nickname)
        if outcome == -1:
            raise ChatStateConflict("the chat is disconnected")
        if outcome == 0:
            raise ChatStateConflict("another agent accepted this chat already")
        self._append(service_id, chat, notice(ChatEvent.JOINED, nickname, AGENT_PARTY, PartyType.AGENT))
        return self._chat_body(service_id, 1)

    def agent_transcript(self, agent: str, service_id: str, params: dict[str, str]) -> dict:
        self._agent_chat(agent, service_id)
        return self._chat_body(service_id, parse_transcript_position(params.get("transcriptPosition")))

    def agent_send(self, agent: str, nickname: str, service_id: str, params: dict[str, str]) -> dict:
        chat = self._agent_chat(agent, service_id)
        if chat["state"] != ChatIxnState.CONNECTED.value:
            raise ChatStateConflict("the chat is disconnected")
        text = parse_chat_message(params)
        position = self._append(service_id, chat, TranscriptEntry(ChatEvent.TEXT, nickname, text, AGENT_PARTY,
                                                                  PartyType.AGENT))
        return self._chat_body(service_id, position)

    def agent_typing(self, agent: str, nickname: str, service_id: str, started: bool) -> dict:
        chat = self._agent_chat(agent, service_id)
        if chat["state"] != ChatIxnState.CONNECTED.value:
            raise ChatStateConflict("the chat is disconnected")
        event = ChatEvent.TYPING_STARTED if started else ChatEvent.TYPING_STOPPED
        position = self._append(service_id, chat, notice(event, nickname, AGENT_PARTY, PartyType.AGENT))
        return self._chat_body(service_id, position)

    def agent_end(self, agent: str, nickname: str, service_id: str) -> dict:
        chat = self._agent_chat(agent, service_id)
        if self.store.chat_end(service_id, _endpoint(chat)):
            self._append(service_id, chat, notice(ChatEvent.LEFT, nickname, AGENT_PARTY, PartyType.AGENT))
        return self._chat_body(service_id, 1)

    # --- CometD in polling mode (the ingress's /genesys/cometd) -------------------------

    def cometd_poll(self, caller: Caller, messages: list[dict]) -> list[dict]:
        """One Bayeux request answered without holding the thread: a ``/meta/connect``
        gets what is waiting and advice to poll again after ``cometd_poll_interval``.
        Two Redis round trips: read the clients named, then write and take."""
        commands, ttl = self.store.cometd, self.options.cometd_session_timeout
        advice = Advice.polling(self.options.cometd_poll_interval)
        ids = client_ids(messages)
        with self.store.client.pipeline(transaction=False) as pipe:
            commands.read_clients(pipe, ids)
            clients = commands.clients(ids, pipe.execute())
        plan = plan_bayeux(Identity(caller.app, caller.user), messages, clients, advice=advice, max_hold=0)
        with self.store.client.pipeline(transaction=False) as pipe:
            commands.write(pipe, plan.writes, ttl)
            if plan.connect is not None:
                commands.take(pipe, plan.connect.client.client_id, release_token=secrets.token_hex(8))
            results = pipe.execute()
        if plan.connect is None:
            return plan.replies
        events, alive = commands.taken(results)
        return [*plan.replies, *connect_replies(plan.connect, events, alive=alive, advice=advice)]
