"""The callbacks tests' client endpoint."""

from __future__ import annotations

import pytest

from tests.integration.receiver import Receiver


@pytest.fixture
def receiver():
    with Receiver() as server:
        yield server
