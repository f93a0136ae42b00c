import os
from pathlib import Path

import pytest

from app.settings import Settings, SettingsError


def test_defaults_use_var_and_sqlite_under_home():
    settings = Settings.from_env({})
    assert settings.home == Path("var")
    assert settings.database_url.startswith("sqlite:///") and settings.database_url.endswith("var/smsagg.db")
    assert settings.redis_url is None
    assert settings.key_prefix == "smsagg:"


def test_environment_overrides():
    settings = Settings.from_env({
        "SMSAGG_HOME": "/data", "SMSAGG_REDIS_URL": "redis://r:6379/2",
        "SMSAGG_DATABASE_URL": "postgresql+psycopg://db/smsagg", "SMSAGG_WEB_PORT": "9000",
        "SMSAGG_ALLOW_PRIVATE_CALLBACKS": "true",
    })
    assert settings.redis_url == "redis://r:6379/2"
    assert settings.database_url == "postgresql+psycopg://db/smsagg"
    assert settings.web_port == 9000 and settings.allow_private_callbacks


def test_callback_breakers_default_on_and_can_be_tuned_or_turned_off():
    assert (Settings.from_env({}).callback_breaker_failures, Settings.from_env({}).callback_probe_seconds) == (10, 5.0)
    tuned = Settings.from_env({"SMSAGG_CALLBACK_BREAKER_FAILURES": "0", "SMSAGG_CALLBACK_PROBE_SECONDS": "2.5"})
    assert (tuned.callback_breaker_failures, tuned.callback_probe_seconds) == (0, 2.5)


@pytest.mark.parametrize("env", [{"SMSAGG_WEB_PORT": "http"}, {"SMSAGG_ALLOW_PRIVATE_CALLBACKS": "maybe"},
                                 {"SMSAGG_CREDENTIAL_CACHE_SECONDS": "-1"},
                                 {"SMSAGG_CALLBACK_BREAKER_FAILURES": "ten"},
                                 {"SMSAGG_CALLBACK_PROBE_SECONDS": "-5"}])
def test_bad_values_are_clear_errors(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_redis_url_is_required_outside_smsagg_up():
    with pytest.raises(SettingsError, match="smsagg up"):
        Settings.from_env({}).require_redis_url()


def _running_gateway(home):
    """A claimed home with a run file, as ``smsagg up`` leaves them while it runs."""
    from app import runfile

    claim = runfile.HomeClaim(home)
    claim.acquire(wait_seconds=0)
    runfile.write(home, runfile.RunInfo(
        pid=os.getpid(), started_at=0.0, redis_url="redis://127.0.0.1:6401/0", redis_embedded=True,
        database_url="sqlite:////gateway/smsagg.db", key_prefix="gw:", web_url="http://127.0.0.1:8080",
        smsc_sim_port=2775, smsc_sim_control_port=2776))
    return claim


def test_a_command_beside_smsagg_up_takes_redis_database_and_prefix_from_its_run_file(tmp_path):
    claim = _running_gateway(tmp_path)
    try:
        settings = Settings.from_env_and_run_file({"SMSAGG_HOME": str(tmp_path)})
        assert settings.redis_url == "redis://127.0.0.1:6401/0" and settings.require_redis_url()
        assert settings.database_url == "sqlite:////gateway/smsagg.db" and settings.key_prefix == "gw:"
        assert settings.running_gateway.smsc_sim_control_port == 2776 and settings.gateway_note == ""

        chosen = Settings.from_env_and_run_file({"SMSAGG_HOME": str(tmp_path), "SMSAGG_DATABASE_URL": "sqlite:///x.db",
                                                 "SMSAGG_REDIS_PREFIX": "mine:"})
        assert (chosen.redis_url, chosen.database_url, chosen.key_prefix) == (
            "redis://127.0.0.1:6401/0", "sqlite:///x.db", "mine:")

        explicit = Settings.from_env_and_run_file({"SMSAGG_HOME": str(tmp_path),
                                                   "SMSAGG_REDIS_URL": "redis://elsewhere:6379/1"})
        assert explicit.redis_url == "redis://elsewhere:6379/1" and explicit.running_gateway is None
    finally:
        claim.release()


def test_a_stale_run_file_gives_no_redis_and_says_why(tmp_path):
    _running_gateway(tmp_path).release()  # the gateway died: nobody holds the home any more
    settings = Settings.from_env_and_run_file({"SMSAGG_HOME": str(tmp_path)})
    assert settings.redis_url is None and settings.running_gateway is None
    assert "no longer running" in settings.gateway_note
    assert settings.database_url.endswith(f"{tmp_path}/smsagg.db")
    with pytest.raises(SettingsError, match="no gateway is running"):
        settings.require_redis_url()


def test_no_run_file_no_note():
    settings = Settings.from_env_and_run_file({"SMSAGG_HOME": "/nonexistent/smsagg-home"})
    assert settings.redis_url is None and settings.gateway_note == ""


@pytest.mark.parametrize("env", [{"SMSAGG_RESTART_LIMIT_BURST": "0"}, {"SMSAGG_RESTART_DELAY_SECONDS": "soon"}])
def test_bad_restart_settings_are_clear_errors(env):
    with pytest.raises(SettingsError, match=next(iter(env))):
        Settings.from_env(env)


def test_mms_size_limit_and_mmsc_simulator_port():
    assert (Settings.from_env({}).max_mms_bytes, Settings.from_env({}).mmsc_sim_port) == (300 * 1024, 2777)
    settings = Settings.from_env({"SMSAGG_MAX_MMS_BYTES": "614400", "SMSAGG_MMSC_SIM_PORT": "8190"})
    assert (settings.max_mms_bytes, settings.mmsc_sim_port) == (614400, 8190)


def test_request_line_limit_is_one_setting_and_bounded():
    """SMSAGG_MAX_REQUEST_LINE: the app's limit; the HTTP server's is at least twice it."""
    from app.web.server import server_request_line_limit

    assert Settings.from_env({}).max_request_line == 32768
    assert Settings.from_env({"SMSAGG_MAX_REQUEST_LINE": "20000"}).max_request_line == 20000
    for bad in ("100", "40000", "x"):
        with pytest.raises(SettingsError, match="SMSAGG_MAX_REQUEST_LINE"):
            Settings.from_env({"SMSAGG_MAX_REQUEST_LINE": bad})
    with pytest.raises(SettingsError, match="SMSAGG_WEB_SERVER=gunicorn"):
        Settings.from_env({"SMSAGG_MAX_REQUEST_LINE": "65536"})
    # gunicorn is told its bound, so it takes longer lines
    gunicorn = {"SMSAGG_WEB_SERVER": "gunicorn"}
    assert Settings.from_env({**gunicorn, "SMSAGG_MAX_REQUEST_LINE": "65536"}).max_request_line == 65536
    with pytest.raises(SettingsError, match="SMSAGG_MAX_REQUEST_LINE"):
        Settings.from_env({**gunicorn, "SMSAGG_MAX_REQUEST_LINE": str(2 * 1024 * 1024)})
    for server in ("granian", "gunicorn"):
        limit = Settings.from_env({"SMSAGG_WEB_SERVER": server}).max_request_line
        assert server_request_line_limit(limit, server) >= 2 * limit
    assert server_request_line_limit(20000, "gunicorn") == 40000


def test_web_server_workers_and_threads():
    default = Settings.from_env({})
    assert (default.web_server, default.web_workers, default.web_threads) == ("granian", 2, 4)
    assert Settings.from_env({"SMSAGG_WEB_SERVER": "gunicorn"}).web_threads == 8
    chosen = Settings.from_env({"SMSAGG_WEB_SERVER": "Gunicorn", "SMSAGG_WEB_WORKERS": "4", "SMSAGG_WEB_THREADS": "8"})
    assert (chosen.web_server, chosen.web_workers, chosen.web_threads) == ("gunicorn", 4, 8)
    for name, bad in (("SMSAGG_WEB_SERVER", "uvicorn"), ("SMSAGG_WEB_WORKERS", "0"), ("SMSAGG_WEB_THREADS", "x")):
        with pytest.raises(SettingsError, match=name):
            Settings.from_env({name: bad})


def test_trusted_proxies_are_cidrs():
    assert Settings.from_env({}).trusted_proxies == ()
    proxies = Settings.from_env({"SMSAGG_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1 ::1"}).trusted_proxies
    assert [str(network) for network in proxies] == ["10.0.0.0/8", "127.0.0.1/32", "::1/128"]
    with pytest.raises(SettingsError, match="SMSAGG_TRUSTED_PROXIES: 'nginx' is not an IP network"):
        Settings.from_env({"SMSAGG_TRUSTED_PROXIES": "10.0.0.0/8,nginx"})
