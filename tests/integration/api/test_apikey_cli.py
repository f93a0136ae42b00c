"""``smsagg apikey create|rotate|revoke|list``: the token is printed once, ``list``
names keys without revealing them, and the REST API follows every change."""

from __future__ import annotations

import json

from tests.integration.api.conftest import body


def test_create_list_rotate_revoke(cli, gateway, app):
    client = app.test_client()
    created = json.loads(cli("apikey", "create", "--account", "acme", "--name", "crm", "--json"))
    token, key_id = created["token"], created["key_id"]
    assert created["account"] == "acme" and token.startswith(f"smsagg_{key_id}_")

    def status(secret: str) -> int:
        return client.post("/api/v1/messages", json=body(),
                           headers={"Authorization": f"Bearer {secret}"}).status_code

    assert status(token) == 202
    listed = cli("apikey", "list", "--json")
    assert token.split("_", 2)[2] not in listed
    [row] = json.loads(listed)
    assert (row["key_id"], row["account"], row["name"], row["status"]) == (key_id, "acme", "crm", "active")

    human = cli("apikey", "rotate", key_id, "--grace", "300")
    new_token = human.strip().splitlines()[-1]
    assert "shown once" in human and new_token.startswith(f"smsagg_{key_id}_") and new_token != token
    assert status(token) == 409 and status(new_token) == 409  # both authenticate: the repeat is a duplicate
    cli("apikey", "rotate", key_id)
    assert status(new_token) == 401

    assert f"API key {key_id} revoked" in cli("apikey", "revoke", key_id)
    assert "already revoked" in cli("apikey", "revoke", key_id)
    assert json.loads(cli("apikey", "list", "--account", "acme", "--json"))[0]["status"] == "revoked"
    assert "revoked; create a new one" in cli("apikey", "rotate", key_id, ok=False)
    assert "no account" in cli("apikey", "create", "--account", "nobody", ok=False)
    assert "no API key" in cli("apikey", "revoke", "nosuchkey0", ok=False)
