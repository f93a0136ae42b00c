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
