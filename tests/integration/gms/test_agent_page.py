"""The agent page in a real headless Chromium (driven over the DevTools protocol),
with a customer chatting through the Chat API on the other side."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
import requests

from tests.chromium import CHROMIUM, Cdp, running_chromium
from tests.integration.gms.conftest import AGENT, AGENT_PASSWORD
from tests.integration.workers import wait_until

CHAT = "/genesys/1/service/{id}/ixn/chat"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")
def test_agent_page_in_chromium(gms, live_server, tmp_path):
    base = live_server()
    customer = {**gms.auth()}
    sid = requests.post(f"{base}/genesys/1/service/request-chat", headers=customer, timeout=5).json()["_id"]
    requests.post(f"{base}{CHAT.format(id=sid)}", headers=customer, timeout=5,
                  data={"nickname": "Kristi", "subject": "Broken <b>phone</b>"}).raise_for_status()
    requests.post(f"{base}{CHAT.format(id=sid)}/send", headers=customer, timeout=5,
                  data={"message": "Hello, my phone <script>x()</script> is broken"}).raise_for_status()

    with running_chromium(tmp_path / "chromium") as ws_url:
        asyncio.run(asyncio.wait_for(_agent_session(base, ws_url, sid, customer, tmp_path), 45))


async def _agent_session(base: str, ws_url: str, sid: str, customer: dict, tmp_path: Path) -> None:
    async with aiohttp.ClientSession() as http, http.ws_connect(ws_url, max_msg_size=0) as ws:
        page = Cdp(ws)
        await page.call("Page.enable")
        await page.call("Page.navigate", url=f"{base}/genesys/agent/")
        await page.wait_for("document.readyState === 'complete' && !!document.getElementById('login')")

        await page.eval(f"""
            document.getElementById('login-name').value = {json.dumps(AGENT)};
            document.getElementById('login-password').value = {json.dumps(AGENT_PASSWORD)};
            document.getElementById('login-button').click(); true""")
        await page.wait_for("document.getElementById('status').textContent === 'signed in as Alice'")
        assert await page.eval("getComputedStyle(document.getElementById('login')).display") == "none"
        await page.wait_for(f"!!document.querySelector('#waiting li[data-id=\"{sid}\"] button.accept')")
        # customer text is shown as text, never as markup
        assert await page.eval("document.querySelector('#waiting li span').textContent") == \
            "Kristi — Broken <b>phone</b>"
        await page.eval(f"document.querySelector('#waiting li[data-id=\"{sid}\"] button.accept').click(); true")

        await page.wait_for("[...document.querySelectorAll('#transcript .entry.CLIENT .text')]"
                            ".some(e => e.textContent.includes('<script>x()</script> is broken'))")
        assert await page.eval("document.querySelectorAll('#transcript script').length") == 0
        await page.wait_for(f"!!document.querySelector('#active li[data-id=\"{sid}\"]')")

        await page.eval("""
            const box = document.getElementById('message');
            box.value = 'Sorry to hear that, Kristi. Let me help.';
            box.dispatchEvent(new Event('input'));
            document.getElementById('send').click(); true""")

        def customer_sees(text: str) -> bool:
            body = requests.post(f"{base}{CHAT.format(id=sid)}/refresh", headers=customer, timeout=5).json()
            return any(e[0] == "Message.Text" and e[4] == "AGENT" and e[2] == text for e in body["transcriptToShow"])

        await asyncio.to_thread(wait_until, lambda: customer_sees("Sorry to hear that, Kristi. Let me help."),
                                timeout=10, interval=0.1)  # the customer receives the agent's reply

        await asyncio.to_thread(lambda: requests.post(
            f"{base}{CHAT.format(id=sid)}/startTyping", headers=customer, timeout=5).raise_for_status())
        await page.wait_for("document.getElementById('typing').textContent === 'Kristi is typing…'")
        await asyncio.to_thread(lambda: requests.post(
            f"{base}{CHAT.format(id=sid)}/send", headers=customer, timeout=5,
            data={"message": "Thanks!"}).raise_for_status())
        await page.wait_for("[...document.querySelectorAll('#transcript .entry.CLIENT .text')]"
                            ".some(e => e.textContent === 'Thanks!')")

        await page.screenshot(tmp_path / "agent-page.png")

        await page.eval("document.getElementById('end').click(); true")
        await page.wait_for("document.getElementById('conversation').dataset.state === 'DISCONNECTED'")
        final = await asyncio.to_thread(lambda: requests.post(
            f"{base}{CHAT.format(id=sid)}/refresh", headers=customer, timeout=5).json())
        assert final["chatIxnState"] == "DISCONNECTED"
        assert final["transcriptToShow"][-1][:2] == ["Notice.Left", "Alice"]
