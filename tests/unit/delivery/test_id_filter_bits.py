"""The MT stage sets the id filter's bits of every client id it records (again, after
the admission script did), so a message recorded after Redis lost its admission's bits
is still known to the filter."""

from __future__ import annotations

from app.adapters.redis_scripts import ID_FILTER_BITS, ID_FILTER_HASHES
from app.domain import id_filter
from tests.unit.delivery.conftest import make_payload


def bits_set(store, account_id: int, client_message_id: str) -> bool:
    offsets = id_filter.positions(account_id, client_message_id, size=ID_FILTER_BITS, hashes=ID_FILTER_HASHES)
    return all(store.client.getbit(store.keys.id_filter(), offset) for offset in offsets)


def test_recording_a_batch_sets_its_client_ids_bits(world):
    _database_url, service, _connectors, store = world
    service.process_batch([make_payload("m1"), make_payload("m2"), make_payload("m3", client_message_id=None)],
                          interactive=False)
    assert bits_set(store, 1, "m1") and bits_set(store, 1, "m2")
    assert not bits_set(store, 1, "m3") and not bits_set(store, 2, "m1")  # another account's m1 is another id
