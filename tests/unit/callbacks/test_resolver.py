"""The callback sender's resolver: the address policy, and each name's answer kept for
``ttl`` seconds (one getaddrinfo per name, shared by concurrent look-ups), failures
other than a refusal not kept."""

from __future__ import annotations

import asyncio
import socket

import pytest

from app.adapters.callback_http import ForbiddenAddressError, PolicyResolver


class FakeDns:
    """getaddrinfo answering from ``addresses[host]`` (or failing), counting calls."""

    def __init__(self, addresses: dict[str, list[str]]) -> None:
        self.addresses = addresses
        self.calls: list[str] = []

    async def getaddrinfo(self, host, port, **_kwargs):
        self.calls.append(host)
        await asyncio.sleep(0)
        if host not in self.addresses:
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port)) for address in self.addresses[host]]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(dns: FakeDns, resolver: PolicyResolver, *lookups: str) -> list:
    """Each lookup in turn; a name given as ``a|b`` looks both up at the same time."""

    async def main():
        asyncio.get_running_loop().getaddrinfo = dns.getaddrinfo
        answers = []
        for lookup in lookups:
            names = lookup.split("|")
            answers += await asyncio.gather(*(resolver.resolve(n, 443) for n in names), return_exceptions=True)
        return answers

    return asyncio.run(main())


def test_an_answer_is_kept_for_the_ttl_then_looked_up_again():
    dns, clock = FakeDns({"client.example": ["93.184.216.34"]}), Clock()
    resolver = PolicyResolver(ttl=60, clock=clock)
    first, second = run(dns, resolver, "client.example", "client.example")
    assert [a["host"] for a in first] == ["93.184.216.34"] and first == second
    assert dns.calls == ["client.example"]
    clock.now += 61
    run(dns, resolver, "client.example")
    assert dns.calls == ["client.example"] * 2


def test_concurrent_lookups_of_a_name_share_one_getaddrinfo():
    dns = FakeDns({"client.example": ["93.184.216.34"], "other.example": ["93.184.216.35"]})
    answers = run(dns, PolicyResolver(), "client.example|client.example|other.example")
    assert [a[0]["host"] for a in answers] == ["93.184.216.34", "93.184.216.34", "93.184.216.35"]
    assert sorted(dns.calls) == ["client.example", "other.example"]


def test_a_refusal_is_kept_but_a_dns_failure_is_not():
    dns = FakeDns({"rebind.example": ["93.184.216.34", "10.0.0.7"]})
    resolver = PolicyResolver()
    refused, refused_again, failed, failed_again = run(dns, resolver, "rebind.example", "rebind.example",
                                                       "down.example", "down.example")
    assert isinstance(refused, ForbiddenAddressError) and isinstance(refused_again, ForbiddenAddressError)
    assert isinstance(failed, socket.gaierror) and isinstance(failed_again, socket.gaierror)
    assert dns.calls == ["rebind.example", "down.example", "down.example"]


def test_private_addresses_are_returned_when_allowed():
    dns = FakeDns({"intranet.example": ["10.0.0.7"]})
    [answer] = run(dns, PolicyResolver(allow_private=True), "intranet.example")
    assert [a["host"] for a in answer] == ["10.0.0.7"]
    with pytest.raises(ForbiddenAddressError):
        raise run(dns, PolicyResolver(), "intranet.example")[0]
