"""MMS payloads: the seed's "Important" note on ``mms_attachment[0].content_type``.

If the first attachment is any ``multipart/*`` type the client built the whole
multipart itself and it is passed on untouched: it is then the MMS's only attachment
(the ingress refuses others beside it, :func:`app.domain.mt_request.check_attachments`).
Otherwise smsagg wraps the parts in a SMIL presentation (``multipart/related;
type="application/smil"``): one slide per attachment, the text body (if any) as a text
part on the first slide.

The parts are stored with the message in sending order (SMIL first, then the text,
then the attachments, named ``part<n>.<ext>``); :func:`stored_payload` rebuilds the
payload from them, :func:`client_attachments` the attachments the client sent (what
an HTTP carrier of the Genesys kind is given).
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import quoteattr

from app.domain.mt_request import Attachment

SMIL_CONTENT_TYPE = "application/smil"
SMIL_ID, TEXT_ID = "smil", "text.txt"
WRAPPED_CONTENT_TYPE = f'multipart/related; type="{SMIL_CONTENT_TYPE}"; start="<{SMIL_ID}>"'

_EXTENSIONS = {
    "image/jpeg": "jpg",
    "image/png": "png",
    "image/gif": "gif",
    "audio/amr": "amr",
    "audio/mpeg": "mp3",
    "video/3gpp": "3gp",
    "video/mp4": "mp4",
    "text/plain": "txt",
}


@dataclass(frozen=True)
class MmsPart:
    content_id: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class MmsPayload:
    content_type: str
    parts: tuple[MmsPart, ...]
    smil_wrapped: bool


def is_multipart(content_type: str) -> bool:
    return content_type.strip().lower().startswith("multipart/")


def build_mms(attachments: tuple[Attachment, ...], text: str) -> MmsPayload:
    """The payload to send for these attachments (non-empty) and message text."""
    if not attachments:
        raise ValueError("an MMS needs at least one attachment")
    first = attachments[0]
    if is_multipart(first.content_type):
        parts = tuple(
            MmsPart(f"part{index}", a.content_type, a.content) for index, a in enumerate(attachments)
        )
        return MmsPayload(first.content_type, parts, smil_wrapped=False)
    media = [MmsPart(_part_name(index, a.content_type), a.content_type, a.content) for index, a in enumerate(attachments)]
    if text:
        media.insert(0, MmsPart(TEXT_ID, "text/plain; charset=utf-8", text.encode("utf-8")))
    smil = MmsPart(SMIL_ID, SMIL_CONTENT_TYPE, smil_presentation(media).encode("utf-8"))
    return MmsPayload(WRAPPED_CONTENT_TYPE, (smil, *media), smil_wrapped=True)


def stored_payload(content_type: str, parts: tuple[MmsPart, ...]) -> MmsPayload:
    """The payload :func:`build_mms` made, from the parts stored with the message."""
    return MmsPayload(content_type, parts, smil_wrapped=bool(parts) and parts[0].content_id == SMIL_ID)


def client_attachments(payload: MmsPayload) -> tuple[Attachment, ...]:
    """The attachments as the client sent them: without the SMIL and text parts the
    wrapping added."""
    parts = payload.parts
    if payload.smil_wrapped:
        parts = tuple(part for part in parts if part.content_id not in (SMIL_ID, TEXT_ID))
    return tuple(Attachment(part.content_type, part.content) for part in parts)


def _part_name(index: int, content_type: str) -> str:
    base_type = content_type.split(";", 1)[0].strip().lower()
    return f"part{index}.{_EXTENSIONS.get(base_type, 'bin')}"


def _element_for(part: MmsPart) -> str:
    base_type = part.content_type.split("/", 1)[0].lower()
    src = quoteattr(f"cid:{part.content_id}")
    if base_type == "image":
        return f'<img src={src} region="Image"/>'
    if base_type == "text":
        return f'<text src={src} region="Text"/>'
    if base_type == "audio":
        return f"<audio src={src}/>"
    if base_type == "video":
        return f'<video src={src} region="Image"/>'
    return f"<ref src={src}/>"


def smil_presentation(parts: list[MmsPart]) -> str:
    """A minimal SMIL 1.0 document (the MMS conformance profile): a text part shares
    the first slide with the first media part; every other part gets its own slide."""
    slides = [[part] for part in parts]
    if len(slides) > 1 and parts[0].content_type.startswith("text/"):
        slides = [[parts[0], parts[1]]] + slides[2:]
    body = "".join(
        '<par dur="5000ms">' + "".join(_element_for(part) for part in slide) + "</par>" for slide in slides
    )
    layout = (
        '<layout><root-layout width="320" height="480"/>'
        '<region id="Image" top="0" left="0" width="320" height="320" fit="meet"/>'
        '<region id="Text" top="320" left="0" width="320" height="160" fit="scroll"/></layout>'
    )
    return f"<smil><head>{layout}</head><body>{body}</body></smil>"
