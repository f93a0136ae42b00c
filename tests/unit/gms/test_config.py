"""gms.ini parsing."""

from __future__ import annotations

import pytest

from app.gms.config import ConfigError, GmsConfig, load_config, parse_config
from app.gms.domain import Builtin, Strategy

SEED_EXAMPLE = """
[gms]
access_code_length = 4
cometd_timeout = 10

[service:iPhoneService]
type = built-in
name = request-interaction
ttl = 7200
provide_code = false
resource_group = iPhoneService

[resource-group:iPhoneService]
numbers = +1 800 555 0100, 18005550101
strategy = round-robin
booking_timeout = 45
"""


def test_the_seeds_iphone_service_example():
    config = parse_config(SEED_EXAMPLE)
    service = config.service("iPhoneService")
    assert service.builtin is Builtin.REQUEST_INTERACTION and service.ttl == 7200
    assert service.options == {"provide_code": "false", "resource_group": "iPhoneService"}
    group = config.groups["iPhoneService"]
    assert group.numbers == ("18005550100", "18005550101")
    assert group.strategy is Strategy.ROUND_ROBIN and group.booking_timeout == 45 and group.source == "config"
    assert config.options.access_code_length == 4 and config.options.cometd_timeout == 10
    assert config.service("request-chat").builtin is Builtin.REQUEST_CHAT  # built-ins are always there
    assert config.service("nope") is None


@pytest.mark.parametrize("text, fragment", [
    ("[service:x]\ntype = ors\nservice = request-interaction", "not supported"),
    ("[service:x]\nservice = request-nothing", "not a built-in"),
    ("[service:x]\nservice = request-interaction", "resource_group is mandatory"),
    ("[service:x]\nservice = request-chat\nttl = -1", "ttl"),
    ("[service:x]\nservice = request-chat\ncolour = blue", "unknown option"),
    ("[service:request-chat]\nservice = request-chat", "built-in's name"),
    ("[resource-group:g]\nnumbers = 1, 1", "twice"),
    ("[resource-group:g]\nnumbers =", "at least one"),
    ("[resource-group:g]\nnumbers = 1\nstrategy = fastest", "strategy"),
    ("[gms]\naccess_code_length = 40", "access_code_length"),
    ("[gms]\ncometd_timeout = 0", "cometd_timeout"),
    ("[gms]\ncometd_timeout = soon", "cometd_timeout is not a number"),
    ("[gms]\ncometd_poll_interval = 0", "cometd_poll_interval must be within 0.1..60"),
    ("[gms]\ncometd_max_parked = 0", "cometd_max_parked"),
    ("[gms]\ncometd_timeout = 30\ncometd_session_timeout = 30", "longer than cometd_timeout"),
    ("[weird]\nx = 1", "unknown section"),
    ("not an ini file", "gms.ini"),
])
def test_bad_configuration_is_named(text, fragment):
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert fragment in str(error.value)


def test_missing_file_is_an_empty_configuration(tmp_path):
    assert load_config(tmp_path) == GmsConfig()
    (tmp_path / "gms.ini").write_text(SEED_EXAMPLE)
    assert "iPhoneService" in load_config(tmp_path).services


def test_cometd_options():
    options = parse_config("[gms]\ncometd_poll_interval = 0.5\ncometd_max_parked = 20").options
    assert (options.cometd_poll_interval, options.cometd_max_parked) == (0.5, 20)
    assert (GmsConfig().options.cometd_poll_interval, GmsConfig().options.cometd_max_parked) == (2.0, 10_000)


@pytest.mark.parametrize("options, builtin", [
    ("service = request-interaction\nname = request-interaction", Builtin.REQUEST_INTERACTION),
    ("service = request-interaction\nname = Both", Builtin.REQUEST_INTERACTION),  # name: the service's own
    ("name = request-interaction", Builtin.REQUEST_INTERACTION),  # the seed's iPhoneService example
    ("service = request-interaction", Builtin.REQUEST_INTERACTION),  # the seed's option table
])
def test_a_service_may_name_its_builtin_by_service_name_or_both(options, builtin):
    """Seed 003 names the built-in ``service`` (request-interaction's option table) and
    ``name`` (the iPhoneService example, match-interaction's table): both together load."""
    config = parse_config(f"[service:Both]\ntype = builtin\n{options}\nresource_group = g\n")
    assert config.service("Both").builtin is builtin and "name" not in config.service("Both").options


def test_match_interactions_own_configuration_loads():
    """Seed 003, match-interaction "Configuration": type builtin, name match-interaction."""
    config = parse_config("[service:ivr-match]\ntype = builtin\nname = match-interaction\n")
    assert config.service("ivr-match").builtin is Builtin.MATCH_INTERACTION


def test_chat_endpoints_and_match_apps():
    config = parse_config("""
[gms]
match_apps = ivr, ors
chat_endpoint = sales

[chat-endpoint:sales]
agents = alice, bob

[chat-endpoint:vip]
agents = bob

[service:vip-chat]
service = request-chat
chat_endpoint = Environment:vip
""")
    assert config.may_match("ivr") and not config.may_match("mobileapp")
    assert config.options.chat_endpoint == "sales" and config.service("vip-chat").options["chat_endpoint"] == "vip"
    assert config.agent_endpoints("bob") == {"sales", "vip"} and config.agent_endpoints("alice") == {"sales"}
    assert config.agent_endpoints("carol") == {"default"}  # listed nowhere: the default endpoint
    assert parse_config("").may_match("anyone") and parse_config("").options.chat_endpoint == "default"


@pytest.mark.parametrize("text, fragment", [
    ("[service:x]\nservice = request-interaction\nname = request-chat\nresource_group = g", "disagree"),
    ("[service:x]\nservice = request-access\nbooking_expiration_timeout = 0", "booking_expiration_timeout"),
    ("[service:x]\nservice = request-access\nbooking_expiration_timeout = soon", "booking_expiration_timeout"),
    ("[service:x]\nservice = request-chat\nchat_endpoint = nowhere", "no [chat-endpoint:nowhere]"),
    ("[service:x]\nservice = request-access\nchat_endpoint = default", "request-chat services only"),
    ("[gms]\nchat_endpoint = nowhere", "no [chat-endpoint:nowhere]"),
    ("[gms]\nchat_endpoint = bad name!", "chat endpoint"),
    ("[gms]\nmatch_apps =", "match_apps"),
    ("[gms]\nmatch_apps = ivr, *", "match_apps"),
    ("[chat-endpoint:sales]\nagents =", "agents is mandatory"),
    ("[chat-endpoint:sales]\nagents = alice\nqueue = 1", "unknown option"),
    ("[chat-endpoint:sales]\nagents = al ice", "agent"),
])
def test_bad_seed_rule_configuration_is_named(text, fragment):
    with pytest.raises(ConfigError) as error:
        parse_config(text)
    assert fragment in str(error.value)
