"""An in-memory connector: the test double of a carrier (kombu's memory transport
idea). It records what it was given and answers from a script of statuses."""

from __future__ import annotations

import itertools
import threading
from collections import deque

from app.connectors.base import SegmentResult
from app.domain.outbound import Submission


class InMemoryConnector:
    def __init__(self, statuses: list[int] | None = None):
        """``statuses`` are answered one per segment, in order; then 0 (accepted)."""
        self.submissions: list[Submission] = []
        self._statuses = deque(statuses or [])
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.closed = False

    def submit(self, submission: Submission) -> list[SegmentResult]:
        with self._lock:
            self.submissions.append(submission)
            return [self._answer(segment.seq) for segment in submission.segments]

    def submit_many(self, submissions: list[Submission]) -> list[list[SegmentResult]]:
        return [self.submit(submission) for submission in submissions]

    def _answer(self, seq: int) -> SegmentResult:
        status = self._statuses.popleft() if self._statuses else 0
        return SegmentResult(seq, status, f"mem{next(self._ids):06x}" if status == 0 else None)

    def connect(self) -> None:
        """Nothing to open."""

    def close(self) -> None:
        self.closed = True
