"""What a password check may cost: the guard every authenticating path goes through,
and the one credential cache of the accounts (:mod:`app.services.directory`) and the
GMS apps and agents (:mod:`app.gms.registry`).

A request without valid credentials must cost the gateway almost nothing (DESIGN.md),
yet one scrypt verification costs tens of milliseconds of CPU. Three things keep a
stream of wrong passwords from taking the ingress (docs/security.md):

* **Failure limits** (:class:`AuthGuard`, counts in Redis, rules in
  :mod:`app.domain.auth_limits`): after ``SMSAGG_AUTH_ADDRESS_FAILURES`` failures from a
  client address, or ``SMSAGG_AUTH_LOGIN_FAILURES`` for one login, within
  ``SMSAGG_AUTH_WINDOW_SECONDS``, further attempts get the API's authentication code
  (:class:`LockedOut`) without the database or the KDF being asked.
* **A bounded KDF**: at most ``SMSAGG_AUTH_KDF_CONCURRENCY`` verifications run at once in
  a process; one more is answered at once with the API's "busy, retry" code
  (:class:`KdfBusy`) instead of holding a request thread in a queue.
* **Two caches** (:class:`CredentialCache`): verified pairs and refused pairs are kept
  in separate bounded LRUs (``SMSAGG_AUTH_CACHE_SIZE`` each, ``cachetools``), keyed by a
  digest of (login, password), so refusals never push a verified pair out and a full
  cache drops its least recently used entry, never everything.

A verified pair is trusted for ``SMSAGG_CREDENTIAL_CACHE_SECONDS``; after that it is
re-checked with one database query and no KDF: the same stored hash and an enabled
account keep it, so a client who logged in keeps working, without the limits, while an
attacker locks its login out. A changed password or a disabled account ends it.
Identical verifications in flight at once share one KDF run. Requests a cached
answer serves never reach Redis; the limits cost a round trip only when the KDF would
otherwise run. Redis away: an attempt the caches cannot answer raises the Redis error,
which each API answers with its "internal error" code (as it answers submits then);
no KDF runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

import cachetools

from app.adapters.auth_limits import FailureCounts, RedisFailureCounter
from app.domain.auth_limits import AuthLimits, Lockout, Scope, address_group, credential_digest, login_tag
from app.services.failures import is_outage
from app.services.passwords import dummy_hash, verify_password

log = logging.getLogger(__name__)

T = TypeVar("T")

BUSY_RETRY_AFTER_SECONDS = 1
"""What a "KDF busy" answer tells the client to wait (``Retry-After``)."""


class LockedOut(Exception):
    """Too many failures from this address or for this login: refused unchecked."""

    def __init__(self, lockout: Lockout):
        super().__init__(f"too many failed logins for this {lockout.value}")
        self.lockout = lockout


class KdfBusy(Exception):
    """Every KDF slot of this process is taken: answer "busy, retry"."""

    retry_after = BUSY_RETRY_AFTER_SECONDS

    def __init__(self) -> None:
        super().__init__("the password check is busy: retry shortly")


class FailureCounter(Protocol):
    def read(self, address_group: str, login_tag: str) -> FailureCounts: ...

    def record_failure(self, address_group: str, login_tag: str) -> FailureCounts: ...


class AuthGuard:
    """The failure limits and the KDF slots of one process (one guard per process: every
    API of it shares the slots)."""

    def __init__(self, counter: FailureCounter, limits: AuthLimits, *, kdf_concurrency: int):
        self.counter = counter
        self.limits = limits
        self.kdf_concurrency = kdf_concurrency
        self._slots = threading.BoundedSemaphore(kdf_concurrency)

    def check(self, scope: Scope, login: str, address: str | None) -> None:
        """Raise :class:`LockedOut` if the failures counted forbid another attempt."""
        if not self.limits.enabled:
            return
        counts = self.counter.read(address_group(address), login_tag(scope, login))
        lockout = self.limits.lockout(counts.address, counts.login)
        if lockout is not None:
            log.info("%s login %r from %s refused unchecked: too many failures per %s", scope.value, login[:64],
                     address, lockout.value)
            raise LockedOut(lockout)

    def record_failure(self, scope: Scope, login: str, address: str | None) -> None:
        if self.limits.enabled:
            self.counter.record_failure(address_group(address), login_tag(scope, login))

    @contextmanager
    def kdf_slot(self) -> Iterator[None]:
        """Hold one of the process's KDF slots, or raise :class:`KdfBusy` at once."""
        if not self._slots.acquire(blocking=False):
            raise KdfBusy()
        try:
            yield
        finally:
            self._slots.release()

    def attempt(self, scope: Scope, login: str, address: str | None, verify: Callable[[], T | None]) -> T | None:
        """``verify()`` (which runs the KDF) behind the limits and a KDF slot, for a path
        without a cache of its own (the console's login); a refusal counts as a failure.
        Raises :class:`LockedOut` or :class:`KdfBusy`."""
        self.check(scope, login, address)
        with self.kdf_slot():
            found = verify()
        if found is None:
            self.record_failure(scope, login, address)
        return found


def build_guard(client, key_prefix: str, settings) -> AuthGuard:
    """The guard of one process, from :class:`app.settings.Settings`."""
    limits = AuthLimits(address_failures=settings.auth_address_failures,
                        login_failures=settings.auth_login_failures,
                        window_seconds=settings.auth_window_seconds)
    return AuthGuard(RedisFailureCounter(client, key_prefix, window_seconds=limits.window_seconds), limits,
                     kdf_concurrency=settings.auth_kdf_concurrency)


@dataclass(frozen=True)
class StoredCredential(Generic[T]):
    """What the database holds for a login: whom it authenticates (``None`` when that
    account is disabled) and the stored password hash."""

    principal: T | None
    password_hash: str


@dataclass(frozen=True)
class _Verified(Generic[T]):
    principal: T
    password_hash: str
    fresh_until: float


class CredentialCache(Generic[T]):
    """(login, password) -> principal, for one :class:`Scope`, behind the guard.

    ``load(login)`` reads the login's :class:`StoredCredential` from the database
    (``None``: no such login); the cache runs the KDF itself."""

    def __init__(self, scope: Scope, load: Callable[[str], StoredCredential[T] | None], guard: AuthGuard, *,
                 ttl: float, size: int, clock: Callable[[], float] = time.monotonic):
        self.scope = scope
        self.load = load
        self.guard = guard
        self.ttl = ttl
        self.clock = clock
        self._lock = threading.Lock()
        self._verified: cachetools.LRUCache[bytes, _Verified[T]] = cachetools.LRUCache(maxsize=size)
        self._refused: cachetools.TTLCache[bytes, bool] = cachetools.TTLCache(maxsize=size, ttl=ttl, timer=clock)
        self._in_flight: dict[bytes, Future] = {}

    def authenticate(self, login: str, password: str, address: str | None) -> T | None:
        """The principal these credentials name, or ``None`` (unknown login, wrong
        password, disabled, or locked out). Raises :class:`KdfBusy`, and a backing
        service's error when neither cache can answer."""
        digest = credential_digest(self.scope, login, password)
        with self._lock:
            verified = self._verified.get(digest)
            refused = self._refused.get(digest, False)
        if verified is not None:
            if verified.fresh_until > self.clock():
                return verified.principal
            return self._once(digest, lambda: self._recheck(digest, verified, login, password, address))
        if refused:
            self.guard.record_failure(self.scope, login, address)
            return None
        try:
            self.guard.check(self.scope, login, address)
        except LockedOut:
            return None
        return self._once(digest, lambda: self._verify(digest, login, password, address))

    def _once(self, digest: bytes, work: Callable[[], T | None]) -> T | None:
        """``work()``, or the answer of the identical ``work`` already in flight."""
        with self._lock:
            running = self._in_flight.get(digest)
            if running is None:
                mine = self._in_flight[digest] = Future()
        if running is not None:
            return running.result()
        try:
            answer = work()
        except BaseException as error:
            mine.set_exception(error)
            raise
        else:
            mine.set_result(answer)
            return answer
        finally:
            with self._lock:
                del self._in_flight[digest]

    def _verify(self, digest: bytes, login: str, password: str, address: str | None) -> T | None:
        stored = self.load(login)
        with self.guard.kdf_slot():
            valid = verify_password(password, stored.password_hash if stored is not None else dummy_hash())
        if valid and stored is not None and stored.principal is not None:
            self._keep(digest, stored.principal, stored.password_hash)
            return stored.principal
        with self._lock:
            self._refused[digest] = True
        self.guard.record_failure(self.scope, login, address)
        return None

    def _recheck(self, digest: bytes, verified: _Verified[T], login: str, password: str,
                 address: str | None) -> T | None:
        """A pair verified before, past its TTL: the same stored hash and an enabled
        account keep it without a KDF; the database away, it is served as it was."""
        try:
            stored = self.load(login)
        except Exception as error:
            if not is_outage(error):
                raise
            log.warning("%s credentials of %r served unchecked: the database is away (%s)", self.scope.value,
                        login[:64], error)
            self._keep(digest, verified.principal, verified.password_hash)
            return verified.principal
        if stored is not None and stored.principal is not None and stored.password_hash == verified.password_hash:
            self._keep(digest, stored.principal, stored.password_hash)
            return stored.principal
        with self._lock:
            self._verified.pop(digest, None)
        if stored is None or stored.principal is None:
            with self._lock:
                self._refused[digest] = True
            return None
        return self._verify(digest, login, password, address)  # a new password: is this it?

    def _keep(self, digest: bytes, principal: T, password_hash: str) -> None:
        with self._lock:
            self._verified[digest] = _Verified(principal, password_hash, self.clock() + self.ttl)
            self._refused.pop(digest, None)
