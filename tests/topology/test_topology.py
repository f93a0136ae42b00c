"""The gateway on several hosts of one machine (``app.bench.topology``: network
namespaces, each part with its own address and SMSAGG_HOME): a message goes end to end,
and when every process of one worker host is killed with ``kill -9`` under load, every
accepted message still reaches the SMSC and its DR reaches the client.

40 to 60 s, so excluded from the default run (pyproject ``addopts``):
``python -m pytest -m topology -n 0`` (one process: its figures are printed). It needs
root and working ``ip netns``; elsewhere it skips and says why."""

from __future__ import annotations

import os
import subprocess

import pytest

from app.bench import topology

pytestmark = [pytest.mark.topology, pytest.mark.timeout(180)]


@pytest.fixture(scope="module")
def figures():
    reason = topology.unavailable_reason()
    if reason:
        pytest.skip(f"the multi-host topology cannot run on this machine: {reason}")
    return topology.failover(print)


def test_every_accepted_message_is_delivered_and_reported_when_a_worker_host_dies(figures, capsys):
    with capsys.disabled():
        print("\n" + "\n".join(figures.lines()))
    assert figures.mt_handled_by_killed_host > 0, "worker-a was killed before it had any share of the work"
    assert figures.killed_pids >= 2
    assert figures.accepted_after_kill > 0 and figures.refused == 0
    assert figures.lost == 0 and figures.reached_smsc == figures.accepted
    assert figures.unreported == 0


def test_the_surviving_host_and_the_probes_say_so(figures):
    code, text = figures.probes["worker-b worker --ready"]
    assert code == 0 and "ready" in text
    code, text = figures.probes["worker-b beat (none there)"]
    assert code == 1 and "no heartbeat" in text


def test_nothing_is_left_behind(figures):
    ours = f"{topology.NAME_PREFIX}{os.getpid()}-"
    listed = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    assert [name for name in listed if name.startswith(ours)] == []
