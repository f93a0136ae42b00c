"""The long-lived objects of one worker process, built once after the fork."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from app.adapters.callback_queue import enqueue_callbacks
from app.adapters.inbound_queue import InboundBatcher, deliver_sm_item
from app.adapters.redis_scripts import RedisStore, connect
from app.adapters.stage_queue import StageQueue
from app.bulk import credit
from app.bulk.compliance import record_mo_keyword
from app.connectors.loop import BackgroundLoop
from app.connectors.smpp import DeliverHandler
from app.domain.priorities import INBOUND_QUEUE
from app.services.carriers import CarrierDirectory, ConnectorRegistry
from app.services.delivery import DeliveryService
from app.services.inbound import InboundService
from app.settings import Settings, get_settings


@dataclass
class WorkerServices:
    settings: Settings
    store: RedisStore
    stages: StageQueue
    carriers: CarrierDirectory
    connectors: ConnectorRegistry
    delivery: DeliveryService
    inbound: InboundService
    notify_callbacks: Callable[[list[str]], None]


def _inbound_handler(stages: StageQueue):
    """deliver_sm of every carrier goes through one batcher on the connector loop."""
    batcher = InboundBatcher(lambda items: stages.push(INBOUND_QUEUE, items))

    def for_carrier(carrier_id: int) -> DeliverHandler:
        async def on_deliver(pdu) -> None:
            await batcher.add(deliver_sm_item(carrier_id, pdu))

        return on_deliver

    return for_carrier


@functools.cache
def worker_services() -> WorkerServices:
    settings = get_settings()
    store = RedisStore(connect(settings.require_redis_url()), settings.key_prefix)
    stages = StageQueue(store.client, settings.key_prefix)
    carriers = CarrierDirectory(settings.database_url, settings.directory_refresh_seconds)
    connectors = ConnectorRegistry(BackgroundLoop(), _inbound_handler(stages))

    def notify_callbacks(ids: list[str]) -> None:
        if ids:
            enqueue_callbacks(store.client, ids)

    delivery = DeliveryService(settings.database_url, store, carriers, connectors, refund=credit.refund,
                               notify=notify_callbacks)
    inbound = InboundService(stop_keywords=record_mo_keyword)
    return WorkerServices(settings, store, stages, carriers, connectors, delivery, inbound, notify_callbacks)


def close_worker_services() -> None:
    """Unbind every carrier link of this process (worker shutdown)."""
    if worker_services.cache_info().currsize:
        worker_services().connectors.close_all()
        worker_services.cache_clear()
