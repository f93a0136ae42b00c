"""The topology bench's guards, without building one: why it cannot run, and which
leftovers of earlier runs it may remove (only those whose process is gone)."""

from __future__ import annotations

import os

from app.bench import topology


def test_not_root_is_said_plainly(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert "root" in topology.unavailable_reason()


def test_missing_tools_are_named(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    monkeypatch.setattr(topology.shutil, "which", lambda tool: None if tool == "ip" else f"/usr/bin/{tool}")
    assert "no ip on PATH" in topology.unavailable_reason()


def test_only_leftovers_of_a_finished_process_are_stale():
    mine = f"{topology.NAME_PREFIX}{os.getpid()}-abc123-data"
    assert not topology._gone(mine, topology.NAME_PREFIX)
    assert topology._gone(f"{topology.NAME_PREFIX}999999999-abc123-data", topology.NAME_PREFIX)
    assert not topology._gone("other-999999999-x", topology.NAME_PREFIX)
    assert not topology._gone(f"{topology.NAME_PREFIX}probe-x", topology.NAME_PREFIX)
