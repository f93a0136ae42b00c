"""The run file through which commands find a running ``smsagg up`` (``app.runfile``):
present (its home claimed), stale (left by a gateway that crashed), absent, not ours;
and a second claim on a home refused."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time

import pytest

from app import runfile
from app.runfile import HomeClaim, HomeInUse, RunInfo


def info(**changes) -> RunInfo:
    fields = dict(pid=os.getpid(), started_at=time.time(), redis_url="redis://127.0.0.1:6399/0", redis_embedded=True,
                  database_url="sqlite:////data/smsagg.db", key_prefix="smsagg:", web_url="http://127.0.0.1:8080",
                  smsc_sim_port=2775, smsc_sim_control_port=2776, parts={"web": 12345})
    return RunInfo(**{**fields, **changes})


@pytest.fixture
def claim(tmp_path):
    held = HomeClaim(tmp_path)
    held.acquire(wait_seconds=0)
    yield held
    held.release()


def test_absent_run_file_is_no_gateway_and_no_note(tmp_path):
    assert runfile.find_running(tmp_path) == runfile.Lookup(None, "")
    assert runfile.find_running(tmp_path / "never-created") == runfile.Lookup(None, "")


def test_present_run_file_of_a_claimed_home_is_the_running_gateway(tmp_path, claim):
    written = info()
    runfile.write(tmp_path, written)
    assert runfile.find_running(tmp_path) == runfile.Lookup(written, "")
    assert stat.S_IMODE(runfile.run_file(tmp_path).stat().st_mode) == 0o600  # a database URL may hold a password
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_stale_run_file_is_ignored_removed_and_explained(tmp_path):
    """Nobody holds the lock: the gateway that wrote the file is gone (crashed, kill -9)."""
    runfile.write(tmp_path, info(pid=999_999_999))
    lookup = runfile.find_running(tmp_path)
    assert lookup.gateway is None
    assert "stale" in lookup.note and "pid 999999999" in lookup.note and "no longer running" in lookup.note
    assert not runfile.run_file(tmp_path).exists()
    assert runfile.find_running(tmp_path) == runfile.Lookup(None, "")  # said once


def test_a_run_file_of_a_dead_process_whose_lock_died_with_it(tmp_path):
    """A real crash: the process that held the lock was killed; its lock went with it."""
    script = ("import sys, time; from pathlib import Path; from app.runfile import HomeClaim; "
              "claim = HomeClaim(Path(sys.argv[1])); claim.acquire(); print('held', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline() == "held\n"
        runfile.write(tmp_path, info(pid=holder.pid))
        assert runfile.find_running(tmp_path).gateway.pid == holder.pid
        with pytest.raises(HomeInUse, match=f"pid {holder.pid}"):
            HomeClaim(tmp_path).acquire(wait_seconds=0.1)
    finally:
        holder.kill()
        holder.wait()
    lookup = runfile.find_running(tmp_path)
    assert lookup.gateway is None and f"pid {holder.pid}" in lookup.note


def test_a_file_that_is_not_a_run_file_is_ignored_with_a_note(tmp_path):
    runfile.run_file(tmp_path).write_text("{not json")
    lookup = runfile.find_running(tmp_path)
    assert lookup.gateway is None and "not a run file" in lookup.note


def test_a_second_claim_on_the_same_home_is_refused(tmp_path, claim):
    runfile.write(tmp_path, info())
    with pytest.raises(HomeInUse, match="another smsagg up is running") as refused:
        HomeClaim(tmp_path).acquire(wait_seconds=0.1)
    assert "http://127.0.0.1:8080" in str(refused.value)


def test_claiming_a_home_removes_what_a_dead_gateway_left(tmp_path):
    runfile.write(tmp_path, info(pid=999_999_999))
    claim = HomeClaim(tmp_path)
    try:
        assert "pid 999999999" in claim.acquire(wait_seconds=0)
        assert not runfile.run_file(tmp_path).exists()
    finally:
        claim.release()
    assert HomeClaim(tmp_path).acquire(wait_seconds=0) == ""


def test_a_claim_released_frees_the_home(tmp_path, claim):
    claim.release()
    again = HomeClaim(tmp_path)
    again.acquire(wait_seconds=0)
    again.release()


def test_run_info_round_trips_and_rejects_other_json():
    written = info()
    assert RunInfo.from_json(written.to_json()) == written
    with pytest.raises(ValueError):
        RunInfo.from_json('{"pid": 1}')
    with pytest.raises(ValueError):
        RunInfo.from_json("[1, 2]")
