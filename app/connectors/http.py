"""The HTTP carrier connector: one request per message to a carrier's HTTP API,
described by a parameter template, so one smsagg can use another smsagg (the Genesys
API) or a ``/bulksms/bulksms``-style provider as its carrier.

Carrier settings (``smsagg carrier add --http URL`` plus the stored settings):

``url``            the endpoint
``preset``         ``genesys`` (default) or ``bulksms``: the template, success test
                   and error table of that API; anything below overrides it
``method``         ``POST`` (form body) or ``GET`` (query string)
``params``         name -> template; ``{destination}``, ``{source}``, ``{text}``,
                   ``{message_id}``, ``{receipt}`` (TRUE/FALSE), ``{dlr}`` (1/0) and
                   ``{type}`` (the bulk API's message type, :func:`bulk_type`) are
                   filled in, everything else is sent as written (credentials)
``success``        regex on the body that means "accepted"; group ``id`` (if any) is
                   the carrier's message id
``codes``          regex with group ``code`` finding the carrier's error code, and
``code_status``    that code -> SMPP command_status (so :mod:`app.domain.smpp_status`
                   classifies it like any SMPP answer)
``unknown_code_status`` the status of a code not in ``code_status``: ``genesys`` 0x45
                   (transient), ``bulksms`` 0x65 (permanent: the seed retries 1709 only)

``mms``            whether the carrier takes MMS (default: the preset's; ``genesys``
                   yes, ``bulksms`` no). An MMS goes out as the text plus the
                   client's attachments, ``mms_attachment[n].content_type`` /
                   ``mms_attachment[n].content`` (base64), the seed 000 MT fields

``timeout``        seconds for connecting and for each read (default 15)
``concurrency``    requests in flight at once for a batch of messages (default 8)

HTTP 429 is throttling (0x58), other non-2xx and unreadable bodies are transient
system errors (0x08); no answer within the timeout is ``CONNECTION_LOST``. Every
segment of the message shares the one answer.
"""

from __future__ import annotations

import base64
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from app.connectors.base import CONNECTION_LOST, SegmentResult
from app.domain.encoding import Encoding
from app.domain.mms import client_attachments
from app.domain.outbound import Submission
from app.domain.smpp_status import CommandStatus

DEFAULT_TIMEOUT = 15.0
DEFAULT_CONCURRENCY = 8
ESME_RSYSERR, ESME_RTHROTTLED = CommandStatus.ESME_RSYSERR, CommandStatus.ESME_RTHROTTLED
ESME_RSUBMITFAIL, ESME_RINVDSTADR = CommandStatus.ESME_RSUBMITFAIL, CommandStatus.ESME_RINVDSTADR
UNMAPPED_REFUSAL = CommandStatus.ESME_RINVMSGID  # a permanent refusal with no closer SMPP status: DR result code 99

# Seed 001's error table as SMPP statuses, so one table (app.domain.smpp_status) decides.
# The seed: "Apart from error code 1709, please do NOT retry re-sending the message for
# any other error code" and "For error code 1715, do NOT re-submit". So 1709 (user
# validation failed) is the one TRANSIENT status; every other code is PERMANENT, with the
# DR result code (seed 000) its meaning calls for: 98 where the fault is in our request or
# our carrier settings (1702 a parameter missing, 1703 credentials, 1704/1708 type or dlr
# refused, 16/18 the carrier's IP lists), 1 where the carrier refuses the message (1710,
# 69, 8 its internal errors, 1725 credit, 1028 spam, 1033 template, 1732/1042 DND, 1706
# destination), 8 for the message (1705), 5 for the source (1707). 1715 ("response
# timeout": the carrier may have it) and 1041 (a duplicate: it has it) count as taken:
# any other answer would send the message again, here or on a fail-over carrier. Any
# other code, such as an SMPP status the carrier passes on in decimal (the seed's note;
# its own rows 69 and 8 are ESME_RSUBMITFAIL and ESME_RSYSERR), is refused upstream
# for good: "including SMPP v3.4 Error codes".
_PERMANENT_OURS = CommandStatus.ESME_RMISSINGOPTPARAM  # PERMANENT, result code 98
_PERMANENT_SETUP = CommandStatus.ESME_RINVSYSTYP  # PERMANENT, result code 98 (the account's setup)
_PERMANENT_VALUE = CommandStatus.ESME_RINVOPTPARAMVAL  # PERMANENT, result code 98
_PERMANENT_UPSTREAM = CommandStatus.ESME_RX_P_APPN  # PERMANENT, result code 1 (refused upstream)
_TAKEN = CommandStatus.ESME_ROK
BULKSMS_CODE_STATUS: dict[str, int] = {
    "1702": _PERMANENT_OURS, "1703": _PERMANENT_SETUP, "1704": _PERMANENT_VALUE,
    "1705": CommandStatus.ESME_RINVMSGLEN, "1706": ESME_RINVDSTADR, "1707": CommandStatus.ESME_RINVSRCADR,
    "1708": _PERMANENT_VALUE, "1709": CommandStatus.ESME_RINVPASWD,
    "1710": _PERMANENT_UPSTREAM, "1715": _TAKEN, "1725": _PERMANENT_UPSTREAM, "1732": ESME_RINVDSTADR,
    "1028": _PERMANENT_UPSTREAM, "1041": _TAKEN, "1042": ESME_RINVDSTADR, "1033": _PERMANENT_UPSTREAM,
    "69": _PERMANENT_UPSTREAM, "8": _PERMANENT_UPSTREAM, "16": _PERMANENT_SETUP, "18": _PERMANENT_SETUP,
}

PRESETS: dict[str, dict[str, Any]] = {
    "genesys": {
        "method": "POST",
        "params": {"phone_number": "{destination}", "sender": "{source}", "message": "{text}",
                   "message_id": "{message_id}", "receipt": "{receipt}"},
        "success": r"^result_code=0\s*$",
        "codes": r"result_code=(?P<code>\d+)",
        "mms": True,
        # seed 000 result codes: 7 duplicate = it already has the message; 98 retried.
        "unknown_code_status": ESME_RSUBMITFAIL,
        "code_status": {"1": UNMAPPED_REFUSAL, "2": CommandStatus.ESME_RINVPASWD, "3": ESME_RINVDSTADR,
                        "4": CommandStatus.ESME_RINVSRCTON, "5": CommandStatus.ESME_RINVSRCADR,
                        "6": ESME_RTHROTTLED, "7": CommandStatus.ESME_ROK, "8": CommandStatus.ESME_RINVMSGLEN,
                        "98": ESME_RSYSERR, "99": UNMAPPED_REFUSAL},
    },
    "bulksms": {
        "method": "GET",
        "params": {"type": "{type}", "dlr": "{dlr}", "destination": "{destination}", "source": "{source}",
                   "message": "{text}"},
        "success": r"^1701\|[^|]*\|(?P<id>[^,\s]+)",
        "codes": r"^(?P<code>\d+)",
        "mms": False,
        "code_status": BULKSMS_CODE_STATUS,
        "unknown_code_status": _PERMANENT_UPSTREAM,
    },
}


def bulk_type(submission: Submission) -> str:
    """The bulk API's ``type`` for a submission (seed 001, parameter 3): 0 plain GSM,
    1 flash GSM, 2 Unicode, 4 WAP Push, 5 plain Latin-1, 6 Unicode flash, 7 flash Latin-1."""
    if submission.wap_push:
        return "4"
    plain, flash = {Encoding.UCS2: ("2", "6"), Encoding.LATIN1: ("5", "7")}.get(submission.encoding, ("0", "1"))
    return flash if submission.flash else plain


def carries_mms(settings: dict[str, Any]) -> bool:
    """Whether an HTTP carrier with these settings takes MMS (``mms``, else its preset's)."""
    preset = PRESETS.get(settings.get("preset", "genesys"), {})
    return bool(settings.get("mms", preset.get("mms", False)))


class HttpConnector:
    def __init__(self, settings: dict[str, Any]):
        preset = PRESETS[settings.get("preset", "genesys")]
        self.url = settings["url"]
        self.method = settings.get("method", preset["method"]).upper()
        self.params = {**preset["params"], **settings.get("params", {})}
        self.success = re.compile(settings.get("success", preset["success"]))
        self.codes = re.compile(settings.get("codes", preset["codes"]))
        self.code_status = {**preset["code_status"], **settings.get("code_status", {})}
        self.unknown_code_status = int(settings.get("unknown_code_status", preset["unknown_code_status"]))
        self.timeout = float(settings.get("timeout", DEFAULT_TIMEOUT))
        self._pool = ThreadPoolExecutor(int(settings.get("concurrency", DEFAULT_CONCURRENCY)),
                                        thread_name_prefix="http-carrier")

    def submit(self, submission: Submission) -> list[SegmentResult]:
        """One answer for every segment. A carrier that returns no id of its own (the
        Genesys API answers just ``result_code=0``) knows the message by the
        ``message_id`` we sent it: our id, which its receipts then carry."""
        status, carrier_id, detail = self._send(submission)
        accepted_id = carrier_id or submission.message_id
        return [SegmentResult(s.seq, status, accepted_id if status == 0 else None, detail) for s in submission.segments]

    def submit_many(self, submissions: list[Submission]) -> list[list[SegmentResult]]:
        return list(self._pool.map(self.submit, submissions))

    def _fields(self, submission: Submission) -> dict[str, str]:
        values = {
            "destination": submission.destination, "source": submission.source, "text": submission.text,
            "message_id": submission.message_id, "receipt": "TRUE" if submission.registered_delivery else "FALSE",
            "dlr": "1" if submission.registered_delivery else "0", "type": bulk_type(submission),
        }
        fields = {name: template.format_map(values) for name, template in self.params.items()}
        if submission.mms is not None:
            for index, attachment in enumerate(client_attachments(submission.mms)):
                fields[f"mms_attachment[{index}].content_type"] = attachment.content_type
                fields[f"mms_attachment[{index}].content"] = base64.b64encode(attachment.content).decode("ascii")
        return fields

    def _send(self, submission: Submission) -> tuple[int, str | None, str]:
        data = urllib.parse.urlencode(self._fields(submission)).encode()
        if self.method == "GET":
            request = urllib.request.Request(f"{self.url}{'&' if '?' in self.url else '?'}{data.decode()}")
        else:
            request = urllib.request.Request(self.url, data=data, method="POST",
                                             headers={"Content-Type": "application/x-www-form-urlencoded"})
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                return self._interpret(response.read(64 * 1024).decode("utf-8", "replace"))
        except urllib.error.HTTPError as exc:
            return (ESME_RTHROTTLED if exc.code == 429 else ESME_RSYSERR), None, f"HTTP {exc.code}"
        except (urllib.error.URLError, socket.timeout, ConnectionError, TimeoutError) as exc:
            return CONNECTION_LOST, None, f"no answer: {exc}"

    def _interpret(self, body: str) -> tuple[int, str | None, str]:
        match = self.success.search(body)
        if match:
            return 0, (match.groupdict().get("id") or None), body[:200]
        code = self.codes.search(body)
        if code is None:
            return ESME_RSYSERR, None, f"unreadable answer: {body[:200]!r}"
        return int(self.code_status.get(code.group("code"), self.unknown_code_status)), None, body[:200]

    def connect(self) -> None:
        """Nothing to open: one request per message."""

    def close(self) -> None:
        """No connection is held open between requests; the batch threads stop."""
        self._pool.shutdown(wait=False)

