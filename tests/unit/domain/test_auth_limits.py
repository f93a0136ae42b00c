"""The failed-login rules: how addresses are grouped and when an attempt is locked out."""

from __future__ import annotations

import pytest

from app.domain.auth_limits import (
    UNKNOWN_ADDRESS,
    AuthLimits,
    Lockout,
    Scope,
    address_group,
    credential_digest,
    login_tag,
)


@pytest.mark.parametrize("address, group", [
    ("203.0.113.7", "203.0.113.7"),
    ("2001:db8:1:2:aaaa:bbbb:cccc:dddd", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::1", "2001:db8:1:2::/64"),
    ("2001:db8:1:3::1", "2001:db8:1:3::/64"),
    ("::ffff:203.0.113.7", "203.0.113.7"),
    ("fe80::1%eth0", "fe80::/64"),
    ("", UNKNOWN_ADDRESS),
    (None, UNKNOWN_ADDRESS),
    ("not-an-address", UNKNOWN_ADDRESS),
])
def test_addresses_are_grouped_ipv6_by_its_64(address, group):
    assert address_group(address) == group


def test_the_address_limit_is_checked_before_the_login_limit():
    limits = AuthLimits(address_failures=5, login_failures=10)
    assert limits.lockout(4, 9) is None
    assert limits.lockout(5, 0) is Lockout.ADDRESS
    assert limits.lockout(0, 10) is Lockout.LOGIN
    assert limits.lockout(5, 10) is Lockout.ADDRESS


def test_a_limit_of_zero_counts_nothing():
    assert AuthLimits(address_failures=0, login_failures=3).lockout(1000, 2) is None
    assert AuthLimits(address_failures=0, login_failures=0).lockout(1000, 1000) is None
    assert not AuthLimits(address_failures=0, login_failures=0).enabled
    assert AuthLimits(address_failures=0, login_failures=1).enabled


def test_a_login_tag_is_short_printable_and_per_scope():
    long_login = "x" * 10_000 + "\udcff"
    tag = login_tag(Scope.ACCOUNT, long_login)
    assert tag.startswith("account:") and len(tag) == len("account:") + 32 and tag.isprintable()
    assert login_tag(Scope.GMS_APP, "acme") != login_tag(Scope.ACCOUNT, "acme")
    assert "acme" not in login_tag(Scope.ACCOUNT, "acme")


def test_a_credential_digest_never_mixes_up_pairs():
    assert credential_digest(Scope.ACCOUNT, "a", "bc") != credential_digest(Scope.ACCOUNT, "ab", "c")
    assert credential_digest(Scope.ACCOUNT, "a", "b") != credential_digest(Scope.OPERATOR, "a", "b")
    assert b"secret" not in credential_digest(Scope.ACCOUNT, "a", "secret")
