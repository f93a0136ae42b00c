"""MM7, the interface between a VASP (smsagg) and an MMS Relay/Server (an MMSC), from
3GPP TS 23.140: SOAP 1.1 messages, with the MMS content as a MIME attachment, over
HTTP. Pure data: building and reading bodies, no I/O.

The exchanges smsagg takes part in:

* ``SubmitReq`` (VASP -> MMSC: one MMS to one recipient), answered ``SubmitRsp``
  with a status and the MMSC's ``MessageID``;
* ``DeliveryReportReq`` (MMSC -> VASP: what became of a submitted MMS, by
  ``MessageID``), answered ``DeliveryReportRsp``;
* ``DeliverReq`` (MMSC -> VASP: an MMS from a handset, MO), answered ``DeliverRsp``;
* a SOAP fault instead of any answer, with an ``RSErrorRsp`` (from an MMSC) or a
  ``VASPErrorRsp`` (from a VASP) carrying an MM7 status in its ``detail``.

On the wire. A message with content is ``multipart/related; type="text/xml";
start="<the SOAP part's Content-ID>"``: the SOAP envelope first, then the MMS content,
which the ``Content href="cid:..."`` element names. A message without content is the
envelope alone (``text/xml``). Both are read; a multipart without ``start`` has its
SOAP envelope first. The MMS content of a submit is the SMIL-wrapped
``multipart/related`` :mod:`app.domain.mms` built (parts base64-encoded, each with its
``Content-ID`` and ``Content-Location``), or the client's own multipart as it came.
The ``TransactionID`` header of a submit is smsagg's message id, the same on every
retry, so an MMSC that de-duplicates by it can.

Namespaces: requests are written in ``REL-6-MM7-1-4`` (``MM7Version`` 6.8.0) unless
told otherwise; any namespace under ``NAMESPACE_ROOT`` (3GPP's schema folder: REL-5
and REL-6 releases alike) is read, and answers are written in the namespace of the
request they answer. Anything else is :class:`MalformedMm7`: not XML, a DTD or entity
declaration (refused outright, defusedxml: no entity expansion, no external fetch), an
envelope outside SOAP 1.1/1.2, a body whose operation is not in an MM7 namespace, a
missing or non-numeric status, broken MIME (no start or close boundary, undecodable
base64), a ``Content href`` naming no part, content nested deeper than
``MAX_CONTENT_DEPTH``, a ``MessageID`` longer than ``MAX_MESSAGE_ID`` characters.

Status codes (TS 23.140, MM7 ``StatusCode``): 1xxx success, 2xxx client errors, 3xxx
server errors, 4xxx service errors. :func:`command_status_for` turns an answer into the
SMPP ``command_status`` that :mod:`app.domain.smpp_status` classifies, so one table
decides retry, throttle and rejection (and the DR ``result_code``, seed 000) for SMPP,
HTTP and MM7 carriers alike. ``STATUS_CODES`` is that table; docs/delivery.md shows it.
"""

from __future__ import annotations

import email.errors
import email.policy
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from email.generator import BytesGenerator
from email.message import EmailMessage, Message
from email.parser import BytesParser
from enum import Enum
from io import BytesIO
from urllib.parse import unquote

import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from app.domain.mms import SMIL_CONTENT_TYPE, MmsPart, MmsPayload
from app.domain.mt_request import Attachment
from app.domain.smpp_status import CommandStatus
from app.domain.states import MessageState

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
SOAP12_ENV = "http://www.w3.org/2003/05/soap-envelope"
NAMESPACE_ROOT = "http://www.3gpp.org/ftp/Specs/archive/23_series/23.140/schema/"
NAMESPACE = NAMESPACE_ROOT + "REL-6-MM7-1-4"
MM7_VERSION = "6.8.0"
SOAP_PART_ID = "mm7-soap"
CONTENT_PART_ID = "mm7-content"
MAX_CONTENT_DEPTH = 3
MAX_MESSAGE_ID = 64
"""Segment ids are stored in 65 characters; an MMSC id longer than this is refused."""

ET.register_namespace("env", SOAP_ENV)
ET.register_namespace("mm7", NAMESPACE)
_POLICY = email.policy.default.clone(linesep="\r\n")
_BROKEN_MIME = (email.errors.StartBoundaryNotFoundDefect, email.errors.CloseBoundaryNotFoundDefect,
                email.errors.NoBoundaryInMultipartDefect, email.errors.MultipartInvariantViolationDefect,
                email.errors.InvalidMultipartContentTransferEncodingDefect,
                email.errors.InvalidBase64PaddingDefect, email.errors.InvalidBase64CharactersDefect,
                email.errors.InvalidBase64LengthDefect)


class MalformedMm7(ValueError):
    """A body that is not a readable MM7 message (see the module docstring)."""


class UnsupportedMm7(ValueError):
    """A readable MM7 request of a kind smsagg does not serve (``CancelReq``, ...)."""

    def __init__(self, kind: str, namespace: str, transaction_id: str | None):
        super().__init__(f"unsupported MM7 request {kind}")
        self.kind, self.namespace, self.transaction_id = kind, namespace, transaction_id


@dataclass(frozen=True)
class HttpBody:
    """What goes over HTTP: the ``Content-Type`` header and the body."""

    content_type: str
    body: bytes


# --- status codes ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Mm7Status:
    code: int
    name: str
    command_status: int
    """The SMPP command_status standing for it: its class and DR result code decide."""


_OK, _UPSTREAM, _ADDRESS = CommandStatus.ESME_ROK, CommandStatus.ESME_RX_P_APPN, CommandStatus.ESME_RINVDSTADR
_OURS_FORMAT, _OURS_OPERATION = CommandStatus.ESME_RINVCMDLEN, CommandStatus.ESME_RINVCMDID
_NOT_A_SUBMIT, _SYSTEM = CommandStatus.ESME_RINVMSGID, CommandStatus.ESME_RSYSERR
_SUBMIT_FAILED, _AUTH = CommandStatus.ESME_RSUBMITFAIL, CommandStatus.ESME_RINVPASWD
_UNKNOWN = CommandStatus.ESME_RUNKNOWNERR

STATUS_CODES: dict[int, Mm7Status] = {status.code: status for status in (
    Mm7Status(1000, "Success", _OK),
    Mm7Status(1100, "Partial success", _OK),  # one recipient: the MMSC took it
    Mm7Status(2000, "Client error", _OURS_FORMAT),
    Mm7Status(2001, "Operation restricted", _UPSTREAM),
    Mm7Status(2002, "Address Error", _ADDRESS),
    Mm7Status(2003, "Address Not Found", _ADDRESS),
    Mm7Status(2004, "Multimedia content refused", _UPSTREAM),
    Mm7Status(2005, "Message ID Not found", _NOT_A_SUBMIT),
    Mm7Status(2006, "LinkedID not found", _NOT_A_SUBMIT),
    Mm7Status(2007, "Message format corrupt", _OURS_FORMAT),
    Mm7Status(2008, "Application ID not found", _NOT_A_SUBMIT),
    Mm7Status(2009, "Reply Application ID not found", _NOT_A_SUBMIT),
    Mm7Status(3000, "Server Error", _SYSTEM),
    Mm7Status(3001, "Not Possible", _SUBMIT_FAILED),
    Mm7Status(3002, "Message rejected", _UPSTREAM),
    Mm7Status(3003, "Multiple addresses not supported", _OURS_OPERATION),
    Mm7Status(3004, "Application Addressing not supported", _OURS_OPERATION),
    Mm7Status(4000, "General service error", _SYSTEM),
    Mm7Status(4001, "Improper identification", _AUTH),
    Mm7Status(4002, "Unsupported version", _OURS_OPERATION),
    Mm7Status(4003, "Unsupported operation", _OURS_OPERATION),
    Mm7Status(4004, "Validation error", _OURS_FORMAT),
    Mm7Status(4005, "Service error", _SYSTEM),
    Mm7Status(4006, "Service unavailable", _SYSTEM),
    Mm7Status(4007, "Service denied", _AUTH),
    Mm7Status(4008, "Application denied", _UPSTREAM),
)}
"""Every TS 23.140 status code. Client errors the MMSC makes of the message or its
recipient are permanent with result code 1; requests we (or our configuration) got
wrong are permanent with 98; statuses that do not answer a submit are permanent with 99;
server and service failures are transient (98), "Not Possible" transient (1), and
identification and service denial transient (2: an operator can fix them, and bounded
retries then failover cover the wait)."""

_FAULT_STATUSES = {"Client": _OURS_FORMAT, "Server": _SYSTEM}
"""A SOAP fault with no MM7 status: SOAP 1.1 (§4.4.1) says a Client fault must not be
resent unchanged (permanent, 98) and a Server fault may succeed later (transient, 98);
VersionMismatch and MustUnderstand are our request's fault (permanent, 98)."""


def status_for(code: int) -> Mm7Status:
    """The table entry for ``code``; an unknown code by its class: 1xxx success, 2xxx
    permanent with result code 99 ("an unmapped error"), anything else transient 99."""
    if code in STATUS_CODES:
        return STATUS_CODES[code]
    if 1000 <= code < 2000:
        return Mm7Status(code, "unknown success", _OK)
    if 2000 <= code < 3000:
        return Mm7Status(code, "unknown client error", _NOT_A_SUBMIT)
    return Mm7Status(code, "unknown status", _UNKNOWN)


# --- what the messages say -------------------------------------------------------------------

@dataclass(frozen=True)
class SubmitRequest:
    """One MMS for one recipient, as smsagg submits it."""

    transaction_id: str
    vasp_id: str
    vas_id: str
    sender: str
    recipient: str
    content: MmsPayload
    delivery_report: bool
    service_code: str | None = None
    namespace: str = NAMESPACE
    version: str = MM7_VERSION


@dataclass(frozen=True)
class ContentPart:
    content_type: str
    content_id: str | None
    data: bytes


@dataclass(frozen=True)
class ReceivedSubmit:
    """A ``SubmitReq`` as an MMSC reads it: the content's type and its leaf parts."""

    transaction_id: str | None
    namespace: str
    vasp_id: str
    vas_id: str
    sender: str
    recipients: tuple[str, ...]
    service_code: str | None
    delivery_report: bool
    content_type: str | None
    parts: tuple[ContentPart, ...]


@dataclass(frozen=True)
class Answer:
    """A ``...Rsp`` or a fault. ``status_code`` is None for a fault without an MM7
    status (``fault`` then says Client, Server, ...)."""

    kind: str
    transaction_id: str | None
    status_code: int | None
    status_text: str
    message_id: str | None = None
    fault: str | None = None

    @property
    def command_status(self) -> int:
        return command_status_for(self)


class MmStatus(Enum):
    """``MMStatus`` of a delivery report (TS 23.140), with the message_state it reports."""

    EXPIRED = "Expired"
    RETRIEVED = "Retrieved"
    REJECTED = "Rejected"
    DEFERRED = "Deferred"
    UNRECOGNISED = "Unrecognised"
    INDETERMINATE = "Indeterminate"
    FORWARDED = "Forwarded"
    DELIVERY_CONDITION_NOT_MET = "DeliveryConditionNotMet"

    @property
    def message_state(self) -> MessageState:
        return _MM_STATES[self]

    @classmethod
    def read(cls, value: str) -> "MmStatus":
        for status in cls:
            if status.value.lower() == value.strip().lower():
                return status
        raise MalformedMm7(f"unknown MMStatus {value!r}")


_MM_STATES = {
    MmStatus.RETRIEVED: MessageState.DELIVERED,
    MmStatus.EXPIRED: MessageState.EXPIRED,
    MmStatus.REJECTED: MessageState.REJECTED,
    MmStatus.UNRECOGNISED: MessageState.UNDELIVERABLE,
    MmStatus.DELIVERY_CONDITION_NOT_MET: MessageState.UNDELIVERABLE,
    MmStatus.DEFERRED: MessageState.ENROUTE,  # the handset put retrieval off: not final
    MmStatus.FORWARDED: MessageState.ENROUTE,  # handed to another relay: not final
    MmStatus.INDETERMINATE: MessageState.UNKNOWN,
}


@dataclass(frozen=True)
class DeliveryReport:
    transaction_id: str | None
    namespace: str
    message_id: str
    recipient: str
    sender: str
    mm_status: MmStatus
    status_text: str


@dataclass(frozen=True)
class DeliveredMms:
    """An MO MMS: its text (the text/plain parts, else the subject) and its other parts
    (the SMIL layout left out) as attachments, in order."""

    transaction_id: str | None
    namespace: str
    sender: str
    recipient: str
    linked_id: str | None
    text: str
    attachments: tuple[Attachment, ...]


def command_status_for(answer: Answer) -> int:
    """The SMPP command_status an answer to a submit stands for."""
    if answer.status_code is not None:
        return status_for(answer.status_code).command_status
    return _FAULT_STATUSES.get(answer.fault or "", _OURS_OPERATION)


# --- building ---------------------------------------------------------------------------------

def build_submit_req(request: SubmitRequest) -> HttpBody:
    """The ``SubmitReq`` body with its content (raises ValueError for content the MIME
    library refuses, e.g. a header with a line break)."""
    operation, ns = _operation("SubmitReq", request.namespace, request.version)
    sender_id = _sub(operation, ns, "SenderIdentification")
    _sub(sender_id, ns, "VASPID", request.vasp_id)
    _sub(sender_id, ns, "VASID", request.vas_id)
    _sub(_sub(sender_id, ns, "SenderAddress"), ns, _address_kind(request.sender), request.sender)
    _sub(_sub(_sub(operation, ns, "Recipients"), ns, "To"), ns, "Number", request.recipient)
    if request.service_code:
        _sub(operation, ns, "ServiceCode", request.service_code)
    _sub(operation, ns, "DeliveryReport", "true" if request.delivery_report else "false")
    _sub(operation, ns, "Content").attrib.update({"href": f"cid:{CONTENT_PART_ID}", "allowAdaptations": "true"})
    return _with_content(_envelope(request.transaction_id, request.namespace, operation), _entity(request.content))


def build_answer(kind: str, transaction_id: str | None, status_code: int, status_text: str, *,
                 namespace: str = NAMESPACE, message_id: str | None = None, version: str = MM7_VERSION) -> HttpBody:
    """A ``SubmitRsp``, ``DeliverRsp`` or ``DeliveryReportRsp``."""
    operation, ns = _operation(kind, namespace, version)
    _status(operation, ns, status_code, status_text)
    if message_id is not None:
        _sub(operation, ns, "MessageID", message_id)
    return _xml_only(_envelope(transaction_id, namespace, operation))


def build_fault(transaction_id: str | None, fault: str, status_code: int, status_text: str, *, error: str,
                namespace: str = NAMESPACE, version: str = MM7_VERSION) -> HttpBody:
    """A SOAP fault (``fault``: Client or Server) with ``error`` (``VASPErrorRsp`` or
    ``RSErrorRsp``) and its MM7 status in the detail."""
    element = ET.Element(f"{{{SOAP_ENV}}}Fault")
    ET.SubElement(element, "faultcode").text = f"env:{fault}"
    ET.SubElement(element, "faultstring").text = status_text
    detail_operation, ns = _operation(error, namespace, version)
    _status(detail_operation, ns, status_code, status_text)
    ET.SubElement(element, "detail").append(detail_operation)
    return _xml_only(_envelope(transaction_id, namespace, element))


def build_delivery_report_req(transaction_id: str, message_id: str, recipient: str, sender: str,
                              mm_status: MmStatus, status_text: str, date: datetime, *,
                              namespace: str = NAMESPACE, version: str = MM7_VERSION) -> HttpBody:
    operation, ns = _operation("DeliveryReportReq", namespace, version)
    _sub(operation, ns, "MessageID", message_id)
    _sub(_sub(operation, ns, "Recipient"), ns, "Number", recipient)
    _sub(_sub(operation, ns, "Sender"), ns, _address_kind(sender), sender)
    _sub(operation, ns, "Date", date.isoformat())
    _sub(operation, ns, "MMStatus", mm_status.value)
    _sub(operation, ns, "StatusText", status_text)
    return _xml_only(_envelope(transaction_id, namespace, operation))


def build_deliver_req(transaction_id: str, sender: str, recipient: str, content: MmsPayload, *,
                      linked_id: str | None = None, namespace: str = NAMESPACE,
                      version: str = MM7_VERSION) -> HttpBody:
    operation, ns = _operation("DeliverReq", namespace, version)
    if linked_id:
        _sub(operation, ns, "LinkedID", linked_id)
    _sub(_sub(operation, ns, "Sender"), ns, "Number", sender)
    _sub(_sub(_sub(operation, ns, "Recipients"), ns, "To"), ns, _address_kind(recipient), recipient)
    _sub(operation, ns, "Content").attrib.update({"href": f"cid:{CONTENT_PART_ID}", "allowAdaptations": "true"})
    return _with_content(_envelope(transaction_id, namespace, operation), _entity(content))


def _address_kind(address: str) -> str:
    """A long number (9+ digits) is a ``Number``; a shortcode or alphanumeric sender
    a ``ShortCode`` (MM7 has no alphanumeric address type)."""
    return "Number" if address.isdigit() and len(address) > 8 else "ShortCode"


def _operation(kind: str, namespace: str, version: str) -> tuple[ET.Element, str]:
    element = ET.Element(f"{{{namespace}}}{kind}")
    _sub(element, namespace, "MM7Version", version)
    return element, namespace


def _sub(parent: ET.Element, ns: str, name: str, text: str | None = None) -> ET.Element:
    element = ET.SubElement(parent, f"{{{ns}}}{name}")
    if text is not None:
        element.text = text
    return element


def _status(operation: ET.Element, ns: str, code: int, text: str) -> None:
    status = _sub(operation, ns, "Status")
    _sub(status, ns, "StatusCode", str(code))
    _sub(status, ns, "StatusText", text)


def _envelope(transaction_id: str | None, namespace: str, body_element: ET.Element) -> bytes:
    envelope = ET.Element(f"{{{SOAP_ENV}}}Envelope")
    if transaction_id is not None:
        header = ET.SubElement(envelope, f"{{{SOAP_ENV}}}Header")
        ET.SubElement(header, f"{{{namespace}}}TransactionID",
                      {f"{{{SOAP_ENV}}}mustUnderstand": "1"}).text = transaction_id
    ET.SubElement(envelope, f"{{{SOAP_ENV}}}Body").append(body_element)
    return ET.tostring(envelope, encoding="utf-8", xml_declaration=True)


def _xml_only(xml: bytes) -> HttpBody:
    return HttpBody('text/xml; charset="utf-8"', xml)


def _with_content(xml: bytes, content: Message) -> HttpBody:
    soap = EmailMessage(policy=_POLICY)
    soap.set_content(xml, maintype="text", subtype="xml", cte="8bit", params={"charset": "utf-8"},
                     cid=f"<{SOAP_PART_ID}>")
    content["Content-ID"] = f"<{CONTENT_PART_ID}>"
    outer = EmailMessage(policy=_POLICY)
    outer["Content-Type"] = f'multipart/related; type="text/xml"; start="<{SOAP_PART_ID}>"'
    outer.attach(_without_mime_version(soap))
    outer.attach(_without_mime_version(content))
    buffer = BytesIO()
    BytesGenerator(buffer, policy=_POLICY).flatten(outer)
    _, _, body = buffer.getvalue().partition(b"\r\n\r\n")
    return HttpBody(str(outer["Content-Type"]), body)


def _entity(content: MmsPayload) -> Message:
    """The MMS content as one MIME entity: the client's multipart as it came, or the
    SMIL-wrapped parts in a ``multipart/related`` of their own."""
    if not content.smil_wrapped:
        first = content.parts[0]
        return _parse_mime(first.content_type, first.content)
    entity = EmailMessage(policy=_POLICY)
    entity["Content-Type"] = content.content_type
    for part in content.parts:
        entity.attach(_leaf(part))
    return entity


def _leaf(part: MmsPart) -> EmailMessage:
    leaf = EmailMessage(policy=_POLICY)
    maintype, _, subtype = part.content_type.split(";", 1)[0].strip().partition("/")
    leaf.set_content(part.content, maintype=maintype, subtype=subtype, cte="base64", cid=f"<{part.content_id}>",
                     params=_content_type_params(part.content_type))
    leaf["Content-Location"] = part.content_id
    return _without_mime_version(leaf)


def _content_type_params(content_type: str) -> dict[str, str]:
    probe = EmailMessage(policy=_POLICY)
    probe["Content-Type"] = content_type
    return dict(probe["Content-Type"].params)


def _without_mime_version(part: Message) -> Message:
    del part["MIME-Version"]
    return part


# --- reading ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Envelope:
    namespace: str
    transaction_id: str | None
    operation: ET.Element
    kind: str
    content: Message | None


def parse_answer(content_type: str | None, body: bytes, kind: str) -> Answer:
    """A ``kind`` (``SubmitRsp``, ...) or a fault, whatever the HTTP status was."""
    envelope = _read_envelope(content_type, body)
    if envelope.kind == "Fault":
        return _fault_answer(envelope)
    if envelope.kind != kind:
        raise MalformedMm7(f"expected {kind}, got {envelope.kind}")
    code, text = _read_status(envelope.operation, envelope.namespace)
    message_id = _message_id(envelope.operation, envelope.namespace, required=False)
    if kind == "SubmitRsp" and status_for(code).command_status == _OK and not message_id:
        raise MalformedMm7("a successful SubmitRsp without a MessageID")
    return Answer(kind, envelope.transaction_id, code, text, message_id)


def parse_submit_rsp(content_type: str | None, body: bytes) -> Answer:
    return parse_answer(content_type, body, "SubmitRsp")


def parse_vasp_request(content_type: str | None, body: bytes) -> DeliveryReport | DeliveredMms:
    """What an MMSC sends a VASP: a delivery report or an MO MMS."""
    envelope = _read_envelope(content_type, body)
    op, ns = envelope.operation, envelope.namespace
    if envelope.kind == "DeliveryReportReq":
        return DeliveryReport(envelope.transaction_id, ns, _message_id(op, ns),
                              _address(op, ns, "Recipient"), _address(op, ns, "Sender", required=False),
                              MmStatus.read(_required(op, ns, "MMStatus")), _text(op, ns, "StatusText") or "")
    if envelope.kind == "DeliverReq":
        recipients = _child(op, ns, "Recipients")
        recipient = _first_address(recipients) if recipients is not None else None
        if not recipient:
            raise MalformedMm7("DeliverReq without a recipient")
        text, attachments = _mo_content(envelope.content)
        return DeliveredMms(envelope.transaction_id, ns, _address(op, ns, "Sender"), recipient,
                            _text(op, ns, "LinkedID"), text or _text(op, ns, "Subject") or "", attachments)
    raise UnsupportedMm7(envelope.kind, ns, envelope.transaction_id)


def parse_submit_req(content_type: str | None, body: bytes) -> ReceivedSubmit:
    """A ``SubmitReq``, as the MMSC simulator reads it."""
    envelope = _read_envelope(content_type, body)
    if envelope.kind != "SubmitReq":
        raise UnsupportedMm7(envelope.kind, envelope.namespace, envelope.transaction_id)
    op, ns = envelope.operation, envelope.namespace
    sender_id = _child(op, ns, "SenderIdentification")
    if sender_id is None:
        raise MalformedMm7("SubmitReq without SenderIdentification")
    recipients = _child(op, ns, "Recipients")
    addresses = tuple(_addresses(recipients)) if recipients is not None else ()
    if not addresses:
        raise MalformedMm7("SubmitReq without recipients")
    content = envelope.content
    return ReceivedSubmit(
        envelope.transaction_id, ns, _text(sender_id, ns, "VASPID") or "", _text(sender_id, ns, "VASID") or "",
        _address(sender_id, ns, "SenderAddress", required=False), addresses, _text(op, ns, "ServiceCode"),
        (_text(op, ns, "DeliveryReport") or "").lower() in ("true", "1"),
        content.get_content_type() if content is not None else None,
        tuple(_leaves(content)) if content is not None else ())


def _read_envelope(content_type: str | None, body: bytes) -> _Envelope:
    try:
        message = _parse_mime(content_type or "text/xml", body)
        soap, content = _soap_and_content(message)
        root = SafeET.fromstring(_decoded(soap), forbid_dtd=True)
    except (DefusedXmlException, ET.ParseError, RecursionError, UnicodeError, LookupError) as exc:
        raise MalformedMm7(f"unreadable body: {type(exc).__name__}: {exc}") from exc
    env, local = _split(root.tag)
    if local != "Envelope" or env not in (SOAP_ENV, SOAP12_ENV):
        raise MalformedMm7(f"not a SOAP envelope: {root.tag}")
    header, soap_body = root.find(f"{{{env}}}Header"), root.find(f"{{{env}}}Body")
    if soap_body is None or len(soap_body) != 1:
        raise MalformedMm7("a SOAP Body holds exactly one element")
    operation = soap_body[0]
    ns, kind = _split(operation.tag)
    transaction_id = None
    for element in header if header is not None else ():
        if _split(element.tag)[1] == "TransactionID" and _is_mm7(_split(element.tag)[0]):
            transaction_id = (element.text or "").strip() or None
    if kind == "Fault" and ns == env:
        return _Envelope(_fault_namespace(operation), transaction_id, operation, "Fault", None)
    if not _is_mm7(ns):
        raise MalformedMm7(f"{kind} is not in an MM7 namespace: {ns!r}")
    return _Envelope(ns, transaction_id, operation, kind, _content_part(operation, ns, content))


def _is_mm7(namespace: str) -> bool:
    return namespace.startswith(NAMESPACE_ROOT)


def _split(tag: str) -> tuple[str, str]:
    if tag.startswith("{"):
        ns, _, local = tag[1:].partition("}")
        return ns, local
    return "", tag


def _parse_mime(content_type: str, body: bytes) -> Message:
    header = content_type.encode("latin-1", "replace").replace(b"\r", b" ").replace(b"\n", b" ")
    message = BytesParser(policy=_POLICY).parsebytes(b"Content-Type: " + header + b"\r\n\r\n" + body)
    if any(isinstance(defect, _BROKEN_MIME) for defect in message.defects):
        raise MalformedMm7(f"broken MIME: {[type(d).__name__ for d in message.defects]}")
    return message


def _soap_and_content(message: Message) -> tuple[Message, list[Message]]:
    """The SOAP part (``start``, else the first) and the other parts."""
    if not message.is_multipart():
        return message, []
    parts = message.get_payload()
    if not parts:
        raise MalformedMm7("an empty multipart")
    start = _cid(message.get_param("start") or "")
    root = next((part for part in parts if start and _cid(part.get("Content-ID", "")) == start), None)
    if start and root is None:
        raise MalformedMm7(f"no part has the start Content-ID {start!r}")
    root = root or parts[0]
    return root, [part for part in parts if part is not root]


def _content_part(operation: ET.Element, ns: str, others: list[Message]) -> Message | None:
    """The part ``Content href`` names (by Content-ID or Content-Location), or, without
    a Content element, the first part after the envelope."""
    reference = _child(operation, ns, "Content")
    if reference is None:
        return others[0] if others else None
    href = reference.get("href", "")
    wanted = _cid(unquote(href[4:])) if href.lower().startswith("cid:") else None
    for part in others:
        if (wanted and _cid(part.get("Content-ID", "")) == wanted) or (href and part.get("Content-Location") == href):
            return part
    raise MalformedMm7(f"Content href {href!r} names no part")


def _cid(value: str) -> str:
    return str(value).strip().strip("<>").strip()


def _decoded(part: Message) -> bytes:
    data = part.get_payload(decode=True)
    if any(isinstance(defect, _BROKEN_MIME) for defect in part.defects):
        raise MalformedMm7(f"undecodable part {part.get_content_type()}")
    return data or b""


def _leaves(entity: Message, depth: int = 0) -> Iterator[ContentPart]:
    if depth > MAX_CONTENT_DEPTH:
        raise MalformedMm7(f"content nested deeper than {MAX_CONTENT_DEPTH} levels")
    if entity.is_multipart():
        if any(isinstance(defect, _BROKEN_MIME) for defect in entity.defects):
            raise MalformedMm7("broken MIME inside the content")
        for part in entity.get_payload():
            yield from _leaves(part, depth + 1)
        return
    content_id = entity.get("Content-ID")
    yield ContentPart(str(entity.get("Content-Type", "text/plain")), _cid(content_id) if content_id else None,
                      _decoded(entity))


def _mo_content(content: Message | None) -> tuple[str, tuple[Attachment, ...]]:
    if content is None:
        return "", ()
    texts, attachments = [], []
    for part in _leaves(content):
        bare = part.content_type.split(";", 1)[0].strip().lower()
        if bare == SMIL_CONTENT_TYPE:
            continue
        if bare == "text/plain":
            texts.append(_text_of(part))
        else:
            attachments.append(Attachment(bare, part.data))
    return "\n".join(texts), tuple(attachments)


def _text_of(part: ContentPart) -> str:
    probe = EmailMessage(policy=_POLICY)
    probe["Content-Type"] = part.content_type
    charset = probe.get_content_charset() or "utf-8"
    try:
        return part.data.decode(charset, "replace")
    except LookupError:
        return part.data.decode("utf-8", "replace")


def _child(parent: ET.Element, ns: str, name: str) -> ET.Element | None:
    """A child by local name, in the operation's namespace or none (some MMSCs leave
    children unqualified)."""
    for element in parent:
        element_ns, local = _split(element.tag)
        if local == name and element_ns in (ns, ""):
            return element
    return None


def _text(parent: ET.Element, ns: str, name: str) -> str | None:
    element = _child(parent, ns, name)
    if element is None:
        return None
    return (element.text or "").strip()


def _required(parent: ET.Element, ns: str, name: str) -> str:
    value = _text(parent, ns, name)
    if not value:
        raise MalformedMm7(f"{_split(parent.tag)[1]} without {name}")
    return value


def _message_id(operation: ET.Element, ns: str, *, required: bool = True) -> str | None:
    message_id = _text(operation, ns, "MessageID") or None
    if message_id is None and required:
        raise MalformedMm7(f"{_split(operation.tag)[1]} without MessageID")
    if message_id is not None and len(message_id) > MAX_MESSAGE_ID:
        raise MalformedMm7(f"MessageID longer than {MAX_MESSAGE_ID} characters")
    return message_id


def _read_status(operation: ET.Element, ns: str) -> tuple[int, str]:
    status = _child(operation, ns, "Status")
    code = _text(status, ns, "StatusCode") if status is not None else None
    if not code or not code.isascii() or not code.isdigit() or len(code) > 6:
        raise MalformedMm7(f"missing or non-numeric StatusCode {code!r}")
    return int(code), (_text(status, ns, "StatusText") or "")


def _fault_answer(envelope: _Envelope) -> Answer:
    fault = envelope.operation
    code = next((e for e in fault if _split(e.tag)[1] == "faultcode"), None)
    fault_code = _split_prefixed((code.text or "") if code is not None else "")
    text = next(((e.text or "").strip() for e in fault if _split(e.tag)[1] == "faultstring"), "")
    detail = next((e for e in fault if _split(e.tag)[1] in ("detail", "Detail")), None)
    for error in detail if detail is not None else ():
        ns = _split(error.tag)[0]
        if _is_mm7(ns) and _child(error, ns, "Status") is not None:
            status_code, status_text = _read_status(error, ns)
            return Answer("Fault", envelope.transaction_id, status_code, status_text or text, fault=fault_code)
    return Answer("Fault", envelope.transaction_id, None, text, fault=fault_code)


def _fault_namespace(fault: ET.Element) -> str:
    for element in fault.iter():
        ns = _split(element.tag)[0]
        if _is_mm7(ns):
            return ns
    return NAMESPACE


def _split_prefixed(value: str) -> str:
    return value.strip().rpartition(":")[2]


def _normalise_address(value: str) -> str:
    """``+447700900123/TYPE=PLMN`` -> ``447700900123``; e-mail addresses stay as they are."""
    address = value.strip()
    if address.upper().endswith("/TYPE=PLMN"):
        address = address[: -len("/TYPE=PLMN")]
    return address.removeprefix("+")


def _addresses(parent: ET.Element) -> Iterator[str]:
    for element in parent.iter():
        if _split(element.tag)[1] in ("Number", "ShortCode", "RFC2822Address") and (element.text or "").strip():
            yield _normalise_address(element.text)


def _first_address(parent: ET.Element) -> str | None:
    return next(_addresses(parent), None)


def _address(parent: ET.Element, ns: str, name: str, *, required: bool = True) -> str:
    element = _child(parent, ns, name)
    address = _first_address(element) if element is not None else None
    if address is None and required:
        raise MalformedMm7(f"{_split(parent.tag)[1]} without a {name} address")
    return address or ""
