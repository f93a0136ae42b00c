"""The Service API: custom services, request-access, show/delete, errors, isolation."""

from __future__ import annotations

import io

import pytest


def test_custom_service_from_config_overrides_request(gms):
    # iPhoneService fixes provide_code=true and resource_group=iPhoneGroup (gms.ini)
    r = gms.post("/genesys/1/service/iPhoneService", {
        "_phone_number": "6504669999", "_provide_code": "false", "_resource_group": "nonexistent",
    })
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["_access_number"] == "18005550100"
    assert "_access_code" in body  # configured provide_code=true wins over the request's false
    shown = gms.client.get(f"/genesys/1/service/{body['_id']}", headers=gms.auth()).get_json()
    assert shown["_service"] == "iPhoneService"
    assert shown["_expiration_time"] > 7000  # ttl = 7200 from the config
    assert shown["_resource_group"] == "iPhoneGroup"


def test_request_access_for_an_active_service(gms):
    gms.add_group("support", "18005550201", booking_timeout=20)
    chat = gms.post("/genesys/1/service/request-chat").get_json()
    r = gms.post("/genesys/1/service/request-access", {
        "_id": chat["_id"], "_resource_group": "support", "_provide_code": "true",
        "_phone_number": "4155550000", "_booking_expiration_timeout": "5",
    })
    assert r.status_code == 200, r.get_json()
    body = r.get_json()
    assert body["_id"] == chat["_id"] and body["_access_number"] == "18005550201"
    assert body["_expiration_time"] == 5  # the request's _booking_expiration_timeout wins
    matched = gms.post("/genesys/1/service/match-interaction", {
        "_access_number": "18005550201", "_phone_number": "4155550000", "_access_code": body["_access_code"]})
    assert matched.get_json() == {"_id": chat["_id"], "_data_id": chat["_data_id"]}


def test_request_access_needs_an_active_service(gms):
    gms.add_group("support", "18005550201")
    r = gms.post("/genesys/1/service/request-access", {"_id": "deadbeef", "_resource_group": "support"})
    assert r.status_code == 404 and r.get_json()["parameter"] == "_id"
    # another app's service is not "active" for this app
    theirs = gms.client.post("/genesys/1/service/request-chat", headers=gms.auth("otherapp", "other-secret-1"))
    r = gms.post("/genesys/1/service/request-access", {"_id": theirs.get_json()["_id"], "_resource_group": "support"})
    assert r.status_code == 404
    assert gms.post("/genesys/1/service/request-interaction",
                    {"_phone_number": "1", "_resource_group": "support"}).status_code == 200  # nothing was held


def test_delete_releases_the_number_and_data(gms):
    gms.add_group("one", "18005550301")
    body = gms.post("/genesys/1/service/request-interaction",
                    {"_phone_number": "6504669999", "_resource_group": "one", "k": "v"}).get_json()
    busy = gms.post("/genesys/1/service/request-interaction", {"_phone_number": "1", "_resource_group": "one"})
    assert busy.status_code == 503 and busy.get_json()["error"] == "resource_group_exhausted"
    assert 1 <= int(busy.headers["Retry-After"]) <= 30
    deleted = gms.client.delete(f"/genesys/1/service/{body['_id']}", headers=gms.auth())
    assert deleted.status_code == 200
    assert gms.client.get(f"/genesys/1/service/{body['_id']}", headers=gms.auth()).status_code == 404
    assert gms.client.get(f"/genesys/1/storage/{body['_data_id']}", headers=gms.auth()).status_code == 404
    again = gms.post("/genesys/1/service/request-interaction", {"_phone_number": "1", "_resource_group": "one"})
    assert again.status_code == 200 and again.get_json()["_access_number"] == "18005550301"


def test_match_requires_the_code_and_phone(gms):
    gms.add_group("one", "18005550301")
    body = gms.post("/genesys/1/service/request-interaction",
                    {"_phone_number": "6504669999", "_resource_group": "one", "_provide_code": "1"}).get_json()
    wrong_code = str((int(body["_access_code"]) + 1) % 10**6).zfill(6)
    for attempt in ({}, {"_access_code": wrong_code}, {"_access_code": body["_access_code"], "_phone_number": "4155550000"}):
        r = gms.post("/genesys/1/service/match-interaction", {"_access_number": "1-800-555-0301", **attempt})
        assert r.status_code == 404, attempt
    # failed attempts left the reservation in place (another app's match: test_seed_rules.py)
    r = gms.post("/genesys/1/service/match-interaction",
                 {"_access_number": "18005550301", "_access_code": body["_access_code"]})
    assert r.status_code == 200


@pytest.mark.parametrize("service, data, parameter, status", [
    ("request-interaction", {"_resource_group": "g"}, "_phone_number", 400),
    ("request-interaction", {"_phone_number": "", "_resource_group": "g"}, "_phone_number", 400),
    ("request-interaction", {"_phone_number": "call me", "_resource_group": "g"}, "_phone_number", 400),
    ("request-interaction", {"_phone_number": "6504669999"}, "_resource_group", 400),
    ("request-interaction", {"_phone_number": "6504669999", "_resource_group": "nope"}, "_resource_group", 400),
    ("request-interaction", {"_phone_number": "6504669999", "_resource_group": "g", "_provide_code": "maybe"},
     "_provide_code", 400),
    ("request-access", {"_resource_group": "g"}, "_id", 400),
    ("request-access", {"_id": "x"}, "_resource_group", 400),
    ("request-access", {"_id": "x", "_resource_group": "g", "_booking_expiration_timeout": "-5"},
     "_booking_expiration_timeout", 400),
    ("match-interaction", {}, "_access_number", 400),
    ("match-interaction", {"_access_number": "abc"}, "_access_number", 400),
    ("match-interaction", {"_access_number": "1800", "_access_code": "12ab"}, "_access_code", 400),
    ("no-such-service", {}, "service", 404),
])
def test_invalid_parameters_are_named(gms, service, data, parameter, status):
    gms.add_group("g", "18005550401")
    if service == "request-access" and data.get("_id") == "x":
        data = {**data, "_id": gms.post("/genesys/1/service/request-chat").get_json()["_id"]}
    r = gms.post(f"/genesys/1/service/{service}", data)
    assert r.status_code == status, r.get_json()
    assert r.is_json and r.get_json()["parameter"] == parameter
    assert parameter in r.get_json()["message"] or status == 404
    # nothing stays reserved after a refusal
    free = gms.post("/genesys/1/service/request-interaction", {"_phone_number": "1", "_resource_group": "g"})
    assert free.status_code == 200


def test_unknown_ids_and_authentication(gms):
    assert gms.client.get("/genesys/1/service/0123abcd", headers=gms.auth()).status_code == 404
    assert gms.client.delete("/genesys/1/service/0123abcd", headers=gms.auth()).status_code == 404
    r = gms.client.post("/genesys/1/service/request-chat")
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    r = gms.client.post("/genesys/1/service/request-chat", headers=gms.auth(password="wrong-password"))
    assert r.status_code == 401 and r.get_json()["error"] == "unauthorized"
    mine = gms.post("/genesys/1/service/request-chat", {"x": "1"}).get_json()
    other = gms.auth("otherapp", "other-secret-1")
    assert gms.client.get(f"/genesys/1/service/{mine['_id']}", headers=other).status_code == 404
    assert gms.client.get(f"/genesys/1/storage/{mine['_data_id']}", headers=other).status_code == 404
    assert gms.client.delete(f"/genesys/1/storage/{mine['_data_id']}", headers=other).status_code == 404
    assert gms.client.get(f"/genesys/1/storage/{mine['_data_id']}", headers=gms.auth()).get_json() == {"x": "1"}


def test_huge_upload_is_refused_and_reserves_nothing(gms):
    gms.add_group("g", "18005550401")
    limit = gms.app.extensions["gms"].config.options.max_upload_bytes
    r = gms.client.post(
        "/genesys/1/service/request-interaction",
        data={"_phone_number": "6504669999", "_resource_group": "g",
              "blob": (io.BytesIO(b"x" * (limit + 1)), "big.bin", "application/octet-stream")},
        headers=gms.auth(), content_type="multipart/form-data")
    assert r.status_code == 413 and r.get_json()["error"] == "payload_too_large"
    assert gms.post("/genesys/1/service/request-interaction",
                    {"_phone_number": "1", "_resource_group": "g"}).status_code == 200


def test_json_and_unsupported_bodies(gms):
    r = gms.client.post("/genesys/1/service/request-chat", data="<xml/>", content_type="application/xml",
                        headers=gms.auth())
    assert r.status_code == 415
    r = gms.client.post("/genesys/1/service/match-interaction", json=["not", "an", "object"], headers=gms.auth())
    assert r.status_code == 400 and r.get_json()["parameter"] == "body"
