"""The MM7 carrier connector: each MMS is one ``SubmitReq`` POSTed to an MMSC
(3GPP TS 23.140 over HTTP; the codec is :mod:`app.domain.mm7`).

Carrier settings (``smsagg carrier add --mm7 URL --vasp-id X --vas-id Y`` plus the
stored settings):

``url``              the MMSC's MM7 endpoint
``vasp_id``          ``VASPID``: who smsagg is at the MMSC
``vas_id``           ``VASID``: the service
``service_code``     ``ServiceCode`` (optional; for the MMSC's charging)
``username``,        HTTP Basic credentials (optional)
``password``
``namespace``,       the MM7 schema namespace and ``MM7Version`` written in requests
``mm7_version``      (default ``REL-6-MM7-1-4`` / 6.8.0)
``timeout``          seconds for connecting and for each read (default 15)
``concurrency``      requests in flight at once for a batch (default 8)
``webhook_token``    what the MMSC must present when it POSTs delivery reports and MO
                     to ``/carriers/<id>/mm7`` (:mod:`app.web.carrier_webhooks`)

Answers are data, as for every connector (:mod:`app.connectors.base`): the
``SubmitRsp`` status or the fault's status becomes an SMPP command_status
(:func:`app.domain.mm7.command_status_for`) that :mod:`app.domain.smpp_status`
classifies, and the MMSC's ``MessageID`` is the segment's SMSC id, which its delivery
reports quote. A SOAP fault is read whatever the HTTP status (SOAP 1.1 sends faults
with 500). A body that is no MM7 answer is a transient system error (0x08) unless the
HTTP status says throttling (429: 0x58); no answer within the timeout, or no
connection, is ``CONNECTION_LOST``. Either way the message is retried with backoff,
then failed over or rejected (:mod:`app.services.delivery`): never lost.
"""

from __future__ import annotations

import base64
import socket
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.connectors.base import CONNECTION_LOST, SegmentResult
from app.domain import mm7
from app.domain.outbound import Submission
from app.domain.smpp_status import CommandStatus

DEFAULT_TIMEOUT = 15.0
DEFAULT_CONCURRENCY = 8
MAX_ANSWER_BYTES = 256 * 1024
ESME_RSYSERR, ESME_RTHROTTLED = CommandStatus.ESME_RSYSERR, CommandStatus.ESME_RTHROTTLED
ESME_RINVCMDLEN = CommandStatus.ESME_RINVCMDLEN


class Mm7Connector:
    def __init__(self, settings: dict[str, Any]):
        self.url = settings["url"]
        self.vasp_id = settings["vasp_id"]
        self.vas_id = settings["vas_id"]
        self.service_code = settings.get("service_code") or None
        self.namespace = settings.get("namespace", mm7.NAMESPACE)
        self.version = settings.get("mm7_version", mm7.MM7_VERSION)
        self.timeout = float(settings.get("timeout", DEFAULT_TIMEOUT))
        self._authorization = None
        if settings.get("username") is not None:
            credentials = f"{settings['username']}:{settings.get('password', '')}".encode()
            self._authorization = "Basic " + base64.b64encode(credentials).decode("ascii")
        self._pool = ThreadPoolExecutor(int(settings.get("concurrency", DEFAULT_CONCURRENCY)),
                                        thread_name_prefix="mm7-carrier")

    def submit(self, submission: Submission) -> list[SegmentResult]:
        """One ``SubmitReq``; its answer is the MMS's one segment's."""
        status, message_id, detail = self._send(submission)
        return [SegmentResult(s.seq, status, message_id if status == 0 else None, detail)
                for s in submission.segments]

    def submit_many(self, submissions: list[Submission]) -> list[list[SegmentResult]]:
        return list(self._pool.map(self.submit, submissions))

    def _request(self, submission: Submission) -> mm7.HttpBody:
        return mm7.build_submit_req(mm7.SubmitRequest(
            transaction_id=submission.message_id, vasp_id=self.vasp_id, vas_id=self.vas_id,
            sender=submission.source, recipient=submission.destination, content=submission.mms,
            delivery_report=bool(submission.registered_delivery), service_code=self.service_code,
            namespace=self.namespace, version=self.version))

    def _send(self, submission: Submission) -> tuple[int, str | None, str]:
        try:
            body = self._request(submission)
        except ValueError as exc:
            return ESME_RINVCMDLEN, None, f"cannot build the SubmitReq: {exc}"  # our fault: rejected, 98
        headers = {"Content-Type": body.content_type, "SOAPAction": '""'}
        if self._authorization:
            headers["Authorization"] = self._authorization
        request = urllib.request.Request(self.url, data=body.body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return self._interpret(response.status, response.headers.get("Content-Type"), response.read(MAX_ANSWER_BYTES))
        except urllib.error.HTTPError as exc:
            with exc:
                return self._interpret(exc.code, exc.headers.get("Content-Type"), exc.read(MAX_ANSWER_BYTES))
        except (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError) as exc:
            return CONNECTION_LOST, None, f"no answer: {exc}"

    def _interpret(self, http_status: int, content_type: str | None, body: bytes) -> tuple[int, str | None, str]:
        try:
            answer = mm7.parse_submit_rsp(content_type, body)
        except (mm7.MalformedMm7, mm7.UnsupportedMm7) as exc:
            status = ESME_RTHROTTLED if http_status == 429 else ESME_RSYSERR
            return status, None, f"HTTP {http_status}, no MM7 answer: {exc}"[:300]
        status = answer.command_status
        if answer.status_code is None:
            detail = f"MM7 {answer.fault} fault: {answer.status_text}"
        else:
            detail = f"MM7 {answer.status_code} {mm7.status_for(answer.status_code).name}: {answer.status_text}"
        return status, answer.message_id, detail[:300]

    def connect(self) -> None:
        """Nothing to open: one request per MMS."""

    def close(self) -> None:
        self._pool.shutdown(wait=False)
