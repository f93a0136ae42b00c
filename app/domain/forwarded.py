"""The client's address behind a TLS proxy: ``X-Forwarded-For``, from trusted peers only.

deploy/ puts nginx in front of the ingress, so every request's peer (``REMOTE_ADDR``) is
the proxy. The account allowlists (MT ``result_code=2``, REST 403), the operator's
denylist (bulk 16) and the bulk allowlist (18) must judge the client instead. With
``SMSAGG_TRUSTED_PROXIES`` set (CIDRs), :class:`app.web.proxies.TrustedProxies`
rewrites ``REMOTE_ADDR`` before any view runs, so every API, the console's login log and
anything else that reads ``request.remote_addr`` sees the same answer.

The rule (:func:`client_address`) is nginx's ``set_real_ip_from`` with
``real_ip_recursive on`` (werkzeug's ``ProxyFix`` does the same by hop count):

* the peer is not a trusted proxy: it is the client, and any ``X-Forwarded-For`` it
  sent is ignored (a client cannot name itself someone else);
* the peer is trusted: walk ``X-Forwarded-For`` from the right (each proxy appends the
  address it saw), skipping trusted addresses; the first untrusted one is the client.
  Everything left of it was written by the client and is not believed;
* an entry that is not an IP address stops the walk: the hop that wrote it is the last
  one we can believe, so that hop (the trusted address right of it) is the client;
* every entry trusted, or no header: the left-most trusted address seen.

Several ``X-Forwarded-For`` headers count as one list, in order (RFC 9110 5.3). An
address may carry a port (``203.0.113.7:5123``, ``[2001:db8::1]:443``), as some proxies
write it; it is dropped.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(text: str) -> tuple[Network, ...]:
    """CIDRs separated by commas or blanks; a bare address is a /32 (/128). ValueError
    names the entry that is not one."""
    networks = []
    for entry in text.replace(",", " ").split():
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError as exc:
            raise ValueError(f"{entry!r} is not an IP network (CIDR)") from exc
    return tuple(networks)


def client_address(peer: str | None, forwarded_for: Sequence[str], trusted: Sequence[Network]) -> str | None:
    """The client's address (module docstring): ``peer`` is the TCP peer, ``forwarded_for``
    the ``X-Forwarded-For`` header values in order."""
    if not _is_trusted(_address(peer), trusted):
        return peer
    client = peer
    chain = [entry.strip() for value in forwarded_for for entry in value.split(",") if entry.strip()]
    for entry in reversed(chain):
        address = _address(entry)
        if address is None:
            return client
        client = str(address)
        if not _is_trusted(address, trusted):
            return client
    return client


def _address(text: str | None) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    if not text:
        return None
    candidate = text.strip()
    if candidate.startswith("["):  # [v6]:port
        candidate = candidate[1:].partition("]")[0]
    elif candidate.count(":") == 1:  # v4:port
        candidate = candidate.partition(":")[0]
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped or address


def _is_trusted(address, trusted: Sequence[Network]) -> bool:
    return address is not None and any(address in network for network in trusted)
