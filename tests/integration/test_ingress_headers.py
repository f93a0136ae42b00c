"""The ingress's gunicorn settings, around an app that echoes what it got: a header name
with an underscore cannot pose as X-Forwarded-For (gunicorn would merge
``X_Forwarded_For`` into the same WSGI key, and behind a trusted proxy the client would
pick its own address), while the GMS ``gms_user`` header still gets through."""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys

from tests.conftest import free_port
from tests.integration.workers import port_open, wait_until

ECHO = """
import json, sys
from app.web.server import IngressServer, ingress_options

def app(environ, start_response):
    body = json.dumps({k: v for k, v in environ.items() if k.startswith("HTTP_") or k == "SCRIPT_NAME"}).encode()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
    return [body]

class Echo(IngressServer):
    def load(self):
        return app

options = ingress_options("127.0.0.1", int(sys.argv[1]), workers=1, threads=2)
options.pop("post_worker_init")
Echo(options).run()
"""


def test_underscore_headers_are_dropped_but_gms_user():
    port = free_port()
    process = subprocess.Popen([sys.executable, "-c", ECHO, str(port)], start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(port_open(port), timeout=20)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        connection.putrequest("GET", "/echo")
        for name, value in (("X-Forwarded-For", "203.0.113.7"), ("X_Forwarded_For", "198.51.100.1"),
                            ("X-Forwarded_For", "198.51.100.2"), ("gms_user", "device-17"),
                            ("SCRIPT_NAME", "/elsewhere")):
            connection.putheader(name, value)
        connection.endheaders()
        seen = json.loads(connection.getresponse().read())
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(10)
    assert seen["HTTP_X_FORWARDED_FOR"] == "203.0.113.7"
    assert seen["HTTP_GMS_USER"] == "device-17"
    assert seen.get("SCRIPT_NAME", "") == "" and "HTTP_SCRIPT_NAME" not in seen
