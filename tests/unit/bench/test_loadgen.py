"""The load generator against a real HTTP/1.1 server on 127.0.0.1, and its parsers on bytes."""

import asyncio
import json
import pickle
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from app.bench.loadgen import (
    ProtocolError,
    RequestSpec,
    format_result,
    parse_wrk_output,
    read_response,
    run_load,
    run_wrk,
    wrk_available,
)

pytestmark = pytest.mark.timeout(30)


class Handler(BaseHTTPRequestHandler):
    """POST echoes the body; GET paths choose the response's framing."""

    protocol_version = "HTTP/1.1"

    def setup(self):
        super().setup()
        # Headers and body go out in separate writes: without this, Nagle plus delayed ACKs
        # stall every response ~40 ms.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.count_connection()

    def log_message(self, *args):
        pass

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.received.append(body)
        self.reply(200, body)

    def do_GET(self):
        if self.path == "/chunked":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self.wfile.write(b"7;ext=1\r\nresult_\r\n6\r\ncode=0\r\n0\r\nX-Trailer: 1\r\n\r\n")
        elif self.path == "/close":
            self.close_connection = True
            self.reply(200, b"bye", {"Connection": "close"})
        elif self.path == "/slow":
            time.sleep(3)
            self.reply(200, b"late")
        elif self.path.startswith("/status/"):
            self.reply(int(self.path[-3:]), b"result_code=%s" % self.path[-3:].encode())
        else:
            self.reply(200, b"result_code=0")

    def reply(self, status, body, headers=None):
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **(headers or {})}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)


class CountingServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.connections = 0
        self.received = []
        self._lock = threading.Lock()

    def handle_error(self, request, client_address):
        pass  # the generator resets connections it abandons at its deadline

    def count_connection(self):
        with self._lock:
            self.connections += 1


@pytest.fixture
def server():
    httpd = CountingServer()
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    httpd.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def post_message(i: int) -> RequestSpec:
    return RequestSpec("POST", "/echo", b"message_id=%d" % i)


def get(path):
    spec = RequestSpec("GET", path, b"", "")
    return lambda i: spec


def test_each_request_gets_a_unique_index_and_bodies_are_tallied(server):
    result = run_load(server.url + "/echo", post_message, concurrency=4, seconds=5,
                      warmup=0, max_requests=200)

    assert result.requests == 200
    assert result.status_counts == {200: 200}
    assert sorted(server.received) == sorted(b"message_id=%d" % i for i in range(200))
    assert len(result.body_counts) == 10 and set(result.body_counts.values()) == {1}
    assert result.other_bodies == 190
    assert result.errors == {}


def test_keep_alive_reuses_each_connection(server):
    result = run_load(server.url, get("/"), concurrency=4, seconds=5, warmup=0, max_requests=300)

    assert result.requests == 300
    assert server.connections == result.connections_opened == 4


def test_chunked_responses_parse_and_keep_the_connection(server):
    result = run_load(server.url, get("/chunked"), concurrency=2, seconds=5, warmup=0,
                      max_requests=50)

    assert result.body_counts == {"result_code=0": 50}
    assert server.connections == 2


def test_connection_close_makes_the_next_request_reconnect(server):
    result = run_load(server.url, get("/close"), concurrency=2, seconds=5, warmup=0,
                      max_requests=30)

    assert result.requests == 30 and result.errors == {}
    assert server.connections == result.connections_opened == 30


def test_status_codes_are_counted_separately(server):
    paths = [RequestSpec("GET", "/status/200", b"", ""), RequestSpec("GET", "/status/503", b"", "")]
    result = run_load(server.url, lambda i: paths[i % 2], concurrency=2, seconds=5, warmup=0,
                      max_requests=40)

    assert result.status_counts == {200: 20, 503: 20}
    assert result.body_counts == {"result_code=200": 20, "result_code=503": 20}


def test_time_bound_warmup_and_percentiles(server):
    started = time.monotonic()
    result = run_load(server.url, get("/"), concurrency=8, seconds=1.0, warmup=0.4)
    elapsed = time.monotonic() - started

    assert elapsed < 1.5
    assert result.warmup_requests > 0 and result.requests > 0
    assert result.seconds == pytest.approx(0.6, abs=0.05)
    assert result.requests_per_second == pytest.approx(result.requests / result.seconds)
    latency = result.latency_ms
    assert 0 < latency.p50 <= latency.p90 <= latency.p99 <= latency.max < 1000
    assert 0 < result.cpu_seconds and 0 < result.cpu_percent <= 110


def test_a_dead_port_gives_errors_not_a_hang():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    started = time.monotonic()
    result = run_load(f"http://127.0.0.1:{port}/", get("/"), concurrency=4, seconds=0.5, warmup=0)

    assert time.monotonic() - started < 1.5
    assert result.requests == 0
    assert result.errors["ConnectionRefusedError"] >= 4
    assert "ConnectionRefusedError x" in format_result(result)


def test_a_slow_answer_is_a_timeout_and_the_run_still_ends_on_time(server):
    started = time.monotonic()
    result = run_load(server.url, get("/slow"), concurrency=2, seconds=0.8, warmup=0, timeout=0.3)

    assert time.monotonic() - started < 1.5
    assert result.errors["TimeoutError"] >= 2
    assert result.requests == 0


def test_several_processes_split_the_indexes_and_merge(server):
    result = run_load(server.url + "/echo", post_message, concurrency=4, seconds=10, warmup=0,
                      processes=2, max_requests=101)

    assert result.requests == 101
    assert sorted(server.received) == sorted(b"message_id=%d" % i for i in range(101))
    assert len(result.process_cpu_percent) == 2
    assert result.connections_opened == 4


def test_an_unpicklable_factory_fails_fast_with_several_processes():
    with pytest.raises((pickle.PicklingError, AttributeError)):  # which one depends on the object
        run_load("http://127.0.0.1:1/", get("/"), seconds=5, warmup=0, processes=2)


def test_a_failing_factory_is_not_hidden_as_a_request_error():
    def broken(i):
        raise KeyError(i)

    with pytest.raises(KeyError):
        run_load("http://127.0.0.1:1/", broken, concurrency=1, seconds=1, warmup=0)


def test_result_serialises_to_json(server):
    result = run_load(server.url, get("/"), concurrency=1, seconds=5, warmup=0, max_requests=5)

    as_json = json.loads(json.dumps(result.as_dict()))
    assert as_json["requests"] == 5
    assert as_json["latency_ms"]["p99"] > 0
    assert as_json["status_counts"] == {"200": 5}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError):
        run_load("https://example.invalid/", get("/"))
    with pytest.raises(ValueError):
        run_load("http://127.0.0.1:1/", get("/"), seconds=1, warmup=1)


def parse(raw: bytes, head_request: bool = False):
    async def read():
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await read_response(reader, head_request)

    return asyncio.run(read())


@pytest.mark.parametrize(
    "raw, head_request, expected",
    [
        (b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok", False, (200, b"ok", True)),
        (b"HTTP/1.1 200 OK\r\nConnection: Close\r\nContent-Length: 2\r\n\r\nok", False,
         (200, b"ok", False)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nok", False, (200, b"ok", False)),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\nok", False,
         (200, b"ok", True)),
        (b"HTTP/1.1 200 OK\r\n\r\nuntil the end", False, (200, b"until the end", False)),
        (b"HTTP/1.1 204 No Content\r\n\r\n", False, (204, b"", True)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n", True, (200, b"", True)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n",
         False, (200, b"0123456789", True)),
    ],
)
def test_read_response_framing(raw, head_request, expected):
    assert tuple(parse(raw, head_request)) == expected


@pytest.mark.parametrize("raw", [b"SMTP 220 hello\r\n\r\n", b"HTTP/1.1 2xx OK\r\n\r\n",
                                 b"HTTP/1.1 200 OK\r\nContent-Length: many\r\n\r\n"])
def test_read_response_rejects_malformed_answers(raw):
    with pytest.raises(ProtocolError):
        parse(raw)


WRK_OUTPUT = """\
Running 1s test @ http://127.0.0.1:18081/
  1 threads and 8 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    95.35us   98.33us   2.22ms   96.26%
    Req/Sec    88.08k    12.57k  110.06k    63.64%
  Latency Distribution
     50%   80.00us
     75%  107.00us
     90%  143.00us
     99%    1.19s
  95922 requests in 1.10s, 7.14MB read
  Socket errors: connect 0, read 3, write 0, timeout 2
  Non-2xx or 3xx responses: 7
Requests/sec:  87203.40
Transfer/sec:      6.49MB
"""


def test_wrk_output_parses_into_a_load_result():
    result = parse_wrk_output(WRK_OUTPUT, cpu_seconds=0.55)

    assert result.tool == "wrk"
    assert result.requests == 95922 and result.seconds == pytest.approx(1.1)
    assert result.requests_per_second == pytest.approx(87203.40)
    assert (result.latency_ms.p50, result.latency_ms.p90) == pytest.approx((0.08, 0.143))
    assert result.latency_ms.p99 == pytest.approx(1190.0)
    assert result.latency_ms.max == pytest.approx(2.22)
    assert result.errors == {"read": 3, "timeout": 2, "non-2xx/3xx": 7}
    assert result.cpu_percent == pytest.approx(50.0)
    assert result.connections_opened is None
    assert "wrk: 95922 responses" in format_result(result)


@pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")
def test_run_wrk_against_the_server(server):
    script = 'wrk.method = "POST"\nwrk.body = "message_id=1"\n'
    result = run_wrk(server.url + "/echo", script, seconds=1, connections=2, threads=1)

    assert result.requests > 0 and result.requests_per_second > 0
    assert server.received[0] == b"message_id=1"
