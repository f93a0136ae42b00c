"""Fixtures for the console tests: the provisioned gateway (tests/integration/conftest.py)
with an operator, its app and a Flask test client that can log in."""

from __future__ import annotations

import re
from dataclasses import dataclass

import pytest

from app.console import operators
from app.db.session import session_scope
from app.web import create_app

OPERATOR, OPERATOR_PASSWORD = "alice", "operator-pw-1"
_CSRF = re.compile(r'data-csrf="([^"]+)"')


def csrf_of(html: str) -> str:
    return _CSRF.search(html).group(1)


@dataclass
class Console:
    app: object
    client: object
    settings: object

    def token(self, path: str = "/console/login") -> str:
        """The session's CSRF token, as a page shows it."""
        return csrf_of(self.client.get(path).get_data(as_text=True))

    def login(self, login: str = OPERATOR, password: str = OPERATOR_PASSWORD, **extra):
        token = self.token()
        return self.client.post("/console/login", data={"login": login, "password": password, "csrf_token": token,
                                                        **extra})

    def post(self, path: str, data=None, **kwargs):
        """A POST from a console page: with the session's token."""
        token = self.token("/console/")
        return self.client.post(path, data={"csrf_token": token, **(data or {})}, **kwargs)


@pytest.fixture
def operator(gateway):
    with session_scope(gateway.database_url) as session:
        operators.add_operator(session, OPERATOR, OPERATOR_PASSWORD)
    return OPERATOR


@pytest.fixture
def console(gateway, operator) -> Console:
    app = create_app(gateway)
    app.testing = True
    return Console(app, app.test_client(), gateway)


@pytest.fixture
def logged_in(console) -> Console:
    response = console.login()
    assert response.status_code == 302 and response.headers["Location"] == "/console/"
    return console
