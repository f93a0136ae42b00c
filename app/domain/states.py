"""Message states, numbered exactly as the seed's DR ``message_state`` table (seed 000,
"Message State"), so the value stored with a message is the value a DR callback sends.

A message accepted by smsagg is ``ACCEPTED`` (6: "accepted by an Aggregator"), and stays
so when the SMSC acknowledges it (reported to the client as a DR with state 6); the
SMSC's receipts move it on: ``ENROUTE`` (1) when it reports one, then a final state.
"""

from __future__ import annotations

import enum


class MessageState(enum.IntEnum):
    ENROUTE = 1
    DELIVERED = 2
    EXPIRED = 3
    DELETED = 4
    UNDELIVERABLE = 5
    ACCEPTED = 6
    UNKNOWN = 7
    REJECTED = 8

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATES


FINAL_STATES = frozenset(
    {
        MessageState.DELIVERED,
        MessageState.EXPIRED,
        MessageState.DELETED,
        MessageState.UNDELIVERABLE,
        MessageState.REJECTED,
    }
)
