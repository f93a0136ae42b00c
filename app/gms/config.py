"""``SMSAGG_HOME/gms.ini``: the mobile services' configuration file (docs/gms.md).

Parsing is pure (:func:`parse_config` takes the text); :func:`load_config` only
reads the file. A missing file is an empty configuration; a malformed one is a
:class:`ConfigError` naming the section and option, raised at startup rather than
on the first request.

Sections::

    [gms]                      global options (all optional)
    [service:NAME]             a custom service built on a built-in
    [resource-group:NAME]      a pool of access numbers
    [chat-endpoint:NAME]       an agent group chats are routed to (``agents = a, b``)
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, field
from pathlib import Path

from app.gms.domain import (
    BUILTINS,
    CONFIGURABLE,
    DEFAULT_ACCESS_CODE_LENGTH,
    DEFAULT_CHAT_ENDPOINT,
    MAX_ACCESS_CODE_LENGTH,
    MAX_BOOKING_SECONDS,
    Builtin,
    GmsError,
    InvalidParameter,
    ResourceGroup,
    ServiceDefinition,
    Strategy,
    chat_endpoint_name,
    normalise_access_number,
    parse_bool,
    parse_int,
    validate_name,
)

CONFIG_FILE = "gms.ini"


class ConfigError(ValueError):
    """gms.ini holds something that cannot be used."""


@dataclass(frozen=True)
class GmsOptions:
    access_code_length: int = DEFAULT_ACCESS_CODE_LENGTH
    # Default reservation time of an access number when neither the request, the
    # service nor the group says otherwise (GMS's _booking_expiration_timeout).
    booking_expiration_timeout: int = 30
    max_ttl: int = 30 * 24 * 3600  # longest service or storage TTL accepted
    max_upload_bytes: int = 5 * 1024 * 1024  # a whole create/storage request body
    cometd_timeout: float = 25.0  # longest a /meta/connect long-poll is held, seconds
    cometd_session_timeout: int = 120  # a CometD client not heard from for this long is dropped
    # /meta/connect on the ingress is never held: it answers at once and advises the
    # client to poll again after this many seconds (long-polls belong on `smsagg cometd`).
    cometd_poll_interval: float = 2.0
    # Long-polls one `smsagg cometd` process holds at once; beyond, connects are
    # answered at once with the polling advice.
    cometd_max_parked: int = 10_000
    chat_ttl: int = 3600  # a chat session lives this long after its last activity
    # Apps that may call match-interaction, which looks through every app's services
    # (seed 003: "for ALL Services"); None = any authenticated app (docs/gms.md).
    match_apps: frozenset[str] | None = None
    # Where a request-chat goes when neither the request nor its service names an endpoint.
    chat_endpoint: str = DEFAULT_CHAT_ENDPOINT


@dataclass(frozen=True)
class GmsConfig:
    options: GmsOptions = field(default_factory=GmsOptions)
    services: dict[str, ServiceDefinition] = field(default_factory=dict)
    groups: dict[str, ResourceGroup] = field(default_factory=dict)
    # chat endpoint -> the agents who answer its chats ([chat-endpoint:NAME] agents = ...)
    endpoints: dict[str, frozenset[str]] = field(default_factory=dict)

    def service(self, name: str) -> ServiceDefinition | None:
        return self.services.get(name) or BUILTINS.get(name)

    def may_match(self, app: str) -> bool:
        allowed = self.options.match_apps
        return allowed is None or app in allowed

    def endpoint_known(self, name: str) -> bool:
        return name == DEFAULT_CHAT_ENDPOINT or name in self.endpoints

    def agent_endpoints(self, agent: str) -> frozenset[str]:
        """The endpoints whose chats ``agent`` answers: those listing it, else ``default``."""
        listed = frozenset(name for name, agents in self.endpoints.items() if agent in agents)
        return listed or frozenset({DEFAULT_CHAT_ENDPOINT})


def _int(section: str, parser: configparser.ConfigParser, option: str, low: int, high: int, default):
    try:
        return parse_int(option, parser.get(section, option, fallback=None), minimum=low, maximum=high, default=default)
    except GmsError as exc:
        raise ConfigError(f"[{section}] {exc.message}") from None


def _seconds(section: str, parser: configparser.ConfigParser, option: str, low: float, high: float,
             default: float) -> float:
    try:
        value = float(parser.get(section, option, fallback=str(default)))
    except ValueError:
        raise ConfigError(f"[{section}] {option} is not a number") from None
    if not low <= value <= high:
        raise ConfigError(f"[{section}] {option} must be within {low:g}..{high:g} seconds")
    return value


def parse_config(text: str, source: str = CONFIG_FILE) -> GmsConfig:
    parser = configparser.ConfigParser(interpolation=None, inline_comment_prefixes=(";", "#"))
    parser.optionxform = str.lower  # type: ignore[assignment]
    try:
        parser.read_string(text, source=source)
    except configparser.Error as exc:
        raise ConfigError(f"{source}: {exc}") from None

    options = GmsOptions()
    if parser.has_section("gms"):
        s = "gms"
        cometd_timeout = _seconds(s, parser, "cometd_timeout", 0.1, 300, options.cometd_timeout)
        cometd_poll_interval = _seconds(s, parser, "cometd_poll_interval", 0.1, 60, options.cometd_poll_interval)
        options = GmsOptions(
            access_code_length=_int(s, parser, "access_code_length", 1, MAX_ACCESS_CODE_LENGTH, options.access_code_length),
            booking_expiration_timeout=_int(s, parser, "booking_expiration_timeout", 1, 86400, options.booking_expiration_timeout),
            max_ttl=_int(s, parser, "max_ttl", 1, 366 * 24 * 3600, options.max_ttl),
            max_upload_bytes=_int(s, parser, "max_upload_bytes", 1024, 1024**3, options.max_upload_bytes),
            cometd_timeout=cometd_timeout,
            cometd_session_timeout=_int(s, parser, "cometd_session_timeout", 5, 86400, options.cometd_session_timeout),
            cometd_poll_interval=cometd_poll_interval,
            cometd_max_parked=_int(s, parser, "cometd_max_parked", 1, 1_000_000, options.cometd_max_parked),
            chat_ttl=_int(s, parser, "chat_ttl", 10, 7 * 24 * 3600, options.chat_ttl),
            match_apps=_match_apps(parser.get(s, "match_apps", fallback="*")),
            chat_endpoint=_endpoint(s, parser.get(s, "chat_endpoint", fallback=None)) or DEFAULT_CHAT_ENDPOINT,
        )
        if options.cometd_session_timeout <= options.cometd_timeout:
            raise ConfigError("[gms] cometd_session_timeout must be longer than cometd_timeout "
                              "(a client would expire while its long-poll is held)")

    services: dict[str, ServiceDefinition] = {}
    groups: dict[str, ResourceGroup] = {}
    endpoints: dict[str, frozenset[str]] = {}
    for section in parser.sections():
        if section == "gms":
            continue
        kind, _, name = section.partition(":")
        name = name.strip()
        try:
            if kind.strip() == "service" and name:
                validate_name(name, "service", "service")
                services[name] = _service(parser, section, name, options)
            elif kind.strip() == "resource-group" and name:
                validate_name(name, "resource group", "resource_group")
                groups[name] = _group(parser, section, name)
            elif kind.strip() == "chat-endpoint" and name:
                validate_name(name, "chat endpoint", "chat_endpoint")
                endpoints[name] = _agents(parser, section)
            else:
                raise ConfigError(f"[{section}] unknown section (use [gms], [service:NAME], [resource-group:NAME], "
                                  "[chat-endpoint:NAME])")
        except GmsError as exc:
            raise ConfigError(f"[{section}] {exc.message}") from None
    config = GmsConfig(options=options, services=services, groups=groups, endpoints=endpoints)
    _check_endpoints(config)
    return config


def _match_apps(raw: str) -> frozenset[str] | None:
    names = [n.strip() for n in raw.replace("\n", ",").split(",") if n.strip()]
    if names == ["*"]:
        return None
    if not names or "*" in names:
        raise ConfigError("[gms] match_apps is * (any app) or a comma-separated list of app names")
    for name in names:
        validate_name(name, "app", "match_apps")
    return frozenset(names)


def _endpoint(section: str, raw: str | None) -> str | None:
    try:
        return chat_endpoint_name(raw, "chat_endpoint")
    except GmsError as exc:
        raise ConfigError(f"[{section}] {exc.message}") from None


def _agents(parser: configparser.ConfigParser, section: str) -> frozenset[str]:
    unknown = set(dict(parser.items(section))) - {"agents"}
    if unknown:
        raise ConfigError(f"[{section}] unknown option(s): {', '.join(sorted(unknown))}")
    names = [n.strip() for n in parser.get(section, "agents", fallback="").replace("\n", ",").split(",") if n.strip()]
    if not names:
        raise ConfigError(f"[{section}] agents is mandatory: the agents who answer this endpoint's chats")
    for name in names:
        validate_name(name, "agent", "agents")
    return frozenset(names)


def _check_endpoints(config: GmsConfig) -> None:
    """Every endpoint a chat could be routed to by configuration is one agents serve."""
    named = [("[gms] chat_endpoint", config.options.chat_endpoint)]
    named += [(f"[service:{d.name}] chat_endpoint", d.options["chat_endpoint"])
              for d in config.services.values() if "chat_endpoint" in d.options]
    for where, endpoint in named:
        if not config.endpoint_known(endpoint):
            raise ConfigError(f"{where} = {endpoint}: no [chat-endpoint:{endpoint}] section")


def _service(parser: configparser.ConfigParser, section: str, name: str, options: GmsOptions) -> ServiceDefinition:
    if name in BUILTINS:
        raise ConfigError(f"[{section}] a custom service cannot take a built-in's name")
    values = dict(parser.items(section))
    kind = values.pop("type", "builtin").strip().lower()
    if kind not in {"builtin", "built-in"}:
        raise ConfigError(f"[{section}] type={kind!r} is not supported (only builtin)")
    builtin = _builtin(section, name, values.pop("service", None), values.pop("name", None))
    ttl = _int(section, parser, "ttl", 1, options.max_ttl, None)
    values.pop("ttl", None)
    code_length = _int(section, parser, "access_code_length", 1, MAX_ACCESS_CODE_LENGTH, None)
    values.pop("access_code_length", None)
    fixed: dict[str, str] = {}
    for option in list(values):
        if option in CONFIGURABLE:
            fixed[option] = values.pop(option).strip()
    if "provide_code" in fixed:
        parse_bool("provide_code", fixed["provide_code"])
    if "booking_expiration_timeout" in fixed:
        _int(section, parser, "booking_expiration_timeout", 1, MAX_BOOKING_SECONDS, None)
    if "chat_endpoint" in fixed:
        if builtin is not Builtin.REQUEST_CHAT:
            raise ConfigError(f"[{section}] chat_endpoint is an option of request-chat services only")
        fixed["chat_endpoint"] = _endpoint(section, fixed["chat_endpoint"]) or ""
    if values:
        raise ConfigError(f"[{section}] unknown option(s): {', '.join(sorted(values))}")
    if builtin is Builtin.REQUEST_INTERACTION and not fixed.get("resource_group"):
        raise ConfigError(f"[{section}] resource_group is mandatory for a request-interaction service")
    return ServiceDefinition(name=name, builtin=builtin, ttl=ttl, options=fixed, access_code_length=code_length)


def _builtin(section: str, name: str, service: str | None, named: str | None) -> Builtin:
    """The built-in a custom service runs. The seed names it two ways: ``service`` in its
    option table ("This will always be request-interaction"), ``name`` in its iPhoneService
    example and in match-interaction's table. Either may be given, or both: then
    ``service`` names the built-in and ``name`` must name the same one or the service
    itself (the section's NAME)."""
    service, named = (service or "").strip() or None, (named or "").strip() or None
    chosen = service or named or ""
    if service and named and named not in (service, name):
        raise ConfigError(f"[{section}] service={service!r} and name={named!r} disagree: name is the built-in "
                          f"(as service) or this service's own name ({name!r})")
    try:
        return Builtin(chosen)
    except ValueError:
        raise ConfigError(f"[{section}] service={chosen!r} is not a built-in service "
                          f"({', '.join(b.value for b in Builtin)})") from None


def _group(parser: configparser.ConfigParser, section: str, name: str) -> ResourceGroup:
    raw = parser.get(section, "numbers", fallback="")
    numbers = parse_numbers(raw, parameter="numbers")
    unknown = set(dict(parser.items(section))) - {"numbers", "strategy", "booking_timeout"}
    if unknown:
        raise ConfigError(f"[{section}] unknown option(s): {', '.join(sorted(unknown))}")
    return ResourceGroup(
        name=name,
        numbers=numbers,
        strategy=Strategy.parse(parser.get(section, "strategy", fallback="random")),
        booking_timeout=_int(section, parser, "booking_timeout", 1, 86400, None),
        source="config",
    )


def parse_numbers(raw: str, parameter: str = "numbers") -> tuple[str, ...]:
    """A comma (or newline) separated list of access numbers, duplicates refused;
    formatting inside a number (``+1 800 555-0100``) is dropped."""
    parts = [p for p in raw.replace("\n", ",").split(",") if p.strip()]
    if not parts:
        raise InvalidParameter(parameter, "at least one access number is needed")
    numbers = tuple(normalise_access_number(parameter, p.strip()) for p in parts)
    if len(set(numbers)) != len(numbers):
        raise InvalidParameter(parameter, "an access number is listed twice")
    return numbers


def load_config(home: Path) -> GmsConfig:
    path = Path(home) / CONFIG_FILE
    if not path.exists():
        return GmsConfig()
    return parse_config(path.read_text(encoding="utf-8"), source=str(path))
