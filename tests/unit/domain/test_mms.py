"""The seed 000 "Important" note: a multipart/* first attachment is passed as is,
anything else is SMIL-wrapped."""

import pytest

from app.domain.mms import SMIL_CONTENT_TYPE, build_mms, client_attachments, stored_payload
from app.domain.mt_request import Attachment


def test_non_multipart_is_smil_wrapped_with_the_text():
    payload = build_mms((Attachment("image/jpeg", b"jpg"),), "Look")
    assert payload.smil_wrapped
    assert payload.content_type.startswith("multipart/related")
    smil, text, image = payload.parts
    assert smil.content_type == SMIL_CONTENT_TYPE
    assert text.content == b"Look"
    assert image.content == b"jpg"
    document = smil.content.decode()
    assert f'src="cid:{image.content_id}"' in document and f'src="cid:{text.content_id}"' in document


def test_each_media_part_gets_a_slide():
    payload = build_mms((Attachment("image/png", b"1"), Attachment("audio/amr", b"2"), Attachment("video/mp4", b"3")), "")
    document = payload.parts[0].content.decode()
    assert document.count("<par ") == 3
    assert len(payload.parts) == 4  # smil + three media, no empty text part


@pytest.mark.parametrize("content_type", ["multipart/mixed; boundary=x", "Multipart/Related"])
def test_multipart_first_attachment_is_passed_as_is(content_type):
    attachments = (Attachment(content_type, b"--x\r\n..."), Attachment("image/png", b"p"))
    payload = build_mms(attachments, "ignored by the wrapper")
    assert not payload.smil_wrapped
    assert payload.content_type == content_type
    assert [p.content for p in payload.parts] == [b"--x\r\n...", b"p"]


def test_an_mms_needs_an_attachment():
    with pytest.raises(ValueError):
        build_mms((), "text")


def test_content_ids_are_xml_escaped_in_smil():
    payload = build_mms((Attachment("image/png", b"1"),), 'say "hi" & <bye>')
    assert b"<bye>" not in payload.parts[0].content


def test_stored_parts_give_the_payload_and_the_client_attachments_back():
    sent = (Attachment("image/png", b"1"), Attachment("audio/amr", b"2"))
    wrapped = build_mms(sent, "caption")
    again = stored_payload(wrapped.content_type, wrapped.parts)
    assert again == wrapped and again.smil_wrapped
    assert client_attachments(again) == sent
    assert client_attachments(build_mms(sent, "")) == sent


def test_a_client_multipart_is_its_own_attachment():
    sent = (Attachment('multipart/mixed; boundary="b"', b"--b--\r\n"),)
    payload = stored_payload(sent[0].content_type, build_mms(sent, "x").parts)
    assert not payload.smil_wrapped and client_attachments(payload) == sent
