"""Fixtures for the SMPP tests over real TCP on 127.0.0.1 (test modules import nothing from here)."""

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

from app.smpp.client import SmppClientConfig


@pytest.fixture
def run() -> Callable[..., Any]:
    """Run one coroutine on a fresh event loop, bounded in time."""

    def run(coroutine: Coroutine[Any, Any, Any], timeout: float = 5.0) -> Any:
        return asyncio.run(asyncio.wait_for(coroutine, timeout))

    return run


@pytest.fixture
def client_config() -> Callable[..., SmppClientConfig]:
    """A client config for a local port, with test-sized timeouts and backoff."""

    def client_config(port: int, **overrides: Any) -> SmppClientConfig:
        settings: dict[str, Any] = {
            "host": "127.0.0.1",
            "port": port,
            "system_id": "smsagg",
            "password": "secret",
            "response_timeout": 2.0,
            "reconnect_delay": 0.02,
            "reconnect_max_delay": 0.1,
        }
        return SmppClientConfig(**(settings | overrides))

    return client_config
