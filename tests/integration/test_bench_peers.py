"""``smsagg bench peers`` itself, briefly and smsagg alone: the SMSC's self-test, smsagg
set up through its CLI and ``smsagg up``, wrk's load, the drain, the exactly-once check
against the SMSC and the message log, and the figures as JSON."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from app.bench.peers.run import wrk_available

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300),
              pytest.mark.skipif(not wrk_available(), reason="wrk is not installed")]


def test_a_short_smsagg_only_run_delivers_every_message_exactly_once(tmp_path):
    work, temp = tmp_path / "cwd", tmp_path / "tmp"
    work.mkdir()
    temp.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SMSAGG_")} | {"TMPDIR": str(temp)}
    done = subprocess.run([sys.executable, "-m", "app.cli", "bench", "peers", "--seconds", "2", "--warmup", "0",
                           "--only", "smsagg", "--json"], capture_output=True, text=True, timeout=280, cwd=work,
                          env=env)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    lines = done.stdout.splitlines()
    figures = json.loads(lines[-1])
    smsagg = figures["smsagg"]
    assert figures["passed"] and figures["kannel"] is None and figures["ratios"] == {}
    assert smsagg["accepted"] > 0 and smsagg["delivered"] >= smsagg["accepted"] and smsagg["drained"]
    assert smsagg["exactly_once"]["passed"]
    assert smsagg["exactly_once"]["segment_submits"] == smsagg["delivered"]
    assert {"web", "worker-bulk", "redis", "smsc", "wrk"} <= set(smsagg["cpu_pct_during_load"])
    assert figures["smsc_selftest"][0]["submits_per_s"] > 0
    assert any(line.startswith("exactly once, smsagg: PASS") for line in lines)
    assert list(work.iterdir()) == [] and list(temp.iterdir()) == []  # its temporary folder is gone too
