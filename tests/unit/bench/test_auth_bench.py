"""``smsagg bench auth``'s attacker: paced wrong passwords for the bench login, from one
address or (``spread``) a new IPv6 /64 each."""

from __future__ import annotations

import queue
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from app.bench.auth import attack
from app.bench.harness import BENCH_LOGIN, BENCH_PASSWORD


def _receiver(seen: list) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self):
            form = parse_qs(self.rfile.read(int(self.headers["Content-Length"])).decode())
            seen.append((form, self.headers.get("X-Forwarded-For")))
            self.send_response(200)
            self.send_header("Content-Length", "13")
            self.end_headers()
            self.wfile.write(b"result_code=2")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _run_attack(spread: bool, seconds: float = 1.0) -> tuple[list, dict, float]:
    seen: list = []
    server = _receiver(seen)
    under_way, stop, results = threading.Event(), threading.Event(), queue.Queue()
    runner = threading.Thread(target=attack, args=(server.server_port, 20.0, spread, under_way, stop, results))
    runner.start()
    assert under_way.wait(10)
    stop.wait(seconds)
    stop.set()
    runner.join(10)
    server.shutdown()
    answers, elapsed = results.get(timeout=1)
    return seen, answers, elapsed


def test_the_attacker_paces_wrong_passwords_for_the_bench_login():
    seen, answers, elapsed = _run_attack(spread=False)
    assert answers == {"result_code=2": len(seen)}
    assert 10 <= len(seen) / elapsed <= 25
    assert {form["login"][0] for form, _ in seen} == {BENCH_LOGIN}
    passwords = [form["password"][0] for form, _ in seen]
    assert BENCH_PASSWORD not in passwords and len(set(passwords)) == len(passwords)
    assert {forwarded for _, forwarded in seen} == {None}


def test_a_spread_attacker_names_a_new_ipv6_64_each_time():
    seen, _, _ = _run_attack(spread=True)
    networks = [forwarded.rsplit("::", 1)[0] for _, forwarded in seen]
    assert all(forwarded.startswith("2001:db8:") for _, forwarded in seen)
    assert len(set(networks)) >= len(networks) - 1
