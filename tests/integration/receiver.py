"""A client's callback endpoint for tests, the one every test shares: a real threaded
HTTP server on 127.0.0.1 (HTTP/1.1, connections kept alive) whose answers are scripted
per path (status codes in turn, an optional delay, requests dropped unanswered) and which
records every request it gets (when, headers, raw body, the client's port, whether its
connection had carried a request before).

The benchmarks' receiver (``app.bench.receiver``) is a different tool: a process of its
own that takes a bench's full callback rate and writes arrivals to a file."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self
from urllib.parse import parse_qsl


@dataclass(frozen=True)
class Received:
    path: str
    at: float  # time.monotonic()
    headers: dict[str, str]
    body: bytes
    peer_port: int = 0
    reused: bool = False  # the connection had carried a request before

    @property
    def fields(self) -> list[tuple[str, str]]:
        """The form fields in the order sent (a repeated name stays repeated)."""
        return parse_qsl(self.body.decode("ascii"), keep_blank_values=True)

    @property
    def form(self) -> dict[str, str]:
        """The form fields by name, for a test that reads a callback's values."""
        return dict(self.fields)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._statuses: dict[str, list[int]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self._drops: dict[tuple[str, bool], int] = defaultdict(int)
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            served = 0  # requests on this connection (one handler per connection)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                reused, self.served = self.served > 0, self.served + 1
                receiver._record(Received(self.path, time.monotonic(), dict(self.headers.items()), body,
                                          self.client_address[1], reused))
                if receiver._take_drop(self.path, reused):
                    self.close_connection = True  # no answer: the client sees the connection dropped
                    return
                status, delay = receiver._answer(self.path)
                if delay:
                    time.sleep(delay)
                payload = b"ok" if status < 300 else b"no"
                self.send_response(status)
                if 300 <= status < 400:
                    self.send_header("Location", "/redirected")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def script(self, path: str, statuses: list[int] | None = None, delay: float = 0.0) -> None:
        """Answer ``path`` with these statuses in turn (then 200), after ``delay`` seconds."""
        with self._lock:
            self._statuses[path] = list(statuses or [])
            self._delays[path] = delay

    def drop(self, path: str, count: int = 1, *, reused: bool = True) -> None:
        """Close the connection without answering the next ``count`` requests to ``path``
        that arrive on a kept-alive connection (``reused``) or on a new one."""
        with self._lock:
            self._drops[(path, reused)] = count

    def _take_drop(self, path: str, reused: bool) -> bool:
        with self._lock:
            if self._drops[(path, reused)] <= 0:
                return False
            self._drops[(path, reused)] -= 1
            return True

    def _answer(self, path: str) -> tuple[int, float]:
        with self._lock:
            statuses = self._statuses[path]
            return (statuses.pop(0) if statuses else 200), self._delays.get(path, 0.0)

    def _record(self, received: Received) -> None:
        with self._lock:
            self.requests.append(received)

    def received(self, path: str) -> list[Received]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
