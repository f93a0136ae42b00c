"""A client's callback endpoint for tests: a real threaded HTTP server on 127.0.0.1
whose answers are scripted per path (status codes in turn, an optional delay) and
which records every request it gets (when, headers, raw body)."""

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

    @property
    def fields(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode("ascii"), keep_blank_values=True)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Received] = []
        self._statuses: dict[str, list[int]] = defaultdict(list)
        self._delays: dict[str, float] = {}
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver._record(Received(self.path, time.monotonic(), dict(self.headers.items()), body))
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
