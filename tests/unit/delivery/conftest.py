"""The delivery stage's world: an account, two carriers routed for 44 (1 first, then 2),
in-memory connectors, fakeredis and a real database."""

from __future__ import annotations

import time

import fakeredis
import pytest

from app.adapters.redis_scripts import RedisStore
from app.connectors.loop import BackgroundLoop
from app.connectors.memory import InMemoryConnector
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.carriers import CarrierDirectory, ConnectorRegistry
from app.services.delivery import DeliveryService


def make_payload(message_id="m1", text="Hello", **extra):
    """An accepted payload as the ingress queues it (``app.services.submit.accepted_payload``)."""
    return {"id": message_id, "account_id": 1, "client_message_id": message_id,
            "phone_number": extra.pop("phone_number", "447700900123"),
            "sender": "99222", "message": text, "carrier": None, "receipt": True, "app_id": None,
            "conversation_id": None, "priority": "BULK", "attachments": [], "accepted_at": time.time(), **extra}


@pytest.fixture
def world(database_url):
    with session_scope(database_url) as session:
        svc.create_account(session, "acme", "pw", senders=("99222",), options=AccountOptions(), default_max_length=2000)
        svc.add_carrier(session, 1, "primary", connector="http", settings={"url": "http://x"}, throughput=None)
        svc.add_carrier(session, 2, "backup", connector="http", settings={"url": "http://y"}, throughput=None)
        svc.add_route(session, "44", 1, position=0)
        svc.add_route(session, "44", 2, position=1)
    client = fakeredis.FakeRedis()
    store = RedisStore(client, "t:")
    carriers = CarrierDirectory(database_url, refresh_seconds=0)
    registry = ConnectorRegistry(BackgroundLoop())
    connectors = {1: InMemoryConnector(), 2: InMemoryConnector()}
    for carrier_id, connector in connectors.items():
        registry.install(carrier_id, carriers.current().carriers[carrier_id], connector)
    service = DeliveryService(database_url, store, carriers, registry, refund=lambda *_: None)
    return database_url, service, connectors, store


