"""End to end, every part real: HTTP submit with receipt=TRUE -> Redis -> Celery worker
-> SMPP over TCP -> the SMSC simulator -> deliver_sm receipt -> inbound worker ->
callbacks worker -> the client's HTTP server receives the seed's DR fields, signed.
And the MO direction: a two-part MO injected at the simulator reaches the client
as one ``type=MO`` POST with the whole text."""

from __future__ import annotations

import time

from app.db.models import Account, Carrier
from app.db.session import session_scope
from app.domain.callbacks import verify_signature
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready

ALL = "mt.interactive,mt.interactive_low,mt.bulk,mt.bulk_low,inbound,callbacks"


def configure(gateway, smsc_port: int, receiver: Receiver) -> str:
    with session_scope(gateway.database_url) as session:
        carrier = session.get(Carrier, 99901)
        carrier.connector = "smpp"
        carrier.settings = {"host": "127.0.0.1", "port": smsc_port, "system_id": "smsagg", "password": "pw"}
        account = session.get(Account, 1)
        account.dr_url, account.mo_url = receiver.url("/dr"), receiver.url("/mo")
        return account.callback_secret


def test_submit_to_signed_dr_callback_and_a_concatenated_mo(gateway, client, tmp_path):
    log = tmp_path / "worker.log"
    with Receiver() as receiver, running_simulator(dr_delay=0.2) as smsc, \
            running(["worker", "--queues", ALL, "--pool", "threads", "--concurrency", "10"], gateway, log,
                    ready=worker_ready(log)):
        secret = configure(gateway, smsc.port, receiver)
        assert submit(client, "POST", params(message_id="e2e-1", receipt="TRUE", app_id="my-app",
                                             conversation_id="conv-9")) == 0
        wait_until(lambda: any(p.form.get("message_state") == "2" for p in receiver.received("/dr")), timeout=60)

        smsc.inject_mo("447700900555", "99222", "This reply is long enough to need two parts. " * 4)
        wait_until(lambda: receiver.received("/mo"), timeout=60)
        # Exactly one MO callback for the two parts: a later MO's callback arrives with nothing between.
        smsc.inject_mo("447700900555", "99222", "later")
        wait_until(lambda: len(receiver.received("/mo")) >= 2, timeout=60)

    drs = receiver.received("/dr")
    assert [p.form["message_state"] for p in drs] == ["6", "2"]  # accepted by the SMSC, then delivered
    assert drs[-1].form == {"type": "receipt", "message_id": "e2e-1", "message_state": "2", "result_code": "0",
                            "app_id": "my-app", "conversation_id": "conv-9"}
    for post in drs:
        headers = {k.lower(): v for k, v in post.headers.items()}
        assert headers["content-type"].startswith("application/x-www-form-urlencoded")
        assert verify_signature(secret, headers["x-smsagg-timestamp"], post.body, headers["x-smsagg-signature"],
                                now=time.time())

    mos = [p.form for p in receiver.received("/mo")]
    assert [mo["message"] for mo in mos] == ["This reply is long enough to need two parts. " * 4, "later"]
    assert mos[0]["type"] == "MO" and mos[0]["shortcode"] == "99222"
    assert mos[0]["phone_number"] == "447700900555" and mos[0]["carrier"] == "99901"


def test_a_worker_binds_at_start_so_mo_arrives_before_any_mt(gateway, tmp_path):
    log = tmp_path / "worker.log"
    with Receiver() as receiver, running_simulator() as smsc:
        configure(gateway, smsc.port, receiver)
        with running(["worker", "--queues", "inbound,callbacks", "--pool", "threads", "--concurrency", "4"], gateway,
                     log, ready=worker_ready(log)):
            wait_until(lambda: _bound(smsc), timeout=30)
            smsc.inject_mo("447700900555", "99222", "first contact")
            wait_until(lambda: receiver.received("/mo"), timeout=30)
    assert receiver.received("/mo")[0].form["message"] == "first contact"


def _bound(smsc) -> bool:
    """Whether a receiver is bound: the simulator refuses an MO while none is."""
    try:
        smsc.inject_mo("447700900000", "00000", "probe")  # an MO for no account: kept, never called back
        return True
    except Exception:
        return False
