"""The connector interface every carrier implementation fills in.

A connector takes a :class:`~app.domain.outbound.Submission` and answers, per
segment, what the carrier said. Answers are data, never exceptions: an SMPP-style
``command_status`` (0 = accepted) that :mod:`app.domain.smpp_status` classifies, so
SMPP and HTTP carriers share one retry/reject table. A link that is down answers
``CONNECTION_LOST`` for every segment: the carrier may or may not have them, and the
caller retries.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from app.domain.outbound import Submission

CONNECTION_LOST = -1
"""Pseudo command_status: no answer (link down, timeout); retry, the outcome is unknown."""


@dataclass(frozen=True)
class SegmentResult:
    seq: int
    command_status: int
    smsc_message_id: str | None = None
    detail: str = ""

    @property
    def accepted(self) -> bool:
        return self.command_status == 0


class Connector(Protocol):
    def submit(self, submission: Submission) -> list[SegmentResult]:
        """Send every segment of ``submission``; block until each has an answer."""

    def submit_many(self, submissions: list[Submission]) -> list[list[SegmentResult]]:
        """:meth:`submit` for a batch, in order; as concurrent as the link allows."""

    def connect(self) -> None:
        """Open the link ahead of the first message, if the connector keeps one."""

    def close(self) -> None:
        """Release the link (an SMPP unbind) at process shutdown."""
