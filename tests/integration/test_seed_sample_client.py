"""The seed's own sample Python client (seed 000, "Sample Python code to interact with
Genesys API"), its ``main()`` logic unchanged but for host and credentials, run
against a live ``smsagg web`` (gunicorn) process, gets "Success"."""

from __future__ import annotations

import http.client
import urllib.parse
import uuid

from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from tests.conftest import free_port
from tests.integration.workers import port_open, running


def seed_sample_main(host: str, username: str, password: str) -> str:
    """The seed sample's ``main()``: line wraps repaired, ``print`` collected."""
    out = []
    print_ = out.append

    message = "Hey"  # The message to be sent.
    messageId = uuid.uuid1()  # A unique message id.
    phoneNumber = "12345"  # The phone number to which the message is to be sent.
    shortCode = "99222"  # The shortcode on this message.
    carrier = "99999"  # The carrier ID can be found in the reach list.

    genesysURL = host
    headers = {"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/plain"}

    messageBody = {
        "login": username,
        "password": password,
        "phone_number": phoneNumber,
        "shortcode": shortCode,
        "carrier": carrier,
        "message_id": messageId,
        "message": message,
    }
    messageBody = urllib.parse.urlencode(messageBody)

    conn = http.client.HTTPConnection(genesysURL)
    conn.request("POST", "/httpapi/receiver", messageBody, headers)

    response = conn.getresponse()
    if response.status < 200 or response.status > 299:
        print_("Request not successful. Please try again.")
    else:
        resultCode = response.read().decode().split("=")[1]

    if resultCode == "0":
        print_("Success: The message has been accepted for processing.")
    elif resultCode == "1":
        print_("Failure: Either one(or more) require parameters are missing. ")
    elif resultCode == "2":
        print_("Failure: The credentials provided are either wrong or do not exist.")
    else:
        print_(f"Failure: result code {resultCode}")
    return "".join(out)


def test_seed_sample_client_gets_success_from_smsagg_web(settings, tmp_path, redis_client):
    with session_scope(settings.database_url) as session:
        svc.create_account(session, "USERNAME", "PASSWORD", senders=("99222",), options=AccountOptions(),
                           default_max_length=1600)
        svc.add_carrier(session, 99999, "reach-99999", connector="http", settings={"url": "http://127.0.0.1:9"},
                        throughput=None)
    port = free_port()
    log = tmp_path / "web.log"
    try:
        with running(["web", "--port", str(port), "--workers", "1"], settings, log, ready=port_open(port)):
            assert seed_sample_main(f"127.0.0.1:{port}", "USERNAME", "PASSWORD") == (
                "Success: The message has been accepted for processing."
            )
            assert "Failure: The credentials" in seed_sample_main(f"127.0.0.1:{port}", "USERNAME", "wrong")
    finally:
        redis_client.delete("mt.bulk")
