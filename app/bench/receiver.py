"""A client's callback endpoint for benchmarks: an aiohttp server (its own process)
that answers 200 and appends ``<arrival epoch>\t<path>\t<message_id>\t<message_state>``
per request to a file, flushed every 0.2 s and on exit. The fields come from a POST's
form body (smsagg's callbacks) or a GET's query string (Kannel's ``dlr-url``).

``python -m app.bench.receiver --port N --out FILE [--host ADDRESS]`` (default 127.0.0.1)

``PUT /_status/503`` makes it answer every callback with that status from then on (a
client endpoint that is down; such callbacks are not written), ``PUT /_status/200``
brings it back (the fault suite, ``app.bench.faults``).
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import time
from urllib.parse import parse_qsl

from aiohttp import web


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    asyncio.run(_serve(args.host, args.port, args.out))


async def _serve(host: str, port: int, out_path: str) -> None:
    lines: list[str] = []
    answer = {"status": 200}

    async def record(request: web.Request) -> web.Response:
        body = await request.read()
        if answer["status"] >= 300:
            return web.Response(status=answer["status"], text="down")
        fields = dict(request.query)
        fields.update(parse_qsl(body.decode(), keep_blank_values=True))
        lines.append(f"{time.time():.6f}\t{request.path}\t{fields.get('message_id', '')}\t"
                     f"{fields.get('message_state', '')}\n")
        return web.Response(text="")

    async def set_status(request: web.Request) -> web.Response:
        answer["status"] = int(request.match_info["status"])
        return web.Response(text=str(answer["status"]))

    app = web.Application()
    app.router.add_put("/_status/{status:[0-9]{3}}", set_status)
    app.router.add_post("/{tail:.*}", record)
    app.router.add_get("/{tail:.*}", record)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port, backlog=1024).start()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    with open(out_path, "a", encoding="utf-8") as out:
        while not stop.is_set():
            try:
                await asyncio.wait_for(stop.wait(), 0.2)
            except TimeoutError:
                pass
            out.writelines(lines)
            out.flush()
            lines.clear()
    await runner.cleanup()


if __name__ == "__main__":
    main()
