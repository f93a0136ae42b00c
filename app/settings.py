"""The one typed settings object, read from ``SMSAGG_*`` environment variables.

Everything configurable lives here and nowhere else; other modules receive a
``Settings`` (or call :func:`get_settings`) instead of reading ``os.environ``.

Redis layout (one Redis database serves one gateway):

* Celery's broker uses the queue names ``mt.interactive``, ``mt.interactive_low``,
  ``mt.bulk``, ``mt.bulk_low``, ``inbound`` and ``callbacks`` plus kombu's own
  ``_kombu.*`` and ``unacked*`` keys.
* Everything the gateway itself stores sits under ``key_prefix`` (default
  ``smsagg:``): idempotency claims, token buckets, the scheduler index.

Tests isolate themselves by pointing ``SMSAGG_REDIS_URL`` at a database number of
their own and ``SMSAGG_REDIS_PREFIX`` at a prefix of their own.

A command typed beside a running ``smsagg up`` (another terminal, the same
``SMSAGG_HOME``) has no ``SMSAGG_REDIS_URL``: :func:`get_settings` then takes the Redis
URL, and the database URL and key prefix not set in the environment, from that
gateway's run file (``app.runfile``). The parts ``smsagg up`` starts get them in their
environment.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

from app import runfile
from app.domain.forwarded import Network, parse_networks
from app.runfile import RunInfo


PLACEHOLDER_REDIS_PASSWORD = "change-me-smsagg-redis-password"
"""The password deploy/redis.conf and smsagg.env ship with, refused at start-up."""


class SettingsError(ValueError):
    """An ``SMSAGG_*`` variable holds a value that cannot be used."""


def _env_bool(env: dict[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise SettingsError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def _env_number(env: dict[str, str], name: str, default: float, kind: type = int):
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = kind(raw)
    except ValueError as exc:
        raise SettingsError(f"{name}={raw!r} is not a {kind.__name__}") from exc
    if value < 0:
        raise SettingsError(f"{name}={raw!r} must not be negative")
    return value


MIN_REQUEST_LINE, MAX_REQUEST_LINE = 1024, 1024 * 1024

GRANIAN_REQUEST_TARGET_LIMIT = 65534
"""The longest request target granian's parser (hyper, with the ``http`` crate's ``Uri``)
takes; longer gets its bare 414, whatever granian is told."""

WEB_SERVERS = ("granian", "gunicorn")
DEFAULT_WEB_THREADS = {"granian": 4, "gunicorn": 8}
"""Each server's best thread count here (docs/performance.md): granian's Rust side reads
and writes the sockets, so its Python threads only run the app."""


def _env_request_line(env: dict[str, str], web_server: str) -> int:
    """``SMSAGG_MAX_REQUEST_LINE``: under granian at most half its parser's fixed bound,
    so a line up to twice the setting still reaches the app."""
    high = GRANIAN_REQUEST_TARGET_LIMIT // 2 + 1 if web_server == "granian" else MAX_REQUEST_LINE
    value = _env_number(env, "SMSAGG_MAX_REQUEST_LINE", 32 * 1024)
    if not MIN_REQUEST_LINE <= value <= high:
        longer = " (SMSAGG_WEB_SERVER=gunicorn takes longer lines)" if web_server == "granian" else ""
        raise SettingsError(f"SMSAGG_MAX_REQUEST_LINE={value} must be within {MIN_REQUEST_LINE}..{high}{longer}")
    return value


def _env_positive(env: dict[str, str], name: str, default: int) -> int:
    value = _env_number(env, name, default)
    if value < 1:
        raise SettingsError(f"{name}={env[name]!r} must be at least 1")
    return value


def _env_seconds(env: dict[str, str], name: str, default: float) -> float:
    value = _env_number(env, name, default, float)
    if value <= 0:
        raise SettingsError(f"{name}={env[name]!r} must be more than 0")
    return value


def _env_networks(env: dict[str, str], name: str) -> tuple[Network, ...]:
    try:
        return parse_networks(env.get(name) or "")
    except ValueError as exc:
        raise SettingsError(f"{name}: {exc}") from exc


def _env_choice(env: dict[str, str], name: str, choices: tuple[str, ...]) -> str:
    raw = (env.get(name) or choices[0]).strip().lower()
    if raw not in choices:
        raise SettingsError(f"{name}={raw!r}: use one of {', '.join(choices)}")
    return raw


@dataclass(frozen=True)
class Settings:
    """Gateway configuration. Build it with :meth:`from_env`; never mutate it."""

    home: Path = Path("var")
    redis_url: str | None = None
    database_url: str = ""
    key_prefix: str = "smsagg:"
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    cometd_port: int = 8081  # `smsagg cometd`: the GMS CometD long-polls (docs/gms.md)
    smsc_sim_port: int = 2775
    mmsc_sim_port: int = 2777
    # Verified (login, password) pairs are trusted for this long in each ingress
    # process, so the slow KDF never runs per request in steady state.
    credential_cache_seconds: float = 30.0
    # Failed logins (docs/security.md): after this many failures from one client address
    # (an IPv6 /64), or for one login, within the window, further attempts get the API's
    # authentication code without the KDF running (0: no limit). At most
    # auth_kdf_concurrency password checks run at once per process; one more is answered
    # "busy, retry" at once. Verified and refused credentials are each kept in an LRU of
    # auth_cache_size entries per process.
    auth_address_failures: int = 5
    auth_login_failures: int = 10
    auth_window_seconds: int = 60
    auth_kdf_concurrency: int = 1
    auth_cache_size: int = 10_000
    # Accounts, senders and carriers are re-read from the database this often.
    directory_refresh_seconds: float = 5.0
    # How long a client's message_id stays claimed in Redis (the database keeps
    # the unique key forever).
    idempotency_ttl_seconds: int = 7 * 24 * 3600
    max_request_bytes: int = 2 * 1024 * 1024
    # The ingress's HTTP server (app/web/server.py): granian, or gunicorn for what
    # granian cannot do (underscore header names behind a proxy that passes them,
    # request lines past 32 KiB); its processes and the threads of each.
    web_server: str = "granian"
    web_workers: int = 2
    web_threads: int = 4
    # Longest request line (method, target, version) the ingress answers; longer ones get
    # the API's own refusal (the bulk API's ``1702||``). 32 KiB holds a bulk GET with
    # 1,000 destinations of 13 digits (~16 KB) and a 1,600-character message of 3-byte
    # characters. The HTTP server's own limit is at least twice this (app/web/server.py),
    # so the app answers first.
    max_request_line: int = 32 * 1024
    # Largest MMS accepted (attachments plus text): 300 KB, the size every MMS client
    # and relay must handle (OMA MMS conformance, "Video Basic" content class).
    max_mms_bytes: int = 300 * 1024
    default_max_message_length: int = 1600
    allow_private_callbacks: bool = False
    # The callback endpoints' circuit breakers (app.domain.circuit_breaker): this many
    # failed attempts in a row open an endpoint's breaker (0: no breakers), and while it is
    # open one probe goes every ``callback_probe_seconds``; the others wait parked.
    callback_breaker_failures: int = 10
    callback_probe_seconds: float = 5.0
    log_level: str = "INFO"
    # ``smsagg up`` starts a part that died again after this delay (doubling, up to
    # 30 s), and stops the gateway when one part died ``restart_limit_burst`` times
    # within ``restart_limit_seconds`` (systemd's RestartSec and StartLimitBurst).
    restart_delay_seconds: float = 1.0
    restart_limit_burst: int = 5
    restart_limit_seconds: float = 60.0
    # The ``smsagg up`` found through the run file in ``home``, and why a run file found
    # there was not used (a gateway that crashed left it).
    running_gateway: RunInfo | None = None
    gateway_note: str = ""
    # Signs the console's session cookies; unset: one generated and kept in
    # $SMSAGG_HOME/secret_key. Hosts behind one console address must share it.
    secret_key: str | None = None
    # Mark the console's session cookie Secure (the console is served over HTTPS).
    console_secure_cookie: bool = False
    # The embedded Redis of ``smsagg up``: "everysec" (deploy/'s setting) or "always".
    redis_appendfsync: str = "everysec"
    # Proxies (CIDRs) whose X-Forwarded-For is believed: the client is the right-most
    # address of the chain not in them (app.domain.forwarded). Empty: the TCP peer is
    # the client, whatever it sends.
    trusted_proxies: tuple[Network, ...] = ()
    # GET /metrics: with a token, only requests with "Authorization: Bearer <token>";
    # without, loopback clients only (app.web.metrics).
    metrics_token: str | None = None
    # Each process adds what it counted to Redis this often (and when it stops).
    metrics_flush_seconds: float = 5.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> "Settings":
        env = dict(os.environ if environ is None else environ)
        home = Path(env.get("SMSAGG_HOME") or "var")
        database_url = env.get("SMSAGG_DATABASE_URL") or f"sqlite:///{(home / 'smsagg.db').resolve()}"
        return cls(
            home=home,
            redis_url=env.get("SMSAGG_REDIS_URL") or None,
            database_url=database_url,
            key_prefix=env.get("SMSAGG_REDIS_PREFIX") or "smsagg:",
            web_host=env.get("SMSAGG_WEB_HOST") or "127.0.0.1",
            web_port=_env_number(env, "SMSAGG_WEB_PORT", 8080),
            cometd_port=_env_number(env, "SMSAGG_COMETD_PORT", 8081),
            smsc_sim_port=_env_number(env, "SMSAGG_SMSC_SIM_PORT", 2775),
            mmsc_sim_port=_env_number(env, "SMSAGG_MMSC_SIM_PORT", 2777),
            credential_cache_seconds=_env_number(env, "SMSAGG_CREDENTIAL_CACHE_SECONDS", 30.0, float),
            directory_refresh_seconds=_env_number(env, "SMSAGG_DIRECTORY_REFRESH_SECONDS", 5.0, float),
            auth_address_failures=_env_number(env, "SMSAGG_AUTH_ADDRESS_FAILURES", 5),
            auth_login_failures=_env_number(env, "SMSAGG_AUTH_LOGIN_FAILURES", 10),
            auth_window_seconds=_env_positive(env, "SMSAGG_AUTH_WINDOW_SECONDS", 60),
            auth_kdf_concurrency=_env_positive(env, "SMSAGG_AUTH_KDF_CONCURRENCY", 1),
            auth_cache_size=_env_positive(env, "SMSAGG_AUTH_CACHE_SIZE", 10_000),
            idempotency_ttl_seconds=_env_number(env, "SMSAGG_IDEMPOTENCY_TTL_SECONDS", 7 * 24 * 3600),
            max_request_bytes=_env_number(env, "SMSAGG_MAX_REQUEST_BYTES", 2 * 1024 * 1024),
            web_server=(web_server := _env_choice(env, "SMSAGG_WEB_SERVER", WEB_SERVERS)),
            web_workers=_env_positive(env, "SMSAGG_WEB_WORKERS", 2),
            web_threads=_env_positive(env, "SMSAGG_WEB_THREADS", DEFAULT_WEB_THREADS[web_server]),
            max_request_line=_env_request_line(env, web_server),
            max_mms_bytes=_env_number(env, "SMSAGG_MAX_MMS_BYTES", 300 * 1024),
            default_max_message_length=_env_number(env, "SMSAGG_DEFAULT_MAX_MESSAGE_LENGTH", 1600),
            allow_private_callbacks=_env_bool(env, "SMSAGG_ALLOW_PRIVATE_CALLBACKS", False),
            callback_breaker_failures=_env_number(env, "SMSAGG_CALLBACK_BREAKER_FAILURES", 10),
            callback_probe_seconds=_env_number(env, "SMSAGG_CALLBACK_PROBE_SECONDS", 5.0, float),
            log_level=(env.get("SMSAGG_LOG_LEVEL") or "INFO").upper(),
            secret_key=env.get("SMSAGG_SECRET_KEY") or None,
            console_secure_cookie=_env_bool(env, "SMSAGG_CONSOLE_SECURE_COOKIE", False),
            redis_appendfsync=_env_choice(env, "SMSAGG_REDIS_APPENDFSYNC", ("everysec", "always")),
            trusted_proxies=_env_networks(env, "SMSAGG_TRUSTED_PROXIES"),
            metrics_token=env.get("SMSAGG_METRICS_TOKEN") or None,
            metrics_flush_seconds=_env_seconds(env, "SMSAGG_METRICS_FLUSH_SECONDS", 5.0),
            restart_delay_seconds=_env_number(env, "SMSAGG_RESTART_DELAY_SECONDS", 1.0, float),
            restart_limit_burst=_env_positive(env, "SMSAGG_RESTART_LIMIT_BURST", 5),
            restart_limit_seconds=_env_number(env, "SMSAGG_RESTART_LIMIT_SECONDS", 60.0, float),
        )

    @classmethod
    def from_env_and_run_file(cls, environ: dict[str, str] | None = None) -> "Settings":
        """:meth:`from_env`, joined to the ``smsagg up`` running on the same home when
        ``SMSAGG_REDIS_URL`` is not set (variables that are set still win)."""
        env = dict(os.environ if environ is None else environ)
        settings = cls.from_env(env)
        if settings.redis_url:
            return settings
        lookup = runfile.find_running(settings.home)
        gateway = lookup.gateway
        if gateway is None:
            return replace(settings, gateway_note=lookup.note)
        return replace(
            settings,
            running_gateway=gateway,
            redis_url=gateway.redis_url,
            database_url=settings.database_url if env.get("SMSAGG_DATABASE_URL") else gateway.database_url,
            key_prefix=settings.key_prefix if env.get("SMSAGG_REDIS_PREFIX") else gateway.key_prefix,
        )

    def with_overrides(self, **changes) -> "Settings":
        return replace(self, **changes)

    def require_redis_url(self) -> str:
        """The Redis URL, or a clear error: only ``smsagg up`` starts its own Redis."""
        if not self.redis_url:
            raise SettingsError(
                f"no gateway is running on SMSAGG_HOME={self.home} and SMSAGG_REDIS_URL is not set: "
                "start 'smsagg up' (commands in another terminal find it through the same SMSAGG_HOME), "
                "or set SMSAGG_REDIS_URL (e.g. redis://127.0.0.1:6379/0)"
            )
        if PLACEHOLDER_REDIS_PASSWORD in self.redis_url:
            raise SettingsError("SMSAGG_REDIS_URL still holds the placeholder password of deploy/: set Redis's "
                                "requirepass and this URL to a password of your own (openssl rand -hex 32)")
        return self.redis_url


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment (and a running
    gateway's run file)."""
    return Settings.from_env_and_run_file()
