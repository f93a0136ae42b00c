"""The operator console in a real headless Chromium (DevTools protocol, tests/chromium.py)
against a real gateway: ``smsagg web`` (gunicorn) on a free 127.0.0.1 port, a real
worker bound over SMPP to the SMSC simulator, a real client endpoint. An operator logs
in, sees the parts and the bind up, finds a message, replays a dead-lettered DR to the
endpoint (which now answers 200) and cancels a scheduled batch. Screenshots go to the
test's tmp_path only."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
import requests

from app.bulk.store import BulkStore
from app.db.models import Account, Callback, Message
from app.db.session import session_scope
from tests.chromium import CHROMIUM, Cdp, running_chromium
from tests.conftest import free_port
from tests.integration.conftest import PASSWORD
from tests.integration.console.conftest import OPERATOR, OPERATOR_PASSWORD
from tests.integration.receiver import Receiver
from tests.integration.simulator import running_simulator
from tests.integration.test_end_to_end import ALL, configure
from tests.integration.workers import port_open, running, wait_until, worker_ready

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
STARTUP_SECONDS = 90  # generous: the machine's two cores may be shared with much else
PAGE_SECONDS = 45


def _dead_callbacks(database_url: str) -> list[tuple[str, str]]:
    """(callback id, message_state) of the dead DR callbacks."""
    with session_scope(database_url) as session:
        return [(c.id, dict(c.fields)["message_state"])
                for c in session.query(Callback).filter_by(status="dead").order_by(Callback.created_at)]


def _schedule(base: str) -> str:
    due = datetime.now(UTC) + timedelta(days=7)
    body = requests.post(f"{base}/bulksms/schedulemsg", timeout=30, data={
        "username": "acme", "password": PASSWORD, "type": "0", "dlr": "1", "source": "99222",
        "destination": "12025550100,12025550101", "message": "Next week's campaign",
        "date": due.strftime("%m/%d/%Y"), "time": "09:30 am", "gmt": "GMT +0:00"}).text
    assert body.startswith("1701|"), body
    return body.split("|")[2][:24]


@pytest.mark.timeout(2 * STARTUP_SECONDS + 300)
def test_operator_flows_in_chromium(gateway, operator, tmp_path, redis_client):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    worker_log, web_log = tmp_path / "worker.log", tmp_path / "web.log"
    with Receiver() as receiver, running_simulator(dr_delay=0.2) as smsc:
        receiver.script("/dr", [500, 500])
        configure(gateway, smsc.port, receiver)
        with session_scope(gateway.database_url) as session:
            session.get(Account, 1).callback_max_retries = 0  # the first failure dead-letters a DR
        with running(["worker", "--queues", ALL, "--pool", "threads", "--concurrency", "6"], gateway, worker_log,
                     ready=worker_ready(worker_log), timeout=STARTUP_SECONDS), \
                running(["web", "--port", str(port), "--workers", "1", "--threads", "4"], gateway, web_log,
                        ready=port_open(port), timeout=STARTUP_SECONDS):
            answer = requests.post(f"{base}/httpapi/receiver", timeout=30, data={
                "login": "acme", "password": PASSWORD, "phone_number": "12025550100", "sender": "99222",
                "message": "Hello from the browser test", "message_id": "browser-1", "receipt": "TRUE"}).text
            assert answer.strip() == "result_code=0"
            dead = wait_until(lambda: (lambda d: d if len(d) == 2 else None)(_dead_callbacks(gateway.database_url)),
                              timeout=120)
            final_dr = next(callback_id for callback_id, state in dead if state == "2")
            batch_id = _schedule(base)

            with running_chromium(tmp_path / "chromium") as ws_url:
                asyncio.run(asyncio.wait_for(_operator_session(base, ws_url, final_dr, batch_id, tmp_path), 240))

            wait_until(lambda: any(p.form.get("message_state") == "2" for p in receiver.received("/dr")[2:]),
                       timeout=60)
    with session_scope(gateway.database_url) as session:
        replayed = session.get(Callback, final_dr)
        assert replayed.status == "delivered" and [a.status_code for a in replayed.attempt_log] == [500, 200]
        assert session.query(Message).filter_by(client_message_id="browser-1").one().state == 2
    assert [state for _, state in _dead_callbacks(gateway.database_url)] == ["6"]  # the other one was left alone
    store = BulkStore(redis_client, gateway.key_prefix)
    assert redis_client.hget(store.keys.batch(batch_id), "state") == b"cancelled"
    assert redis_client.zscore(store.keys.schedule(), batch_id) is None


async def _operator_session(base: str, ws_url: str, final_dr: str, batch_id: str, shots: Path) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        page = Cdp(ws)
        for domain in ("Page", "Runtime", "Log"):
            await page.call(f"{domain}.enable")

        async def leave(action: str, expression: str) -> None:
            """Run ``action`` (JavaScript that leaves the page), then wait for the next page,
            loaded, to satisfy ``expression`` (the mark tells the old document from the new)."""
            await page.eval(f"window.leaving = true; {action}; true")
            await page.wait_for(f"!window.leaving && document.readyState === 'complete' && ({expression})",
                                PAGE_SECONDS)

        async def open_page(path: str, expression: str) -> None:
            await page.eval("window.leaving = true")
            await page.call("Page.navigate", url=base + path)
            await page.wait_for(f"!window.leaving && document.readyState === 'complete' && ({expression})",
                                PAGE_SECONDS)

        # Log in: the console sends the operator to the login page first.
        await open_page("/console/", "!!document.getElementById('login-form')")
        assert await page.eval("location.pathname") == "/console/login"
        await leave(f"""
            document.getElementById('login').value = {json.dumps(OPERATOR)};
            document.getElementById('password').value = {json.dumps(OPERATOR_PASSWORD)};
            document.getElementById('login-button').click()""",
                    "location.pathname === '/console/' && !!document.getElementById('status')")

        # Live status: the ingress and the worker beat, the worker's bind to the simulator is up.
        await page.wait_for("document.querySelector('[data-count=\"worker\"]').textContent === '1' && "
                            "document.querySelector('[data-count=\"ingress\"]').textContent === '1' && "
                            "!!document.querySelector('#binds tr[data-carrier=\"99901\"].up')", PAGE_SECONDS)
        assert await page.eval("document.querySelector('#binds tr[data-carrier=\"99901\"] td.num').textContent") == "1/1"
        await page.wait_for("!!document.getElementById('status').dataset.updated", PAGE_SECONDS)  # the JSON refresh ran
        assert await page.eval("document.querySelectorAll('#backlog-chart rect.bar').length") == 6
        await page.screenshot(shots / "status.png")

        # Find a message by the client's message_id, from the search box of every page.
        await leave("""
            const box = document.getElementById('nav-search');
            box.value = 'browser-1';
            box.form.requestSubmit()""",
                    "location.pathname.startsWith('/console/messages/') && !!document.getElementById('timeline')")
        assert await page.eval("document.getElementById('message-id').textContent") == "browser-1"
        assert "delivered" in await page.eval("document.getElementById('message-state').textContent")
        kinds = await page.eval("[...document.querySelectorAll('#timeline tbody tr')].map(r => r.dataset.kind)")
        assert kinds[:3] == ["accepted", "routed", "submitted"] and "receipt" in kinds and "dr callback" in kinds
        assert await page.eval("document.querySelectorAll('#message-callbacks tr.dead').length") == 2
        await page.screenshot(shots / "message.png")

        # Replay the dead-lettered final DR from the dead letters page.
        await leave("[...document.querySelectorAll('header nav a')].find(a => a.textContent === 'Dead letters').click()",
                    f"!!document.querySelector('#callbacks tr[data-callback=\"{final_dr}\"]')")
        await page.screenshot(shots / "dead-letters.png")
        await leave(f"""
            document.querySelector('#callbacks tr[data-callback="{final_dr}"] input[type=checkbox]').checked = true;
            document.getElementById('replay-selected').click()""",
                    f"location.pathname === '/console/callbacks/{final_dr}'")
        assert await page.eval("document.querySelector('.flash').textContent") == "1 callback(s) queued again"
        for _ in range(300):
            if await page.eval("document.getElementById('callback-status').textContent") == "delivered":
                break
            await asyncio.sleep(0.2)
            await leave("location.reload()", "!!document.getElementById('callback-status')")
        else:
            raise AssertionError("the replayed callback was never delivered")
        assert await page.eval("[...document.querySelectorAll('#attempts tbody tr td:nth-child(2)')]"
                               ".map(td => td.textContent)") == ["500", "200"]

        # Cancel the scheduled batch (the button asks first).
        await open_page("/console/schedules", f"!!document.querySelector('#scheduled tr[data-batch=\"{batch_id}\"]')")
        await page.screenshot(shots / "schedules.png")
        # The click waits in a timer: the confirmation blocks the page until it is answered.
        await page.eval(f"window.leaving = true; setTimeout(() => document.querySelector("
                        f"'#scheduled tr[data-batch=\"{batch_id}\"] button.cancel').click(), 0); true")
        dialog = await page.event("Page.javascriptDialogOpening", PAGE_SECONDS)
        assert dialog["type"] == "confirm" and batch_id in dialog["message"]
        await page.call("Page.handleJavaScriptDialog", accept=True)
        await page.wait_for("!window.leaving && document.readyState === 'complete' && "
                            f"!document.querySelector('#scheduled tr[data-batch=\"{batch_id}\"]')", PAGE_SECONDS)
        assert await page.eval("document.querySelector('.flash').textContent") == f"batch {batch_id} cancelled"
        assert await page.eval(f"document.querySelector('[data-batch-text=\"{batch_id}\"]').textContent"
                               ".trim().startsWith('cancelled')")

        # Log out.
        await leave("document.getElementById('logout').click()", "!!document.getElementById('login-form')")

        problems = [params for method, params in page.events
                    if method == "Runtime.exceptionThrown"
                    or (method == "Log.entryAdded" and params["entry"]["level"] == "error"
                        and not params["entry"].get("url", "").endswith("/favicon.ico"))]
        assert problems == []  # no script error, no Content-Security-Policy violation
