"""An MMSC simulator: a real MM7 relay/server (3GPP TS 23.140, SOAP over HTTP) for
tests, demos and benchmarks, the MMS counterpart of :mod:`app.smpp.simulator`. The
codec is :mod:`app.domain.mm7`; HTTP is aiohttp, server and client.

What this module promises:

* ``MmscSimulator(config)`` serves ``POST config.path`` (``/mm7``) on
  ``config.host:config.port`` (127.0.0.1; port 0 picks a free one, read back from
  ``sim.port``). With ``config.credentials`` (user -> password) a request needs HTTP
  Basic with one of them (else 401 and an ``RSErrorRsp`` fault, 4001); with none,
  anyone may submit.
* Each ``SubmitReq`` is read whole (SOAP envelope and MIME content). An accepted one
  gets a message id of its own (hex, from a clock-based counter, so ids do not repeat
  across restarts), is appended to ``sim.messages`` as a :class:`ReceivedMms` (its
  content's type and leaf parts, decoded) and is answered ``SubmitRsp`` 1000 with that
  ``MessageID``. A body that is no ``SubmitReq`` gets a SOAP fault (Client; 4004, or
  4003 for another MM7 request).
* When the submit asks for a ``DeliveryReport``, a ``DeliveryReportReq`` goes to
  ``config.vasp_url`` ``config.dr_delay`` seconds later (HTTP Basic
  ``vasp_user``/``vasp_password`` when set), its ``MMStatus`` drawn from
  ``config.outcome_weights`` (``Retrieved``, ``Rejected``, ``Expired``,
  ``Unrecognised``, ``Indeterminate``).
* Every report and MO is kept until the VASP answers 2xx with its ``...Rsp`` of a 1xxx
  status: otherwise (an error status, a fault, no answer within 10 s, no connection)
  it is sent again every ``retry_interval`` seconds (``max(dr_delay, 1)``) while the
  simulator runs. ``sim.reports`` lists each attempt (message id or ``MO``, outcome).
* ``await sim.inject_mo(sender, recipient, text, attachments)`` sends a ``DeliverReq``
  whose content is SMIL-wrapped like an MT's (:mod:`app.domain.mms`), and returns the
  first attempt's outcome.
* Faults, each off by default: ``reject_destination_prefix`` answers 2002 (Address
  Error) for those recipients; ``status_code`` answers every submit with that status
  (a non-1xxx status stores nothing); ``soap_fault`` answers a SOAP fault (Server,
  ``RSErrorRsp`` 3000); ``malformed`` answers HTTP 200 with a body that is no MM7;
  ``response_delay_ms`` delays every answer. None of these store the message.
* Control (``smsagg mmsc-sim inject-mo``): ``POST /control/inject-mo`` on the same
  port, JSON ``{"from", "to", "text", "attachments": [[content_type, base64], ...]}``,
  answered ``{"ok": true, "status": 1000, "accepted": true}`` or ``{"ok": false,
  "error": ...}``; :func:`inject_mo_via_control` is its blocking client.
* ``serve_mmsc(config)`` runs until cancelled; ``run_mmsc_forever`` blocks and stops
  cleanly on SIGINT/SIGTERM.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import random
import signal
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from aiohttp import web

from app.domain import mm7
from app.domain.mms import build_mms
from app.domain.mt_request import Attachment

log = logging.getLogger(__name__)

FINAL_OUTCOMES = ("Retrieved", "Rejected", "Expired", "Unrecognised", "Indeterminate")
MAX_REQUEST_BYTES = 4 * 1024 * 1024
VASP_TIMEOUT_SECONDS = 10.0


@dataclass(frozen=True)
class MmscConfig:
    host: str = "127.0.0.1"
    port: int = 2777
    path: str = "/mm7"
    credentials: dict[str, str] = field(default_factory=dict)  # user -> password; none: anyone
    vasp_url: str | None = None
    vasp_user: str | None = None
    vasp_password: str | None = None
    dr_delay: float = 1.0
    outcome_weights: dict[str, float] = field(default_factory=lambda: {"Retrieved": 1.0})
    reject_destination_prefix: str = ""
    status_code: int = 1000
    soap_fault: bool = False
    malformed: bool = False
    response_delay_ms: float = 0.0
    random_seed: int | None = None

    def __post_init__(self) -> None:
        """Refuse a bad config at start-up rather than misbehave later."""
        unknown = set(self.outcome_weights) - set(FINAL_OUTCOMES)
        if unknown or any(weight < 0 for weight in self.outcome_weights.values()):
            raise ValueError(f"outcome_weights: unknown outcome or negative weight in {self.outcome_weights}")
        if sum(self.outcome_weights.values()) <= 0:
            raise ValueError("outcome_weights: at least one outcome needs a positive weight")

    @property
    def retry_interval(self) -> float:
        return max(self.dr_delay, 1.0)


@dataclass(frozen=True)
class ReceivedMms:
    """An accepted ``SubmitReq``: who sent it, to whom, and its content's parts."""

    message_id: str
    transaction_id: str | None
    vasp_id: str
    vas_id: str
    sender: str
    recipients: tuple[str, ...]
    delivery_report: bool
    content_type: str | None
    parts: tuple[mm7.ContentPart, ...]
    received_at: datetime


@dataclass(frozen=True)
class ReportAttempt:
    subject: str  # the message id of a delivery report, or "MO"
    accepted: bool
    detail: str


class ControlError(RuntimeError):
    """The simulator's control endpoint refused a command."""


class _MessageIds:
    def __init__(self) -> None:
        self._last = time.time_ns() // 1000

    def next(self) -> str:
        self._last += 1
        return f"{self._last:x}"


class MmscSimulator:
    def __init__(self, config: MmscConfig):
        self.config = config
        self.port: int | None = None
        self.messages: list[ReceivedMms] = []
        self.reports: list[ReportAttempt] = []
        self._ids = _MessageIds()
        self._random = random.Random(config.random_seed)
        self._runner: web.AppRunner | None = None
        self._client: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task] = set()
        self._transactions = 0

    async def start(self) -> None:
        app = web.Application(client_max_size=MAX_REQUEST_BYTES)
        app.router.add_post(self.config.path, self._submit)
        app.router.add_post("/control/inject-mo", self._control_inject_mo)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.config.host, self.config.port)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._client = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=VASP_TIMEOUT_SECONDS))
        log.info("mmsc-sim listening on http://%s:%d%s", self.config.host, self.port, self.config.path)

    async def stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._client is not None:
            await self._client.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def __aenter__(self) -> MmscSimulator:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- MM7 submits -------------------------------------------------------------------------

    async def _submit(self, request: web.Request) -> web.Response:
        if self.config.response_delay_ms:
            await asyncio.sleep(self.config.response_delay_ms / 1000)
        if not self._authorized(request):
            response = _fault(401, None, mm7.NAMESPACE, "Client", 4001, "Improper identification")
            response.headers["WWW-Authenticate"] = 'Basic realm="mmsc-sim"'
            return response
        if self.config.malformed:
            return web.Response(status=200, text="<html>not MM7</html>", content_type="text/html")
        body = await request.read()
        try:
            submit = mm7.parse_submit_req(request.headers.get("Content-Type"), body)
        except mm7.UnsupportedMm7 as unsupported:
            return _fault(500, unsupported.transaction_id, unsupported.namespace, "Client", 4003, str(unsupported))
        except mm7.MalformedMm7 as malformed:
            return _fault(500, None, mm7.NAMESPACE, "Client", 4004, str(malformed)[:200])
        if self.config.soap_fault:
            return _fault(500, submit.transaction_id, submit.namespace, "Server", 3000, "Server Error")
        prefix = self.config.reject_destination_prefix
        status = 2002 if prefix and any(r.startswith(prefix) for r in submit.recipients) else self.config.status_code
        if mm7.status_for(status).command_status != 0:
            return _answer(submit, status, mm7.status_for(status).name, None)
        received = ReceivedMms(self._ids.next(), submit.transaction_id, submit.vasp_id, submit.vas_id, submit.sender,
                               submit.recipients, submit.delivery_report, submit.content_type, submit.parts,
                               datetime.now(UTC))
        self.messages.append(received)
        if received.delivery_report:
            self._spawn(self._report_later(received))
        return _answer(submit, status, "Success", received.message_id)

    def _authorized(self, request: web.Request) -> bool:
        if not self.config.credentials:
            return True
        scheme, _, encoded = request.headers.get("Authorization", "").partition(" ")
        try:
            user, sep, password = base64.b64decode(encoded, validate=True).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        return scheme.lower() == "basic" and bool(sep) and self.config.credentials.get(user) == password

    # --- delivery reports and MO -------------------------------------------------------------

    async def _report_later(self, message: ReceivedMms) -> None:
        await asyncio.sleep(self.config.dr_delay)
        outcome = mm7.MmStatus.read(self._draw_outcome())
        body = mm7.build_delivery_report_req(
            self._transaction_id("dr"), message.message_id, message.recipients[0], message.sender, outcome,
            outcome.value, datetime.now(UTC))
        await self._until_accepted(message.message_id, body, "DeliveryReportRsp")

    def _draw_outcome(self) -> str:
        names = list(self.config.outcome_weights)
        return self._random.choices(names, weights=[self.config.outcome_weights[n] for n in names])[0]

    async def inject_mo(self, sender: str, recipient: str, text: str,
                        attachments: tuple[Attachment, ...] = ()) -> tuple[int | None, bool]:
        """Send an MO MMS to the VASP; (its first answer's status, whether it was
        accepted). Kept and sent again until it is (module docstring)."""
        if not self.config.vasp_url:
            raise ControlError("no VASP URL configured (--vasp-url)")
        parts = attachments or (Attachment("text/plain; charset=utf-8", text.encode()),)
        content = build_mms(parts, text if attachments else "")
        body = mm7.build_deliver_req(self._transaction_id("mo"), sender, recipient, content)
        first = await self._post(body, "DeliverRsp")
        self.reports.append(ReportAttempt("MO", first[1], first[2]))
        if not first[1]:
            self._spawn(self._until_accepted("MO", body, "DeliverRsp", wait_first=True))
        return first[0], first[1]

    async def _until_accepted(self, subject: str, body: mm7.HttpBody, answer: str, wait_first: bool = False) -> None:
        while True:
            if wait_first:
                await asyncio.sleep(self.config.retry_interval)
            wait_first = True
            if not self.config.vasp_url:
                log.warning("no VASP URL configured: report for %s not sent", subject)
                return
            _, accepted, detail = await self._post(body, answer)
            self.reports.append(ReportAttempt(subject, accepted, detail))
            if accepted:
                return
            log.info("VASP did not accept %s for %s (%s); sent again in %.1fs", answer, subject, detail,
                     self.config.retry_interval)

    async def _post(self, body: mm7.HttpBody, answer: str) -> tuple[int | None, bool, str]:
        headers = {"Content-Type": body.content_type, "SOAPAction": '""'}
        if self.config.vasp_user is not None:
            credentials = f"{self.config.vasp_user}:{self.config.vasp_password or ''}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(credentials).decode("ascii")
        try:
            async with self._client.post(self.config.vasp_url, data=body.body, headers=headers) as reply:
                data = await reply.read()
                http_status, content_type = reply.status, reply.headers.get("Content-Type")
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            return None, False, f"no answer: {type(exc).__name__}: {exc}"
        try:
            parsed = mm7.parse_answer(content_type, data, answer)
        except (mm7.MalformedMm7, mm7.UnsupportedMm7) as exc:
            return None, False, f"HTTP {http_status}, no {answer}: {exc}"
        accepted = 200 <= http_status < 300 and parsed.status_code is not None and 1000 <= parsed.status_code < 2000
        return parsed.status_code, accepted, f"HTTP {http_status}, status {parsed.status_code} {parsed.status_text}"

    def _transaction_id(self, kind: str) -> str:
        self._transactions += 1
        return f"mmsc-sim-{kind}-{self._ids.next()}-{self._transactions}"

    def _spawn(self, coroutine) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- control -----------------------------------------------------------------------------

    async def _control_inject_mo(self, request: web.Request) -> web.Response:
        try:
            command = await request.json()
            attachments = tuple(Attachment(str(ct), base64.b64decode(content, validate=True))
                                for ct, content in command.get("attachments") or [])
            status, accepted = await self.inject_mo(str(command["from"]), str(command["to"]),
                                                    str(command.get("text") or ""), attachments)
        except (ValueError, KeyError, TypeError, binascii.Error, ControlError) as exc:
            return web.json_response({"ok": False, "error": f"{type(exc).__name__}: {exc}"}, status=400)
        return web.json_response({"ok": True, "status": status, "accepted": accepted})


def _answer(submit: mm7.ReceivedSubmit, status: int, text: str, message_id: str | None) -> web.Response:
    body = mm7.build_answer("SubmitRsp", submit.transaction_id, status, text, namespace=submit.namespace,
                            message_id=message_id)
    return web.Response(status=200, body=body.body, headers={"Content-Type": body.content_type})


def _fault(status: int, transaction_id: str | None, namespace: str, fault: str, code: int, text: str) -> web.Response:
    body = mm7.build_fault(transaction_id, fault, code, text, error="RSErrorRsp", namespace=namespace)
    return web.Response(status=status, body=body.body, headers={"Content-Type": body.content_type})


async def serve_mmsc(config: MmscConfig) -> None:
    """Run the simulator until this coroutine is cancelled."""
    async with MmscSimulator(config):
        await asyncio.Event().wait()


def run_mmsc_forever(config: MmscConfig) -> None:
    """Blocking entry point for the CLI; SIGINT or SIGTERM stop it cleanly."""
    asyncio.run(_serve_until_signalled(config))


async def _serve_until_signalled(config: MmscConfig) -> None:
    serving = asyncio.create_task(serve_mmsc(config))
    loop = asyncio.get_running_loop()
    for signal_number in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signal_number, serving.cancel)
    with contextlib.suppress(asyncio.CancelledError):
        await serving
    log.info("mmsc-sim stopped")


def inject_mo_via_control(url: str, sender: str, recipient: str, text: str,
                          attachments: tuple[Attachment, ...] = (), timeout: float = 15.0) -> tuple[int | None, bool]:
    """Ask a running simulator (``url``: its base, e.g. ``http://127.0.0.1:2777``) to
    send an MO; returns (the VASP's first status, accepted) or raises ControlError."""
    command = {"from": sender, "to": recipient, "text": text,
               "attachments": [[a.content_type, base64.b64encode(a.content).decode("ascii")] for a in attachments]}
    request = urllib.request.Request(url.rstrip("/") + "/control/inject-mo", data=json.dumps(command).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            reply = json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        with exc:
            reply = json.loads(exc.read() or b"{}")
    if not reply.get("ok"):
        raise ControlError(reply.get("error", "the simulator refused the command"))
    return reply.get("status"), bool(reply.get("accepted"))
