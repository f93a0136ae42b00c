"""The ``date``, ``time`` and ``gmt`` parameters of ``/bulksms/schedulemsg`` (seed 001,
"Submit Scheduler Messages"), parsed without I/O or a clock (``now`` is passed in).

Formats, as the seed's parameter table gives them, and where it is terse:

* ``date`` ``MM/DD/YYYY`` (``03/03/2018``). One-digit month or day is accepted
  (``3/3/2018``); the date must exist (``02/30/2027`` is refused).
* ``time`` ``hh:mm am/pm`` (``03:45 am``, ``11:51 pm``): hours 00 to 12, minutes 00 to 59,
  ``am``/``pm`` in any case, the space before it optional. ``12:xx am`` is just after
  midnight and ``12:xx pm`` just after noon; ``00`` reads as ``12`` (the seed's range
  starts at 00).
* ``gmt`` ``GMT +hh:mm``, ``GMT -hh:mm``, ``+hh:mm`` or ``-hh:mm``: hours 0 to 12 (one or
  two digits, ``GMT +1:30``), minutes ``00`` or ``30``, ``GMT`` in any case. A missing
  sign means ``+``: a ``+`` that the client did not URL-encode arrives as a space, and
  ``GMT 5:30`` / `` 5:30`` can only have meant ``+5:30``. ``+14:00`` or ``+05:45`` are
  refused (outside the seed's ranges).

Anything else raises :class:`InvalidSchedule`; the API answers 1702 ("one of the
parameters was not provided or left blank" is the seed's only code for a bad URL).
A moment already past is due at once (:func:`due_epoch`); one further ahead than the
configured horizon is refused.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

_DATE = re.compile(r"(\d{1,2})/(\d{1,2})/(\d{4})")
_TIME = re.compile(r"(\d{1,2}):(\d{2})\s*([ap]m)", re.IGNORECASE)
_GMT = re.compile(r"(?:gmt)?\s*([+-])?\s*(\d{1,2}):(\d{2})", re.IGNORECASE)


class InvalidSchedule(ValueError):
    """``reason`` says which parameter and why; it is logged and documented."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


def parse_utc_offset(raw: str) -> timedelta:
    match = _GMT.fullmatch(raw.strip())
    if match is None:
        raise InvalidSchedule(f"gmt {raw!r} is not GMT +hh:mm, GMT -hh:mm, +hh:mm or -hh:mm")
    sign, hours, minutes = match.group(1) or "+", int(match.group(2)), match.group(3)
    if hours > 12 or minutes not in ("00", "30"):
        raise InvalidSchedule(f"gmt {raw!r}: hours 0 to 12 and minutes 00 or 30")
    offset = timedelta(hours=hours, minutes=int(minutes))
    return -offset if sign == "-" else offset


def parse_local_datetime(date: str, time: str) -> datetime:
    date_match = _DATE.fullmatch(date.strip())
    if date_match is None:
        raise InvalidSchedule(f"date {date!r} is not MM/DD/YYYY")
    time_match = _TIME.fullmatch(time.strip())
    if time_match is None:
        raise InvalidSchedule(f"time {time!r} is not hh:mm am/pm")
    month, day, year = (int(g) for g in date_match.groups())
    hour, minute, half = int(time_match.group(1)), int(time_match.group(2)), time_match.group(3).lower()
    if hour > 12 or minute > 59:
        raise InvalidSchedule(f"time {time!r}: hours 00 to 12, minutes 00 to 59")
    hour = hour % 12 + (12 if half == "pm" else 0)
    try:
        return datetime(year, month, day, hour, minute)
    except ValueError as exc:
        raise InvalidSchedule(f"date {date!r} does not exist") from exc


def parse_schedule(date: str, time: str, gmt: str) -> datetime:
    """The scheduled moment, in UTC."""
    local = parse_local_datetime(date, time)
    offset = parse_utc_offset(gmt)
    return (local - offset).replace(tzinfo=timezone.utc)


def due_epoch(moment: datetime, *, now: float, max_days: int) -> float:
    """When to send: ``now`` for a moment already past, else the moment (epoch seconds)."""
    due = moment.timestamp()
    if due - now > max_days * 86400:
        raise InvalidSchedule(f"{moment.isoformat()} is more than {max_days} days ahead")
    return max(due, now)
