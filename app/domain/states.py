"""Message states, numbered exactly as the seed's DR ``message_state`` table (seed 000,
"Message State"), so the value stored with a message is the value a DR callback sends.

A message accepted by smsagg is ``ACCEPTED`` (6: "accepted by an Aggregator"), and stays
so when the SMSC acknowledges it (reported to the client as a DR with state 6); the
SMSC's receipts move it on: ``ENROUTE`` (1) when it reports one, then a final state.
:class:`DrMask` says which of those changes a client is called back for.
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


class DrMask(str, enum.Enum):
    """Which state changes of a message its client is called back for (Kannel's
    ``dlr-mask``, cut down to the two choices clients make): ``ALL`` reports every one
    (6 when the SMSC accepts the message, 1 if it reports en route, then the final
    state), ``FINAL`` only the final state, halving the callbacks a message costs.
    The status API shows every state either way; the mask only decides callbacks."""

    ALL = "all"
    FINAL = "final"

    def passes(self, state: MessageState) -> bool:
        return self is DrMask.ALL or state.is_final

    @classmethod
    def parse(cls, value: str) -> "DrMask":
        """``all`` or ``final``, in any case; ``ValueError`` otherwise."""
        try:
            return cls(value.strip().lower())
        except ValueError:
            raise ValueError(f"DR mask must be one of {', '.join(m.value for m in cls)}, not {value!r}") from None

    @classmethod
    def effective(cls, requested: str | None, account_default: str | None) -> "DrMask":
        """The message's own mask when its request set one, else its account's (an
        account row from before masks existed reads as ``ALL``)."""
        return cls(requested or account_default or cls.ALL.value)
