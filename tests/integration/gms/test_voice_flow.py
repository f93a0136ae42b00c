"""request-interaction -> match-interaction -> storage, over the HTTP API."""

from __future__ import annotations

import io


def test_full_voice_flow(gms):
    gms.add_group("sales", "18005550001,18005550002", booking_timeout=60)
    created = gms.post("/genesys/1/service/request-interaction", {
        "_phone_number": "+1 (650) 466-9999", "_provide_code": "true", "_resource_group": "sales",
        "current_location_latitude": "48.8583", "order": "A-17",
    })
    assert created.status_code == 200, created.get_json()
    body = created.get_json()
    assert body["_access_number"] in {"18005550001", "18005550002"}
    assert len(body["_access_code"]) == 6 and body["_access_code"].isdigit()
    assert body["_expiration_time"] == 30  # the service TTL (30 s) caps the 60 s booking

    matched = gms.post("/genesys/1/service/match-interaction", {
        "_access_number": body["_access_number"], "_phone_number": "16504669999",
        "_access_code": body["_access_code"],
    })
    assert matched.status_code == 200, matched.get_json()
    assert matched.get_json() == {"_id": body["_id"], "_data_id": body["_data_id"]}

    stored = gms.client.get(f"/genesys/1/storage/{body['_data_id']}", headers=gms.auth())
    assert stored.status_code == 200
    assert stored.get_json() == {"current_location_latitude": "48.8583", "order": "A-17"}

    # the number is free again: a second match fails, and the number can be reserved
    again = gms.post("/genesys/1/service/match-interaction", {"_access_number": body["_access_number"]})
    assert again.status_code == 404 and again.get_json()["error"] == "no_match"
    numbers = set()
    for phone in ("5550000001", "5550000002"):
        r = gms.post("/genesys/1/service/request-interaction", {"_phone_number": phone, "_resource_group": "sales"})
        assert r.status_code == 200, r.get_json()
        numbers.add(r.get_json()["_access_number"])
    assert numbers == {"18005550001", "18005550002"}


def test_multipart_files_and_seed_path(gms):
    gms.add_group("sales", "18005550001")
    response = gms.client.post(
        "/gms-web/gms/1/service/request-interaction",
        data={"_phone_number": "6504669999", "_resource_group": "sales",
              "photo": (io.BytesIO(b"\x89PNG\x00binary"), "car.png", "image/png"), "note": "dent"},
        headers=gms.auth(), content_type="multipart/form-data")
    assert response.status_code == 200, response.get_json()
    data_id = response.get_json()["_data_id"]
    listing = gms.client.get(f"/genesys/1/storage/{data_id}", headers=gms.auth()).get_json()
    assert listing["note"] == "dent"
    assert listing["photo"]["_binary"] is True and listing["photo"]["size"] == 11
    photo = gms.client.get(f"/genesys/1/storage/{data_id}/photo", headers=gms.auth())
    assert photo.data == b"\x89PNG\x00binary" and photo.mimetype == "image/png"
    assert "car.png" in photo.headers["Content-Disposition"]
