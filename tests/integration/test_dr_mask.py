"""Which receipts a client is called back for (the DR mask), every part real: the MT
API and the REST API -> Redis -> a Celery worker -> SMPP -> the SMSC simulator, which
sends a DELIVRD receipt -> the inbound and callbacks stages -> the client's HTTP server.

``acme`` reports final states only, ``other`` keeps the default (every state: 6 when
the SMSC accepts a message, then the final one); a REST request's ``dr_mask``
overrides its account's either way. A masked state writes no callback row at all,
and the message's timeline (the status API) still shows it."""

from __future__ import annotations

from sqlalchemy import select

from app.db.models import Account, Callback, Carrier
from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.web import create_app
from tests.api_conformance import assert_conforms
from tests.integration.api.conftest import issue_key
from tests.integration.conftest import PASSWORD
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready

ALL_QUEUES = "mt.interactive,mt.interactive_low,mt.bulk,mt.bulk_low,inbound,callbacks"
EVERY_STATE, FINAL_ONLY = ["6", "2"], ["2"]


def configure(gateway, smsc_port: int, receiver: Receiver) -> None:
    """The simulator as the carrier, a DR URL per account, and ``acme`` set to final
    states only, as ``smsagg account update acme --dr-mask final`` does."""
    with session_scope(gateway.database_url) as session:
        carrier = session.get(Carrier, 99901)
        carrier.connector = "smpp"
        carrier.settings = {"host": "127.0.0.1", "port": smsc_port, "system_id": "smsagg", "password": "pw"}
        for account in session.scalars(select(Account)):
            account.dr_url = receiver.url(f"/{account.login}")
        svc.update_account(session, "acme", options=AccountOptions(dr_mask="final"))
        assert svc.get_account(session, "other").dr_mask == "all"  # the default


def rest_send(web, token: str, **fields) -> list[str]:
    response = web.post("/api/v1/messages", json=fields, headers={"Authorization": f"Bearer {token}"})
    assert_conforms("POST", "/api/v1/messages", response)
    assert response.status_code == 202, response.get_json()
    return [m["id"] for m in response.get_json()["messages"]]


def states_by_message(receiver, path: str) -> dict[str, list[str]]:
    reported: dict[str, list[str]] = {}
    for post in receiver.received(path):
        reported.setdefault(post.form["message_id"], []).append(post.form["message_state"])
    return reported


def test_final_only_accounts_and_requests_get_one_callback_per_message(gateway, client, tmp_path):
    web = create_app(gateway).test_client()
    acme_key, other_key = issue_key(gateway.database_url, "acme"), issue_key(gateway.database_url, "other")
    log = tmp_path / "worker.log"
    with Receiver() as receiver, running_simulator(dr_delay=0.2) as smsc, \
            running(["worker", "--queues", ALL_QUEUES, "--pool", "threads", "--concurrency", "10"], gateway, log,
                    ready=worker_ready(log)):
        configure(gateway, smsc.port, receiver)
        for n in range(3):
            assert submit(client, "POST", params(message_id=f"acme-{n}", receipt="TRUE")) == 0
        assert submit(client, "POST", params(login="other", password=PASSWORD, sender="55555",
                                             message_id="other-0", receipt="TRUE")) == 0
        rest_send(web, other_key, phone_numbers=["12025550100"], sender="55555", message="Hi",
                  message_id="other-rest-final", receipt=True, dr_mask="final")
        rest_send(web, acme_key, phone_numbers=["12025550100"], sender="99222", message="Hi",
                  message_id="acme-rest-all", receipt=True, dr_mask="all")
        batch = rest_send(web, other_key, phone_numbers=["12025550100", "12025550111"], sender="55555",
                          message="Hi all", receipt=True, dr_mask="final")
        expected = {
            "/acme": {"acme-0": FINAL_ONLY, "acme-1": FINAL_ONLY, "acme-2": FINAL_ONLY, "acme-rest-all": EVERY_STATE},
            "/other": {"other-0": EVERY_STATE, "other-rest-final": FINAL_ONLY,
                       **{message_id: FINAL_ONLY for message_id in batch}},
        }

        def every_final_arrived() -> bool:
            return all("2" in states_by_message(receiver, path).get(message_id, [])
                       for path, messages in expected.items() for message_id in messages)

        wait_until(every_final_arrived, timeout=90)

    # A message's receipts are sent in order, so its final one arriving means every
    # callback it has was written and sent before: what came is all there is.
    for path, messages in expected.items():
        assert states_by_message(receiver, path) == messages
    with session_scope(gateway.database_url) as session:
        rows = list(session.scalars(select(Callback).where(Callback.kind == "dr")))
        states = sorted(dict(row.fields)["message_state"] for row in rows)
    assert states == sorted(state for messages in expected.values() for reported in messages.values()
                            for state in reported)

    timeline = web.get("/api/v1/messages/other-rest-final", headers={"Authorization": f"Bearer {other_key}"})
    assert timeline.status_code == 200
    detail = timeline.get_json()
    assert detail["state"] == 2
    assert {"submitted", "receipt"} <= {event["kind"] for event in detail["events"]}  # state 6 still recorded
    assert [dict(c["fields"])["message_state"] for c in detail["callbacks"]] == ["2"]
