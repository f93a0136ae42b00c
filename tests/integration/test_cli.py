"""The command-line contract (issue: "extend it, do not rename it")."""

from __future__ import annotations

import json




def test_account_lifecycle(cli):
    cli("account", "create", "--login", "acme", "--password", "pw", "--sender", "99222", "--sender", "ACME",
        "--rate", "50", "--burst", "100", "--max-length", "480", "--priority", "INTERACTIVE",
        "--dr-url", "https://client.example/dr", "--mo-url", "https://client.example/mo",
        "--message-id-optional", "--allow-ip", "203.0.113.0/24")
    shown = json.loads(cli("account", "show", "acme"))
    assert shown["senders"] == ["99222", "ACME"] and shown["rate"] == 50 and shown["burst"] == 100
    assert shown["max_message_length"] == 480 and shown["default_priority"] == "INTERACTIVE"
    assert shown["message_id_optional"] is True and shown["allowed_ips"] == ["203.0.113.0/24"]
    assert "pw" not in json.dumps({k: v for k, v in shown.items() if k != "callback_secret"})

    cli("account", "update", "acme", "--rate", "5", "--message-id-required", "--dr-url", "")
    shown = json.loads(cli("account", "show", "acme"))
    assert shown["rate"] == 5 and shown["message_id_optional"] is False and shown["dr_url"] is None

    cli("account", "disable", "acme")
    assert json.loads(cli("account", "show", "acme"))["enabled"] is False
    listed = json.loads(cli("account", "list", "--json"))
    assert [a["login"] for a in listed] == ["acme"]


def test_dr_mask_is_set_shown_and_listed(cli):
    cli("account", "create", "--login", "acme", "--password", "pw")
    assert json.loads(cli("account", "show", "acme"))["dr_mask"] == "all"  # the default: every state
    cli("account", "update", "acme", "--dr-mask", "FINAL")
    assert json.loads(cli("account", "show", "acme"))["dr_mask"] == "final"
    assert [a["dr_mask"] for a in json.loads(cli("account", "list", "--json"))] == ["final"]
    cli("account", "create", "--login", "beta", "--password", "pw", "--dr-mask", "final")
    assert json.loads(cli("account", "show", "beta"))["dr_mask"] == "final"
    assert "Invalid value for '--dr-mask'" in cli("account", "update", "acme", "--dr-mask", "some", ok=False)


def test_errors_are_clean_messages(cli):
    assert "no account" in cli("account", "show", "ghost", ok=False)
    cli("account", "create", "--login", "acme", "--password", "pw")
    assert "already exists" in cli("account", "create", "--login", "acme", "--password", "pw", ok=False)
    assert "priority must be" in cli("account", "update", "acme", "--priority", "NOW", ok=False)


def test_carriers_senders_and_routes(cli):
    cli("account", "create", "--login", "acme", "--password", "pw")
    cli("carrier", "add", "--id", "99901", "--name", "sim", "--smpp", "127.0.0.1:2775", "--system-id", "smsagg",
        "--password", "pw", "--throughput", "100")
    cli("carrier", "add", "--id", "99902", "--name", "web", "--http", "https://carrier.example/send")
    carriers = json.loads(cli("carrier", "list", "--json"))
    assert [(c["id"], c["connector"]) for c in carriers] == [(99901, "smpp"), (99902, "http")]
    assert "pw" not in carriers[0]["settings"]
    assert "exactly one" in cli("carrier", "add", "--id", "3", "--name", "x", ok=False)

    cli("route", "add", "--prefix", "1", "--carrier", "99901")
    cli("route", "add", "--prefix", "1202", "--carrier", "99902")
    assert [(r["prefix"], r["carrier"]) for r in json.loads(cli("route", "list", "--json"))] == [
        ("1", 99901), ("1202", 99902)]
    cli("route", "remove", "--prefix", "1202", "--carrier", "99902")

    cli("sender", "add", "55555", "--account", "acme")
    cli("sender", "add", "MYBRAND")
    senders = {s["address"]: s for s in json.loads(cli("sender", "list", "--json"))}
    assert senders["55555"]["account"] == "acme" and senders["MYBRAND"]["account"] is None
    assert senders["55555"]["kind"] == "shortcode" and senders["MYBRAND"]["kind"] == "alphanumeric"
    cli("sender", "remove", "MYBRAND")
    assert "not a shortcode" in cli("sender", "add", "<x>", ok=False)


def test_carrier_result_code_table(cli, tmp_path):
    cli("carrier", "add", "--id", "99903", "--name", "uk", "--smpp", "127.0.0.1:2775", "--system-id", "s",
        "--password", "pw")
    table = {"command_status": {"0x0B": 3}, "receipt": {"UNDELIV:001": 3}}
    (tmp_path / "codes.json").write_text(json.dumps(table))
    cli("carrier", "result-codes", "99903", str(tmp_path / "codes.json"))
    assert json.loads(cli("carrier", "result-codes", "99903")) == table
    settings = json.loads(json.loads(cli("carrier", "list", "--json"))[0]["settings"])
    assert settings["host"] == "127.0.0.1" and settings["result_codes"] == table  # the rest is kept

    (tmp_path / "bad.json").write_text(json.dumps({"receipt": {"DELIVRD": 1}}))
    assert "the stat must be a failure" in cli("carrier", "result-codes", "99903", str(tmp_path / "bad.json"),
                                               ok=False)
    (tmp_path / "garbage.json").write_text("{")
    assert "not JSON" in cli("carrier", "result-codes", "99903", str(tmp_path / "garbage.json"), ok=False)
    assert json.loads(cli("carrier", "result-codes", "99903")) == table  # nothing half-written
    assert "no carrier" in cli("carrier", "result-codes", "1234", str(tmp_path / "codes.json"), ok=False)

    cli("carrier", "result-codes", "99903", "--clear")
    assert json.loads(cli("carrier", "result-codes", "99903")) == {}


def test_worker_refuses_unknown_queues(cli):
    assert "unknown queue" in cli("worker", "--queues", "mt.urgent", ok=False)


def test_queues_shows_what_waits_at_each_stage(cli, client):
    from tests.integration.test_httpapi import params, submit

    assert submit(client, "POST", params(message_id="q-1")) == 0
    assert submit(client, "POST", params(message_id="q-2")) == 0
    rows = {row["queue"]: row for row in json.loads(cli("queues", "--json"))}
    assert (rows["mt.bulk"]["waiting"], rows["mt.bulk"]["claimed"], rows["mt.bulk"]["task_messages"]) == (2, 0, 1)
    assert rows["mt.interactive"]["waiting"] == 0 and rows["callbacks"]["waiting"] is None


def test_an_mm7_carrier_gets_a_webhook_token_and_carries_mms_only(cli):
    output = cli("carrier", "add", "--id", "9", "--name", "mmsc", "--mm7", "http://mmsc.example/mm7", "--vasp-id",
                 "acme", "--vas-id", "pics", "--service-code", "svc", "--username", "u", "--password", "p")
    assert "POST /carriers/9/mm7 with HTTP Basic 9:" in output
    token = output.rsplit("9:", 1)[1].strip()
    cli("carrier", "add", "--id", "10", "--name", "web", "--http", "https://carrier.example/send")
    carriers = {c["id"]: c for c in json.loads(cli("carrier", "list", "--json"))}
    assert (carriers[9]["connector"], carriers[9]["carries"], carriers[10]["carries"]) == ("mm7", "mms", "sms,mms")
    settings = json.loads(carriers[9]["settings"])
    assert settings == {"url": "http://mmsc.example/mm7", "vasp_id": "acme", "vas_id": "pics", "service_code": "svc",
                        "username": "u"}  # the password and the token are not shown
    assert len(token) >= 24
    assert "--vasp-id and --vas-id" in cli("carrier", "add", "--id", "11", "--name", "x", "--mm7", "http://m", ok=False)
    assert "exactly one" in cli("carrier", "add", "--id", "11", "--name", "x", "--mm7", "http://m", "--http",
                                "http://h", ok=False)


def test_mmsc_sim_inject_mo_without_a_simulator_fails_cleanly(cli):
    from tests.conftest import free_port

    output = cli("mmsc-sim", "inject-mo", "--from", "447700900555", "--to", "12345", "--text", "hi", "--url",
                 f"http://127.0.0.1:{free_port()}", ok=False)
    assert "simulator at http://127.0.0.1:" in output
    assert "give --text" in cli("mmsc-sim", "inject-mo", "--from", "1", "--to", "2", ok=False)
