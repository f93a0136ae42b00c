"""Commands typed in a second terminal: they find the running gateway through its run
file (``app.runfile``), and every operator's mistake ends in one line on stderr and exit
status 1, never a traceback (``app.cli.common.OperatorErrorsGroup``): no gateway, a stale
run file, Redis or the database out of reach, a schema missing or out of date, a second
``smsagg up`` or a busy port."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time

import pytest
from click.testing import CliRunner

from app import runfile
from app.cli.main import main
from app.db import migrate
from app.settings import get_settings
from tests.conftest import TEST_REDIS_URL, free_port


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A terminal with no SMSAGG_* variable but SMSAGG_HOME, in an empty directory."""
    for name in [n for n in os.environ if n.startswith("SMSAGG_")]:
        monkeypatch.delenv(name)
    path = tmp_path / "home"
    monkeypatch.setenv("SMSAGG_HOME", str(path))
    monkeypatch.chdir(tmp_path)
    get_settings.cache_clear()
    yield path
    get_settings.cache_clear()


class Ran:
    def __init__(self, result) -> None:
        self.code, self.stdout, self.stderr = result.exit_code, result.stdout, result.stderr
        self.exception = result.exception

    @property
    def error_lines(self) -> list[str]:
        return self.stderr.strip().splitlines()


def smsagg(*args: str) -> Ran:
    get_settings.cache_clear()
    ran = Ran(CliRunner().invoke(main, list(args)))
    assert ran.exception is None or isinstance(ran.exception, SystemExit), ran.exception
    assert "Traceback" not in ran.stdout + ran.stderr
    return ran


def failed_in_one_line(ran: Ran) -> str:
    assert ran.code == 1, ran.stdout + ran.stderr
    assert len(ran.error_lines) == 1, ran.stderr
    return ran.error_lines[0]


@pytest.fixture
def running_gateway(home, key_prefix, redis_client):
    """What a running ``smsagg up`` leaves for other commands: its home claimed and a run
    file naming its Redis (the suite's), database and simulator control port."""
    claim = runfile.HomeClaim(home)
    claim.acquire(wait_seconds=0)
    info = runfile.RunInfo(pid=os.getpid(), started_at=time.time(), redis_url=TEST_REDIS_URL, redis_embedded=False,
                           database_url=f"sqlite:///{home / 'smsagg.db'}", key_prefix=key_prefix,
                           web_url="http://127.0.0.1:9", smsc_sim_port=None, smsc_sim_control_port=free_port())
    runfile.write(home, info)
    yield info
    claim.release()


NEEDS_REDIS = [
    ["queues"], ["schedule", "list"], ["schedule", "cancel", "0123456789abcdef01234567"],
    ["callbacks", "replay", "--all-failed"], ["batch", "status", "0123456789abcdef01234567", "--once"],
    ["bulk", "resync"], ["account", "credit", "show", "demo"], ["dnd", "add", "12025550100"],
    ["optout", "add", "--account", "demo", "12025550100"], ["web"], ["cometd"], ["worker", "--queues", "mt.bulk"],
    ["beat"], ["status"],
]


@pytest.mark.parametrize("args", NEEDS_REDIS, ids=" ".join)
def test_a_command_that_needs_the_gateway_says_in_one_line_that_none_is_running(home, args):
    line = failed_in_one_line(smsagg(*args))
    assert line.startswith("Error: no gateway is running on SMSAGG_HOME=") and "smsagg up" in line


def test_commands_in_a_second_terminal_find_the_running_gateway(running_gateway, home, redis_client):
    queues = smsagg("queues", "--json")
    assert queues.code == 0, queues.stderr
    assert {row["queue"] for row in json.loads(queues.stdout)} >= {"mt.bulk", "callbacks"}
    scheduled = smsagg("schedule", "list", "--json")
    assert (scheduled.code, json.loads(scheduled.stdout)) == (0, [])

    created = smsagg("account", "create", "--login", "demo", "--password", "secret", "--sender", "12345")
    assert created.code == 0 and "account demo created" in created.stdout
    with sqlite3.connect(home / "smsagg.db") as db:  # the run file's database
        assert db.execute("select login from accounts").fetchall() == [("demo",)]
    balance = smsagg("account", "credit", "show", "demo", "--json")
    assert balance.code == 0 and json.loads(balance.stdout)["login"] == "demo"

    # the simulator's control port comes from the run file too (nothing listens there)
    injected = smsagg("smsc-sim", "inject-mo", "--from", "12025550100", "--to", "12345", "--text", "hi")
    assert f"127.0.0.1:{running_gateway.smsc_sim_control_port}" in failed_in_one_line(injected)


def test_a_stale_run_file_is_ignored_removed_and_reported(home):
    home.mkdir()
    runfile.write(home, runfile.RunInfo(pid=999_999_999, started_at=time.time(), redis_url=TEST_REDIS_URL,
                                        redis_embedded=True, database_url="sqlite:///x.db", key_prefix="x:",
                                        web_url="http://127.0.0.1:9"))
    ran = smsagg("queues")
    assert ran.code == 1 and len(ran.error_lines) == 2, ran.stderr
    assert "stale" in ran.error_lines[0] and "pid 999999999" in ran.error_lines[0]
    assert ran.error_lines[1].startswith("Error: no gateway is running")
    assert not runfile.run_file(home).exists()
    assert len(smsagg("queues").error_lines) == 1  # reported once


def test_redis_out_of_reach_is_one_line(home, monkeypatch):
    port = free_port()
    monkeypatch.setenv("SMSAGG_REDIS_URL", f"redis://127.0.0.1:{port}/0")
    line = failed_in_one_line(smsagg("queues"))
    assert line.startswith("Error: Redis is not answering") and str(port) in line


def test_a_database_out_of_reach_is_one_line(home, monkeypatch):
    monkeypatch.setenv("SMSAGG_DATABASE_URL", f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/smsagg")
    line = failed_in_one_line(smsagg("account", "list"))
    assert line.startswith("Error: the database could not be used:")


def test_the_schema_under_smsagg_home_is_created_and_upgraded_on_first_use(home, monkeypatch):
    created = smsagg("account", "create", "--login", "demo", "--password", "secret")
    assert created.code == 0 and "account demo created" in created.stdout
    assert created.error_lines == [f"smsagg: the database sqlite:///{(home / 'smsagg.db').resolve()} has no schema: "
                                   "brought it up to date"]
    assert smsagg("account", "list", "--json").stderr == ""

    older = home / "older.db"
    migrate.upgrade(f"sqlite:///{older}", "0001")
    monkeypatch.setenv("SMSAGG_DATABASE_URL", f"sqlite:///{older}")
    ran = smsagg("account", "list", "--json")
    assert ran.code == 0 and "has an older schema: brought it up to date" in ran.stderr
    assert migrate.schema_state(f"sqlite:///{older}") is migrate.SchemaState.CURRENT


def test_an_external_database_without_the_schema_is_left_to_the_operator(home, tmp_path, monkeypatch):
    elsewhere = f"sqlite:///{tmp_path / 'elsewhere.db'}"
    monkeypatch.setenv("SMSAGG_DATABASE_URL", elsewhere)
    line = failed_in_one_line(smsagg("account", "create", "--login", "demo", "--password", "secret"))
    assert line == f"Error: the database {elsewhere} has no schema: run 'smsagg db upgrade'"
    assert "database is up to date" in smsagg("db", "upgrade").stdout
    assert smsagg("account", "create", "--login", "demo", "--password", "secret").code == 0


@pytest.mark.postgres
def test_an_external_postgres_database_without_the_schema_is_one_line(home, postgres_url, monkeypatch):
    monkeypatch.setenv("SMSAGG_DATABASE_URL", postgres_url)
    line = failed_in_one_line(smsagg("callbacks", "list"))
    assert line.endswith("has no schema: run 'smsagg db upgrade'")


def test_a_schema_newer_than_this_smsagg_is_one_line(home, tmp_path, monkeypatch):
    newer = tmp_path / "newer.db"
    migrate.upgrade(f"sqlite:///{newer}")
    with sqlite3.connect(newer) as db:
        db.execute("update alembic_version set version_num = '9999_from_the_future' "
                   "where rowid = (select min(rowid) from alembic_version)")
    monkeypatch.setenv("SMSAGG_DATABASE_URL", f"sqlite:///{newer}")
    assert failed_in_one_line(smsagg("account", "list")).endswith("has a schema newer than this smsagg knows: "
                                                                  "upgrade smsagg")


def test_up_refuses_a_home_another_smsagg_up_holds(running_gateway):
    line = failed_in_one_line(smsagg("up"))
    assert line.startswith("Error: another smsagg up is running on SMSAGG_HOME=")
    assert running_gateway.web_url in line


def test_up_refuses_a_busy_ingress_port_before_starting_anything(home):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        line = failed_in_one_line(smsagg("up", "--port", str(port), "--no-smsc-sim"))
    assert line.startswith(f"Error: the ingress port 127.0.0.1:{port} is in use")
    assert not (home / "redis").exists() and not runfile.run_file(home).exists()
