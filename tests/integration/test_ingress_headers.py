"""The ingress's servers with their own settings, around an app that echoes what it got.

Under gunicorn a header name with an underscore cannot pose as X-Forwarded-For (it would
merge ``X_Forwarded_For`` into the same WSGI key, and behind a trusted proxy the client
would pick its own address), while the GMS ``gms_user`` header still gets through.
granian keeps such names, the last spelling winning: the proxy must drop them
(deploy/nginx does; app/web/server.py), and this test shows why. Under both, no header
sets ``SCRIPT_NAME``, and each worker's app is built by the factory in the worker."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import free_port
from tests.integration.workers import port_open, wait_until

ECHO = """
import json, sys
from app.web import server


def echo(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_") or k == "SCRIPT_NAME"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]


def factory():
    return echo


port = int(sys.argv[2])
if sys.argv[1] == "gunicorn":
    from app.web.gunicorn_server import IngressServer, ingress_options
    IngressServer(ingress_options("127.0.0.1", port, workers=1, threads=2), factory).run()
else:
    server.granian_server("127.0.0.1", port, workers=1, threads=2).serve(target_loader=factory, wrap_loader=False)
"""

SPELLINGS = (("X-Forwarded-For", "203.0.113.7"), ("X_Forwarded_For", "198.51.100.1"),
             ("X-Forwarded_For", "198.51.100.2"), ("gms_user", "device-17"), ("SCRIPT_NAME", "/elsewhere"))


NGINX = shutil.which("nginx")
TEMPLATE = Path(__file__).resolve().parents[2] / "deploy" / "nginx" / "smsagg.conf.template"


@contextlib.contextmanager
def _echo_server(server: str):
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", ECHO, server, str(port)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(port_open(port), timeout=20)
        yield port
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)


@contextlib.contextmanager
def _deploy_nginx(upstream_port: int, folder: Path):
    """deploy/'s nginx site in front of ``upstream_port``, on a free port of its own."""
    port = free_port()
    site = (TEMPLATE.read_text().replace("${SMSAGG_INGRESS_ADDR}", f"127.0.0.1:{upstream_port}")
            .replace("${SMSAGG_COMETD_ADDR}", f"127.0.0.1:{free_port()}")
            .replace("listen 80 default_server;", f"listen 127.0.0.1:{port} default_server;"))
    (folder / "nginx.conf").write_text(
        f"daemon off; pid {folder}/nginx.pid; error_log {folder}/error.log;\n"
        "events {}\n"
        f"http {{ access_log off; client_body_temp_path {folder}; proxy_temp_path {folder};\n{site}\n}}\n")
    process = subprocess.Popen([NGINX, "-p", str(folder), "-c", str(folder / "nginx.conf")],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(port_open(port), timeout=20)
        yield port
    finally:
        process.terminate()
        process.wait(10)


def _get_echo(port: int, headers) -> dict:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    connection.putrequest("GET", "/echo")
    for name, value in headers:
        connection.putheader(name, value)
    connection.endheaders()
    return json.loads(connection.getresponse().read())


def _echoed(server: str, headers) -> dict:
    with _echo_server(server) as port:
        return _get_echo(port, headers)


def test_gunicorn_drops_underscore_headers_but_gms_user():
    seen = _echoed("gunicorn", SPELLINGS)
    assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert seen["HTTP_GMS_USER"] == "device-17"
    assert seen.get("SCRIPT_NAME", "") == "" and "HTTP_SCRIPT_NAME" not in seen


@pytest.mark.parametrize("spelling", ["X_Forwarded_For", "X-Forwarded_For", "x_forwarded-for"])
def test_granian_lets_an_underscore_spelling_win_so_the_proxy_must_drop_it(spelling):
    seen = _echoed("granian", [("X-Forwarded-For", "203.0.113.7"), (spelling, "198.51.100.1"),
                               ("gms_user", "device-17"), ("SCRIPT_NAME", "/elsewhere")])
    assert seen["HTTP_X_FORWARDED_FOR"] == "198.51.100.1"  # why deploy/nginx drops these spellings
    assert seen["HTTP_GMS_USER"] == "device-17"
    assert seen["SCRIPT_NAME"] == ""  # a header is HTTP_SCRIPT_NAME, never the CGI variable


def test_granian_joins_repeated_headers_in_order():
    """Two X-Forwarded-For lines are one chain, in the order sent (RFC 9110 5.3), as the
    trusted-proxy rule reads it (app.domain.forwarded)."""
    seen = _echoed("granian", [("X-Forwarded-For", "203.0.113.7"), ("X-Forwarded-For", "10.9.9.9")])
    assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.7,10.9.9.9"


@pytest.mark.skipif(NGINX is None, reason="nginx is not installed")
def test_behind_deploy_nginx_granian_gets_the_proxys_header_only(tmp_path):
    """deploy/nginx drops the underscore spellings, so behind it granian's
    X-Forwarded-For is the one nginx wrote: what the client sent, then its address."""
    with _echo_server("granian") as upstream, _deploy_nginx(upstream, tmp_path) as port:
        for spelling in ("X_Forwarded_For", "X-Forwarded_For", "x_forwarded-for"):
            seen = _get_echo(port, [("X-Forwarded-For", "203.0.113.7"), (spelling, "198.51.100.1"),
                                    ("gms_user", "device-17")])
            assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.7, 127.0.0.1", spelling
            assert seen["HTTP_GMS_USER"] == "device-17"
