"""Who the client is behind a proxy: X-Forwarded-For, believed from trusted peers only."""

import pytest

from app.domain.forwarded import client_address, parse_networks
from app.web.proxies import TrustedProxies

TRUSTED = parse_networks("10.0.0.0/8, 127.0.0.1 ::1")


@pytest.mark.parametrize("peer, headers, client", [
    # an untrusted peer is the client, whatever it claims
    ("203.0.113.7", ["198.51.100.1"], "203.0.113.7"),
    ("203.0.113.7", [], "203.0.113.7"),
    # a trusted proxy: the right-most untrusted address
    ("127.0.0.1", ["203.0.113.7"], "203.0.113.7"),
    ("127.0.0.1", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),          # the left one is the client's own claim
    ("127.0.0.1", ["198.51.100.1, 203.0.113.7, 10.1.2.3"], "203.0.113.7"),  # through two of our proxies
    ("127.0.0.1", ["198.51.100.1", "203.0.113.7"], "203.0.113.7"),         # two headers are one list
    ("127.0.0.1", [" 203.0.113.7 ,, "], "203.0.113.7"),
    # every hop trusted, or nothing forwarded: the left-most trusted address seen
    ("127.0.0.1", ["10.0.0.5, 10.0.0.6"], "10.0.0.5"),
    ("127.0.0.1", [], "127.0.0.1"),
    ("127.0.0.1", [""], "127.0.0.1"),
    # garbage stops the walk at the hop that wrote it
    ("127.0.0.1", ["203.0.113.7, nonsense"], "127.0.0.1"),
    ("127.0.0.1", ["nonsense, 10.0.0.9"], "10.0.0.9"),
    ("127.0.0.1", ["unknown"], "127.0.0.1"),
    # ports and IPv6
    ("127.0.0.1", ["203.0.113.7:5123"], "203.0.113.7"),
    ("::1", ["[2001:db8::1]:443"], "2001:db8::1"),
    ("::1", ["2001:db8::1"], "2001:db8::1"),
    ("::ffff:10.0.0.1", ["203.0.113.7"], "203.0.113.7"),  # a v4-mapped peer is its v4 address
    # no peer (a unix socket): nothing to trust
    (None, ["203.0.113.7"], None),
])
def test_client_address(peer, headers, client):
    assert client_address(peer, headers, TRUSTED) == client


def test_no_trusted_proxies_believes_nobody():
    assert client_address("127.0.0.1", ["203.0.113.7"], ()) == "127.0.0.1"


@pytest.mark.parametrize("text", ["10.0.0.0/33", "nginx", "10.0.0.0/8,,fe80::/10x"])
def test_parse_networks_names_the_bad_entry(text):
    with pytest.raises(ValueError, match="is not an IP network"):
        parse_networks(text)


def test_middleware_rewrites_remote_addr():
    seen = {}

    def app(environ, start_response):
        seen.update(environ)
        return []

    middleware = TrustedProxies(app, TRUSTED)
    middleware({"REMOTE_ADDR": "127.0.0.1", "HTTP_X_FORWARDED_FOR": "203.0.113.7"}, None)
    assert seen["REMOTE_ADDR"] == "203.0.113.7"
    seen.clear()
    middleware({"REMOTE_ADDR": "203.0.113.9", "HTTP_X_FORWARDED_FOR": "10.0.0.1"}, None)
    assert seen["REMOTE_ADDR"] == "203.0.113.9"
    seen.clear()
    middleware({"REMOTE_ADDR": "127.0.0.1"}, None)
    assert seen["REMOTE_ADDR"] == "127.0.0.1"
