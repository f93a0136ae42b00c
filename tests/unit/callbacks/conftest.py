"""What the callback service tests share: a clock the test moves, and an in-memory sender."""

from __future__ import annotations

import time

import pytest

from app.adapters.callback_http import RecordingCallbackSender


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def sender():
    return RecordingCallbackSender()
