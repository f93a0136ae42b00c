"""A circuit breaker per client endpoint (callbacks): while an endpoint fails, its
callbacks are parked instead of each one being tried, one probe per interval tests it,
and the first success closes it again. Pure: no I/O, no clock (``now`` is passed in);
the shared copy lives in Redis (``app.adapters.endpoint_breakers``).

States
    ``closed``     every callback is sent. ``failures`` counts failed attempts in a row
                   (any answer but 2xx, no answer); ``failures_to_open`` of them open it.
    ``open``       callbacks are parked, not sent. At ``until`` the next probe may go.
    ``half_open``  one probe is in flight; the others are parked. ``until`` is when the
                   probe is given up (its sender died): the next one may then go.

Transitions (`admit` before sending, `record` after)
    closed     --failures_to_open failures in a row-->  open (until = now + probe_interval)
    open       --now >= until: one caller admitted as the probe-->  half_open (until = now + probe_timeout)
    half_open  --now >= until (probe lost)-->  the next caller is the probe
    half_open  --the probe failed-->  open (until = now + probe_interval)
    any        --any 2xx-->  closed (failures = 0): the caller releases the parked callbacks

A failure that is not the probe's (a batch admitted before the breaker opened) does not
move an open or half-open breaker: only the probe decides, once per interval.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from urllib.parse import urlsplit

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half_open"


@dataclass(frozen=True)
class BreakerPolicy:
    failures_to_open: int = 10
    probe_interval: float = 5.0
    probe_timeout: float = 45.0
    """Longer than a callback's 30 s ceiling: a probe still unanswered by then was lost."""


@dataclass(frozen=True)
class Breaker:
    state: str = CLOSED
    failures: int = 0
    until: float = 0.0

    @property
    def is_closed(self) -> bool:
        return self.state == CLOSED


class Admission(enum.Enum):
    SEND = "send"  # closed: send everything
    PROBE = "probe"  # send one callback as the probe, park the rest
    PARK = "park"  # send nothing


def admit(breaker: Breaker, now: float, policy: BreakerPolicy) -> tuple[Admission, Breaker]:
    """What a batch for this endpoint may do now, and the breaker after it (a probe
    admitted moves it to half-open, so no other caller probes at the same time)."""
    if breaker.is_closed:
        return Admission.SEND, breaker
    if now >= breaker.until:
        return Admission.PROBE, Breaker(HALF_OPEN, breaker.failures, now + policy.probe_timeout)
    return Admission.PARK, breaker


def record(breaker: Breaker, *, successes: int, failures: int, probe: bool, now: float,
           policy: BreakerPolicy) -> Breaker:
    """The breaker after a batch's answers: ``probe`` if the batch carried the probe."""
    if successes:
        return Breaker()
    if not failures:
        return breaker
    if breaker.is_closed:
        total = breaker.failures + failures
        if total >= policy.failures_to_open:
            return Breaker(OPEN, total, now + policy.probe_interval)
        return Breaker(CLOSED, total)
    if probe:
        return Breaker(OPEN, breaker.failures + failures, now + policy.probe_interval)
    return breaker


def parked_attempts(*, attempts: int, max_retries: int, parked_at: float | None, retry_interval: int,
                    now: float) -> int:
    """Attempts a parked callback is counted for: one per ``retry_interval`` it spent
    parked (its endpoint's probes failing meanwhile), as if it had been tried on its own
    schedule; never so many that its last attempt is not a real one."""
    if parked_at is None:
        return 0
    intervals = int(max(0.0, now - parked_at) // max(1, retry_interval))
    return max(0, min(intervals, max_retries - attempts))


def is_last_attempt(*, attempts: int, max_retries: int) -> bool:
    """Only one attempt is left (``1 + max_retries`` in all): it is sent whatever the
    breaker says, so a callback is dead-lettered after a real attempt, on schedule."""
    return attempts >= max_retries


def park_deadline(*, attempts: int, max_retries: int, parked_at: float, retry_interval: int) -> float:
    """When a callback parked at ``parked_at`` is due for its last attempt if its endpoint
    never recovers: the end of its documented retry schedule."""
    return parked_at + max(0, max_retries - attempts) * max(1, retry_interval)


def endpoint_of(url: str) -> str:
    """The endpoint a URL's callbacks share a breaker on: scheme, host and port (two
    accounts on one server share it; a path does not make another endpoint)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme, 0)
        host = (parts.hostname or "").lower()
    except ValueError:
        return url[:200]
    return f"{parts.scheme}://{host}:{port}"
