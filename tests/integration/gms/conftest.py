"""Fixtures for the GMS tests: a configured gateway app (Flask test client or a
real threaded HTTP server on 127.0.0.1), one app, one agent, resource groups, and
real ``smsagg cometd`` / ``smsagg web`` processes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import pytest
import requests
from werkzeug.serving import make_server

from app.db.session import session_scope
from app.gms import registry
from app.gms.http import basic_auth_header
from app.web import create_app
from tests.conftest import free_port
from tests.integration.workers import port_open, running

APP, APP_PASSWORD = "mobileapp", "app-secret-1"
OTHER_APP, OTHER_PASSWORD = "otherapp", "other-secret-1"
AGENT, AGENT_PASSWORD, AGENT_NICK = "alice", "agent-secret-1", "Alice"

GMS_INI = """
[gms]
cometd_timeout = 2
cometd_poll_interval = 0.5
access_code_length = 6

[service:iPhoneService]
type = builtin
service = request-interaction
ttl = 7200
provide_code = true
resource_group = iPhoneGroup

[resource-group:iPhoneGroup]
numbers = 18005550100
strategy = round-robin
booking_timeout = 60
"""


@dataclass
class Gms:
    settings: object
    app: object
    client: object

    def auth(self, name: str = APP, password: str = APP_PASSWORD, user: str | None = None) -> dict:
        headers = {"Authorization": basic_auth_header(name, password)}
        if user:
            headers["gms_user"] = user
        return headers

    def agent_auth(self) -> dict:
        return {"Authorization": basic_auth_header(AGENT, AGENT_PASSWORD)}

    def add_group(self, name: str, numbers: str, strategy: str = "random", booking_timeout: int | None = None):
        with session_scope(self.settings.database_url) as session:
            registry.add_group(session, name, numbers, strategy=strategy, booking_timeout=booking_timeout)

    def post(self, path: str, data=None, user: str | None = None, **kwargs):
        return self.client.post(path, data=data or {}, headers=self.auth(user=user), **kwargs)


@pytest.fixture
def gms(settings, tmp_path) -> Gms:
    (tmp_path / "gms.ini").write_text(GMS_INI)
    gms_settings = settings.with_overrides(home=tmp_path)
    with session_scope(gms_settings.database_url) as session:
        registry.add_app(session, APP, APP_PASSWORD)
        registry.add_app(session, OTHER_APP, OTHER_PASSWORD)
        registry.add_agent(session, AGENT, AGENT_PASSWORD, AGENT_NICK)
    flask_app = create_app(gms_settings)
    flask_app.testing = True
    return Gms(settings=gms_settings, app=flask_app, client=flask_app.test_client())


@pytest.fixture
def live_server(gms) -> Callable[[], str]:
    """The gateway on a real threaded HTTP server at 127.0.0.1:<free port>."""
    servers = []

    def start() -> str:
        server = make_server("127.0.0.1", free_port(), gms.app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _healthy(base: str) -> Callable[[], bool]:
    def check() -> bool:
        try:
            return requests.get(f"{base}/health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    return check


@pytest.fixture
def processes(gms, tmp_path):
    """``processes.cometd()`` / ``processes.web()``: the real server commands in
    subprocesses on free ports (SMSAGG_HOME holds this test's gms.ini); base URL back."""
    with ExitStack() as stack:

        class Started:
            def __init__(self):
                self.handles = {}

            def cometd(self, name: str = "cometd") -> str:
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                self.handles[name] = stack.enter_context(running(
                    ["cometd", "--port", str(port)], gms.settings, tmp_path / f"{name}.log", ready=_healthy(base)))
                return base

            def web(self) -> str:
                port = free_port()
                self.handles["web"] = stack.enter_context(running(
                    ["web", "--port", str(port)], gms.settings, tmp_path / "web.log", ready=port_open(port)))
                return f"http://127.0.0.1:{port}"

        yield Started()
