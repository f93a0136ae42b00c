"""The long-lived objects of one worker process, built once after the fork."""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass

from app.adapters.inbound_queue import enqueue_deliver_sm
from app.adapters.redis_correlation import SmscIdIndex
from app.adapters.redis_scripts import RedisStore, connect
from app.connectors.loop import BackgroundLoop
from app.connectors.smpp import DeliverHandler
from app.services.carriers import CarrierDirectory, ConnectorRegistry
from app.services.delivery import DeliveryService
from app.settings import Settings, get_settings


@dataclass
class WorkerServices:
    settings: Settings
    store: RedisStore
    smsc_ids: SmscIdIndex
    carriers: CarrierDirectory
    connectors: ConnectorRegistry
    delivery: DeliveryService


def _inbound_handler(store: RedisStore):
    def for_carrier(carrier_id: int) -> DeliverHandler:
        async def on_deliver(pdu) -> None:
            await asyncio.get_running_loop().run_in_executor(None, enqueue_deliver_sm, store.client, carrier_id, pdu)

        return on_deliver

    return for_carrier


@functools.cache
def worker_services() -> WorkerServices:
    settings = get_settings()
    store = RedisStore(connect(settings.require_redis_url()), settings.key_prefix)
    smsc_ids = SmscIdIndex(store.client, settings.key_prefix)
    carriers = CarrierDirectory(settings.database_url, settings.directory_refresh_seconds)
    connectors = ConnectorRegistry(BackgroundLoop(), _inbound_handler(store))
    delivery = DeliveryService(settings.database_url, store, smsc_ids, carriers, connectors)
    return WorkerServices(settings, store, smsc_ids, carriers, connectors, delivery)


def close_worker_services() -> None:
    """Unbind every carrier link of this process (worker shutdown)."""
    if worker_services.cache_info().currsize:
        worker_services().connectors.close_all()
        worker_services.cache_clear()
