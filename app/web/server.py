"""Running the ingress under its HTTP server: granian (default) or gunicorn
(``SMSAGG_WEB_SERVER``).

granian parses HTTP in Rust (hyper) and hands each request to one of a worker
process's blocking Python threads; gunicorn's ``gthread`` workers parse it in Python.
On the same app granian costs a quarter to a third less CPU per request
(docs/performance.md), the ingress being the stage furthest over its CPU budget. gunicorn stays for what
granian cannot do:

* **header names with an underscore.** Both servers map ``X_Forwarded_For`` and
  ``X-Forwarded-For`` to the same WSGI key. gunicorn drops such names (all but GMS's
  ``gms_user``); granian keeps them, the last spelling winning, and gives the app no
  way to tell. Behind a trusted proxy (``SMSAGG_TRUSTED_PROXIES``) the proxy must then
  drop them (deploy/nginx does), or the ingress runs under gunicorn.
* **request lines past 64 KiB.** hyper refuses a request target longer than 65,534
  bytes with a bare 414, a bound no setting moves; ``app.settings`` keeps
  ``SMSAGG_MAX_REQUEST_LINE`` at most half of it under granian.

Either way each worker process builds its own app, Redis client and database engine
after the fork, and starts its heartbeat (``smsagg status``) as it starts. A worker
stops when its server process dies (gunicorn's workers watch their parent; granian's
are told by the kernel, below), so a killed ``smsagg web`` leaves no worker serving
its port or beating for it.
"""

from __future__ import annotations

import ctypes
import functools
import multiprocessing
import multiprocessing.util
import os
import signal
import sys
from collections.abc import Callable

from flask import Flask
from granian import Granian
from granian.constants import Interfaces
from granian.http import HTTP1Settings

from app.settings import GRANIAN_REQUEST_TARGET_LIMIT

WORKER_STOP_SECONDS = 10
"""How long a stopping worker may finish the requests in hand before it is killed."""

KEEPALIVE_SECONDS = 30
"""How long an idle keep-alive connection is kept open."""

BACKLOG = 2048


def default_app() -> Flask:
    from app.web import create_app

    return create_app()


_PR_SET_PDEATHSIG = 1


def _stop_with_the_server() -> None:
    """Have the kernel send this worker SIGTERM (granian then stops it gracefully) when
    the server process that forked it dies (Linux; granian forks from its main thread,
    which lives as long as the process). If it died already, stop now."""
    server = multiprocessing.parent_process()
    if sys.platform != "linux" or server is None:
        return
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != server.pid:
        sys.exit(0)


def _started(factory: Callable[[], Flask]) -> Flask:
    """``factory()``'s app with its heartbeat running: called in each worker process."""
    _stop_with_the_server()
    app = factory()
    heartbeat = app.extensions.get("smsagg", {}).get("heartbeat")
    if heartbeat is not None:
        heartbeat.start()
        if multiprocessing.parent_process() is not None:
            # a granian worker is a multiprocessing child, which ends in os._exit: atexit
            # (and the weakref.finalize of app.web.heartbeat) never runs there, but
            # multiprocessing's own exit finalizers do, so its part goes at once
            multiprocessing.util.Finalize(None, heartbeat.stop, exitpriority=0)
    return app


def server_request_line_limit(app_limit: int, server: str) -> int:
    """The server's own request-line bound, past which it refuses a line with a bare 414
    before the app sees it. Twice ``SMSAGG_MAX_REQUEST_LINE`` under gunicorn (which is
    told so), so a line between the two reaches the app, which answers it in the API's
    own format. granian's is hyper's fixed target limit (at least twice the setting, as
    ``app.settings`` checks). Finite either way, so no client can stream an endless
    request line into a worker's memory."""
    if server == "granian":  # the line of a GET whose target is as long as hyper takes
        return len("GET  HTTP/1.1") + GRANIAN_REQUEST_TARGET_LIMIT
    return 2 * app_limit


def serve(host: str, port: int, *, server: str, workers: int, threads: int, max_request_line: int,
          factory: Callable[[], Flask] = default_app) -> None:
    """Serve ``factory()``'s app (default: the ingress, :func:`app.web.create_app`)."""
    if server == "gunicorn":
        from app.web.gunicorn_server import serve_gunicorn

        serve_gunicorn(host, port, workers=workers, threads=threads,
                       line_limit=server_request_line_limit(max_request_line, server),
                       load=functools.partial(_started, factory))
    else:
        serve_granian(host, port, workers=workers, threads=threads, factory=factory)


def granian_server(host: str, port: int, *, workers: int, threads: int) -> Granian:
    """granian's settings for the ingress (tests run them around an app of their own)."""
    return Granian(
        "smsagg-ingress", address=host, port=port, interface=Interfaces.WSGI, workers=workers,
        blocking_threads=threads, backlog=BACKLOG, websockets=False,
        # hyper's own head bound stays above the request target's (65,534 bytes)
        http1_settings=HTTP1Settings(keep_alive=True, header_read_timeout=KEEPALIVE_SECONDS * 1000),
        respawn_failed_workers=True, respawn_interval=1.0, workers_kill_timeout=WORKER_STOP_SECONDS,
    )


def serve_granian(host: str, port: int, *, workers: int, threads: int, factory: Callable[[], Flask]) -> None:
    # called in each worker process; a partial of module-level functions, so it also
    # crosses a "spawn" start method
    granian_server(host, port, workers=workers, threads=threads).serve(
        target_loader=functools.partial(_started, factory), wrap_loader=False)
