"""When a failed login locks further attempts out: the decisions of the authentication
guard (:mod:`app.services.auth_guard`), without I/O.

A request without valid credentials must cost the gateway almost nothing (DESIGN.md),
yet verifying a password costs tens of milliseconds of scrypt. So failures are counted
in Redis per client address and per login, over a fixed window of
``window_seconds`` that starts with the first failure; once either count reaches its
limit, further attempts are refused with the API's authentication code before any KDF
runs, until the window lapses (docs/security.md).

* **Address.** An IPv4 address counts on its own; an IPv6 address counts with its /64
  (one subscriber line or one host is given a whole /64, so the low 64 bits are free for
  an attacker to vary); an IPv4-mapped IPv6 address counts as its IPv4 address. An
  address that does not parse (a Unix socket, a test client) counts as ``unknown``.
* **Login.** Per scope: the accounts of the MT, bulk and REST APIs share one login
  namespace; GMS apps, GMS agents and console operators have their own.

A limit of 0 turns that count off.
"""

from __future__ import annotations

import enum
import hashlib
import ipaddress
from dataclasses import dataclass

IPV6_GROUP_PREFIX = 64
UNKNOWN_ADDRESS = "unknown"


class Scope(str, enum.Enum):
    """Whose logins a count is about (one namespace each)."""

    ACCOUNT = "account"
    GMS_APP = "gms-app"
    GMS_AGENT = "gms-agent"
    OPERATOR = "operator"


class Lockout(str, enum.Enum):
    """Why an attempt was refused before its password was looked at."""

    ADDRESS = "address"
    LOGIN = "login"


@dataclass(frozen=True)
class AuthLimits:
    """Failures allowed per window, per client address and per login (0: no limit)."""

    address_failures: int = 5
    login_failures: int = 10
    window_seconds: int = 60

    def lockout(self, address_failures: int, login_failures: int) -> Lockout | None:
        """What locks the attempt out, given the failures counted in the current windows."""
        if self.address_failures and address_failures >= self.address_failures:
            return Lockout.ADDRESS
        if self.login_failures and login_failures >= self.login_failures:
            return Lockout.LOGIN
        return None

    @property
    def enabled(self) -> bool:
        return bool(self.address_failures or self.login_failures)


def address_group(address: str | None) -> str:
    """The text failures of ``address`` are counted under: the IPv4 address, the IPv6
    /64 network, or :data:`UNKNOWN_ADDRESS`."""
    try:
        parsed = ipaddress.ip_address((address or "").split("%", 1)[0])
    except ValueError:
        return UNKNOWN_ADDRESS
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, IPV6_GROUP_PREFIX), strict=False))
    return str(parsed)


def login_tag(scope: Scope, login: str) -> str:
    """A fixed-length name for a login's count: any login a client sends (long, binary)
    makes a short, printable Redis key, and the key does not spell the login out."""
    digest = hashlib.sha256(login.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{scope.value}:{digest}"


def credential_digest(scope: Scope, login: str, password: str) -> bytes:
    """The key a (login, password) pair is cached under in-process: never the password."""
    return hashlib.sha256(b"\0".join(part.encode("utf-8", "surrogatepass")
                                     for part in (scope.value, login, password))).digest()
