"""Settings of the bulk SMS API (seed 001), read from ``SMSAGG_BULK_*`` variables.

They live here rather than in :mod:`app.settings` so the bulk area stays self-contained;
they are read the same way (one frozen, typed object; :func:`get_bulk_settings` reads the
environment once per process).

=============================================  ============  =====================================
variable                                       default       meaning
=============================================  ============  =====================================
``SMSAGG_BULK_MAX_DESTINATIONS``               ``10000``     destinations one request may name;
                                                             more is refused whole with 1706
``SMSAGG_BULK_DUPLICATE_WINDOW_SECONDS``       ``300``       same account + destination + text
                                                             within this window is 1041 (0 = off)
``SMSAGG_BULK_DEFAULT_PRICE``                  ``1``         credits per segment when no route or
                                                             carrier price applies
``SMSAGG_BULK_MAX_SCHEDULE_DAYS``              ``366``       how far ahead a send may be scheduled
``SMSAGG_BULK_REDIS_TIMEOUT_SECONDS``          ``5``         how long the ingress waits for Redis
                                                             before the outcome counts as unknown
``SMSAGG_BULK_FANOUT_CHUNK``                   ``1000``      task messages pushed per Redis call
                                                             by the fan-out task
``SMSAGG_BULK_RELEASE_INTERVAL_SECONDS``       ``0.5``       how often beat releases due schedules
=============================================  ============  =====================================
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from app.settings import SettingsError, _env_number

CREDIT_SCALE = 10_000
"""Credits are kept as integers of 1/10,000 credit (four decimals), in Redis and the database."""


def credits_to_units(value: str | Decimal | int | float) -> int:
    """``"0.05"`` -> 500. Raises ``ValueError`` for more than four decimals or garbage."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation as exc:
        raise ValueError(f"not an amount: {value!r}") from exc
    units = amount * CREDIT_SCALE
    if not amount.is_finite() or units != units.to_integral_value():
        raise ValueError(f"amounts have at most four decimals: {value!r}")
    return int(units)


def units_to_credits(units: int) -> Decimal:
    return (Decimal(units) / CREDIT_SCALE).quantize(Decimal("0.0001"))


@dataclass(frozen=True)
class BulkSettings:
    max_destinations: int = 10_000
    duplicate_window_seconds: int = 300
    default_price_units: int = CREDIT_SCALE
    max_schedule_days: int = 366
    redis_timeout_seconds: float = 5.0
    fanout_chunk: int = 1000
    release_interval_seconds: float = 0.5

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "BulkSettings":
        env = dict(os.environ if environ is None else environ)
        raw_price = env.get("SMSAGG_BULK_DEFAULT_PRICE") or "1"
        try:
            price = credits_to_units(raw_price)
        except ValueError as exc:
            raise SettingsError(f"SMSAGG_BULK_DEFAULT_PRICE={raw_price!r}: {exc}") from exc
        if price < 0:
            raise SettingsError("SMSAGG_BULK_DEFAULT_PRICE must not be negative")
        settings = cls(
            max_destinations=_env_number(env, "SMSAGG_BULK_MAX_DESTINATIONS", 10_000),
            duplicate_window_seconds=_env_number(env, "SMSAGG_BULK_DUPLICATE_WINDOW_SECONDS", 300),
            default_price_units=price,
            max_schedule_days=_env_number(env, "SMSAGG_BULK_MAX_SCHEDULE_DAYS", 366),
            redis_timeout_seconds=_env_number(env, "SMSAGG_BULK_REDIS_TIMEOUT_SECONDS", 5.0, float),
            fanout_chunk=_env_number(env, "SMSAGG_BULK_FANOUT_CHUNK", 1000),
            release_interval_seconds=_env_number(env, "SMSAGG_BULK_RELEASE_INTERVAL_SECONDS", 0.5, float),
        )
        if settings.max_destinations < 1 or settings.fanout_chunk < 1:
            raise SettingsError("SMSAGG_BULK_MAX_DESTINATIONS and SMSAGG_BULK_FANOUT_CHUNK must be at least 1")
        if settings.release_interval_seconds <= 0:
            raise SettingsError("SMSAGG_BULK_RELEASE_INTERVAL_SECONDS must be positive")
        return settings

    def with_overrides(self, **changes) -> "BulkSettings":
        return replace(self, **changes)


@lru_cache(maxsize=1)
def get_bulk_settings() -> BulkSettings:
    return BulkSettings.from_env()
