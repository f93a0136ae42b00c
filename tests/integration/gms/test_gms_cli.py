"""``smsagg gms ...``: the command-line contract."""

from __future__ import annotations

import json

import pytest

from app.settings import get_settings
from tests.integration.gms.conftest import GMS_INI


@pytest.fixture
def cli(cli, settings):
    """The shared ``cli`` fixture, with this module's gms.ini in SMSAGG_HOME."""
    (settings.home / "gms.ini").write_text(GMS_INI)
    return cli


def test_apps_groups_and_show(cli, settings):
    cli("gms", "app", "add", "--name", "shopapp", "--password", "shop-secret-1")
    cli("gms", "app", "add", "--name", "shopapp", "--password", "shop-secret-1", ok=False)
    cli("gms", "app", "add", "--name", "short", "--password", "pw", ok=False)
    assert [a["name"] for a in json.loads(cli("gms", "app", "list", "--json"))] == ["shopapp"]
    cli("gms", "agent", "add", "--name", "bob", "--password", "agent-secret-1", "--nickname", "Bob")

    cli("gms", "group", "add", "--name", "sales", "--numbers", "18005550001,18005550002",
        "--strategy", "round-robin", "--booking-timeout", "60")
    cli("gms", "group", "add", "--name", "bad", "--numbers", "1,1", ok=False)
    cli("gms", "group", "add", "--name", "iPhoneGroup", "--numbers", "1", ok=False)  # defined in gms.ini
    cli("gms", "group", "add", "--name", "neg", "--numbers", "1", "--booking-timeout", "-3", ok=False)
    groups = {g["name"]: g for g in json.loads(cli("gms", "group", "list", "--json"))}
    assert groups["sales"]["source"] == "database" and groups["iPhoneGroup"]["source"] == "config"

    # reserve one number through the API, then show the group
    from app.gms.http import basic_auth_header
    from app.web import create_app

    client = create_app(get_settings()).test_client()
    reserved = client.post("/genesys/1/service/request-interaction",
                           data={"_phone_number": "6504669999", "_resource_group": "sales", "_provide_code": "1"},
                           headers={"Authorization": basic_auth_header("shopapp", "shop-secret-1")}).get_json()
    shown = {row["number"]: row for row in json.loads(cli("gms", "group", "show", "sales", "--json"))}
    assert set(shown) == {"18005550001", "18005550002"}
    taken = shown[reserved["_access_number"]]
    assert taken["state"] == "reserved" and taken["service"] == reserved["_id"] and taken["app"] == "shopapp"
    assert taken["phone"] == "6504669999" and taken["code"] == "yes" and 0 < taken["expires_in_s"] <= 30
    assert [r["state"] for n, r in shown.items() if n != reserved["_access_number"]] == ["free"]
    assert "18005550001" in cli("gms", "group", "show", "sales")
    cli("gms", "group", "show", "nope", ok=False)
    assert "iPhoneService" in cli("gms", "config", "check")
