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


@pytest.mark.parametrize("env", [{"SMSAGG_WEB_PORT": "http"}, {"SMSAGG_ALLOW_PRIVATE_CALLBACKS": "maybe"},
                                 {"SMSAGG_CREDENTIAL_CACHE_SECONDS": "-1"}])
def test_bad_values_are_clear_errors(env):
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def test_redis_url_is_required_outside_smsagg_up():
    with pytest.raises(SettingsError, match="smsagg up"):
        Settings.from_env({}).require_redis_url()


def test_mms_size_limit_and_mmsc_simulator_port():
    assert (Settings.from_env({}).max_mms_bytes, Settings.from_env({}).mmsc_sim_port) == (300 * 1024, 2777)
    settings = Settings.from_env({"SMSAGG_MAX_MMS_BYTES": "614400", "SMSAGG_MMSC_SIM_PORT": "8190"})
    assert (settings.max_mms_bytes, settings.mmsc_sim_port) == (614400, 8190)
