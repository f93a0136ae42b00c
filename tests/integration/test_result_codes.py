"""A carrier's refusal reaches the client as the seed's DR result_code (seed 000,
"Receiving a Delivery Receipt", Result Code table), every part real: the SMSC simulator
refuses a submit_sm with a chosen command_status, or sends an UNDELIV receipt whose err
the carrier's table knows, and the client's DR callback carries the mapped code."""

from __future__ import annotations

from app.db.models import Account, Carrier
from app.db.session import session_scope
from app.services import accounts as svc
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_end_to_end import ALL
from tests.integration.test_httpapi import params, submit
from tests.integration.workers import running, wait_until, worker_ready

ESME_RINVSRCTON = 0x48
REFUSED_PREFIX = "1202555099"


def test_a_refused_submit_and_a_failure_receipt_reach_the_client_with_their_codes(gateway, client, tmp_path):
    log = tmp_path / "worker.log"
    with Receiver() as receiver, \
            running_simulator(dr_delay=0.1, outcome_weights={"UNDELIV": 1.0}, reject_destination_prefix=REFUSED_PREFIX,
                              reject_status=ESME_RINVSRCTON) as smsc, \
            running(["worker", "--queues", ALL, "--pool", "threads", "--concurrency", "4"], gateway, log,
                    ready=worker_ready(log)):
        with session_scope(gateway.database_url) as session:
            carrier = session.get(Carrier, 99901)
            carrier.connector = "smpp"
            carrier.settings = {"host": "127.0.0.1", "port": smsc.port, "system_id": "smsagg", "password": "pw"}
            session.get(Account, 1).dr_url = receiver.url("/dr")
            session.flush()
            # The simulator's receipts say err:001; this carrier's table reads that as "carrier invalid".
            svc.set_carrier_result_codes(session, 99901, {"receipt": {"UNDELIV:001": 3}})
        assert submit(client, "POST", params(message_id="refused", phone_number=REFUSED_PREFIX + "1",
                                             receipt="TRUE")) == 0
        assert submit(client, "POST", params(message_id="undelivered", receipt="TRUE")) == 0
        wait_until(lambda: {p.form["message_id"] for p in receiver.received("/dr")
                            if p.form["message_state"] in ("5", "8")} == {"refused", "undelivered"}, timeout=60)

    finals = {p.form["message_id"]: p.form for p in receiver.received("/dr")
              if p.form["message_state"] in ("5", "8")}
    # ESME_RINVSRCTON: "the shortcode sent is an alpha numeric, which is not permitted on this carrier"
    assert (finals["refused"]["message_state"], finals["refused"]["result_code"]) == ("8", "4")
    assert (finals["undelivered"]["message_state"], finals["undelivered"]["result_code"]) == ("5", "3")
