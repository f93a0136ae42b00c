"""The Storage API: create, update, read all / one key, binary values, delete, TTL."""

from __future__ import annotations

import io

import pytest

from tests.integration.workers import wait_until


def test_storage_round_trip(gms):
    created = gms.post("/genesys/1/storage/60", {"name": "Kristi", "city": "Paris"})
    assert created.status_code == 200
    data_id = created.get_json()["id"]
    assert gms.client.get(f"/genesys/1/storage/{data_id}", headers=gms.auth()).get_json() == {
        "name": "Kristi", "city": "Paris"}
    updated = gms.client.post(f"/genesys/1/storage/{data_id}/120", headers=gms.auth(),
                              data={"city": "Lyon", "doc": (io.BytesIO(bytes(range(256))), "d.bin")},
                              content_type="multipart/form-data")
    assert updated.status_code == 200 and updated.get_json() == {"id": data_id}
    one = gms.client.get(f"/genesys/1/storage/{data_id}/city", headers=gms.auth())
    assert one.data == b"Lyon" and one.mimetype == "text/plain"
    binary = gms.client.get(f"/genesys/1/storage/{data_id}/doc", headers=gms.auth())
    assert binary.data == bytes(range(256))
    assert gms.client.get(f"/genesys/1/storage/{data_id}/missing", headers=gms.auth()).status_code == 404
    assert gms.client.delete(f"/genesys/1/storage/{data_id}/city", headers=gms.auth()).status_code == 200
    assert "city" not in gms.client.get(f"/genesys/1/storage/{data_id}", headers=gms.auth()).get_json()
    assert gms.client.delete(f"/genesys/1/storage/{data_id}", headers=gms.auth()).status_code == 200
    assert gms.client.get(f"/genesys/1/storage/{data_id}", headers=gms.auth()).status_code == 404
    assert gms.client.post(f"/genesys/1/storage/{data_id}/60", headers=gms.auth(), data={"a": "b"}).status_code == 404


def test_storage_expires_after_its_ttl(gms):
    data_id = gms.post("/genesys/1/storage/1", {"k": "v"}).get_json()["id"]
    assert gms.client.get(f"/genesys/1/storage/{data_id}", headers=gms.auth()).status_code == 200
    wait_until(lambda: gms.client.get(f"/genesys/1/storage/{data_id}", headers=gms.auth()).status_code == 404,
               timeout=10, interval=0.1)


@pytest.mark.parametrize("ttl", ["0", "-5", "abc", "99999999999", "1.5"])
def test_bad_ttls_are_refused(gms, ttl):
    r = gms.post(f"/genesys/1/storage/{ttl}", {"k": "v"})
    assert r.status_code == 400 and r.get_json()["parameter"] == "ttl"
    data_id = gms.post("/genesys/1/storage/60", {"k": "v"}).get_json()["id"]
    r = gms.post(f"/genesys/1/storage/{data_id}/{ttl}", {"k": "w"})
    assert r.status_code == 400 and r.get_json()["parameter"] == "ttl"
    assert gms.client.get(f"/genesys/1/storage/{data_id}/k", headers=gms.auth()).data == b"v"
