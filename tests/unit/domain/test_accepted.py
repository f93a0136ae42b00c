"""The accepted message both the MT API and the bulk API queue (app.domain.accepted)."""

from app.bulk.payloads import destination_payload
from app.domain.accepted import AcceptedMessage

KEYS = ["id", "account_id", "client_message_id", "phone_number", "sender", "message", "carrier", "receipt",
        "app_id", "conversation_id", "priority", "attachments", "accepted_at", "encoding", "flash", "wap_push",
        "batch_id", "api", "price", "dlr"]


def _accepted(**extra) -> AcceptedMessage:
    return AcceptedMessage("m1", 1, "c1", "12025550100", "99222", "Hi", None, True, None, None, "BULK", [], 1.0,
                           None, False, False, None, "genesys", 0, True, **extra)


def test_the_payload_has_the_contract_keys_in_order_and_no_message_type_unless_given():
    assert list(_accepted().payload()) == KEYS
    assert _accepted(message_type=0).payload()["message_type"] == 0


def test_a_bulk_destination_has_the_same_keys_plus_its_message_type():
    meta = {"account_id": 1, "source": "99222", "message": "Hi", "dlr": True, "priority": "BULK",
            "accepted_at": 1.0, "encoding": "gsm7", "flash": False, "wap_push": False, "batch_id": "b" * 24,
            "type": 0}
    payload = destination_payload(meta, "12025550100", "m" * 32, 3)
    assert list(payload) == [*KEYS, "message_type"] and payload["api"] == "bulk" and payload["price"] == 3
