"""Bayeux message parsing (pure)."""

from __future__ import annotations

import pytest

from app.gms.cometd import MAX_BATCH, MalformedBayeux, parse_messages


def test_array_object_and_form_messages():
    assert parse_messages(b'[{"channel": "/meta/handshake", "id": "1"}]') == [{"channel": "/meta/handshake", "id": "1"}]
    assert parse_messages('{"channel": "/_genesys", "data": {}}')[0]["channel"] == "/_genesys"
    assert parse_messages(None, form_message='[{"channel": "/meta/connect"}]')[0]["channel"] == "/meta/connect"


@pytest.mark.parametrize("body", [None, b"", b"  ", b"nope", b"[]", b"[1]", b'[{"id": "1"}]', b'{"channel": "meta"}',
                                  b'{"channel": "/a", "id": {"x": 1}}', b'[{"channel": "/a b"}]'])
def test_malformed(body):
    with pytest.raises(MalformedBayeux):
        parse_messages(body)


def test_batch_limit():
    with pytest.raises(MalformedBayeux):
        parse_messages("[" + ",".join(['{"channel": "/meta/connect"}'] * (MAX_BATCH + 1)) + "]")
