"""deploy/kubernetes: every smsagg container runs a command the CLI accepts, every part
has its probes (HTTP for the ingress, the heartbeat exec probe for workers and beat),
and kustomize renders the whole (when kubectl is installed). The Compose file's health
checks run real commands too."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import click
import pytest

from app.cli.main import main
from app.health import health

yaml = pytest.importorskip("yaml")

MANIFESTS = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def _documents() -> list[dict]:
    return [doc for path in sorted(MANIFESTS.glob("*.yaml")) if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def _smsagg_containers() -> list[tuple[str, dict]]:
    found = []
    for doc in _documents():
        if doc["kind"] in ("Deployment", "StatefulSet", "Job"):
            for container in doc["spec"]["template"]["spec"]["containers"]:
                if container["image"] == "smsagg":
                    found.append((doc["metadata"]["name"], container))
    return found


def _parses(command: list[str]) -> None:
    """Parse ``command`` as the CLI would (raises on an unknown command or option)."""
    if command[:3] == ["python", "-m", "app.health"]:
        health.make_context("health", command[3:])
        return
    assert command[0] == "smsagg", command
    chosen, args = main, command[1:]
    while isinstance(chosen, click.Group):
        chosen, args = chosen.commands[args[0]], args[1:]
    chosen.make_context(chosen.name, list(args))


def test_the_parse_check_catches_a_wrong_command():
    for wrong in (["smsagg", "worker", "--queuez", "mt.bulk"], ["smsagg", "db", "upgrade", "--all"],
                  ["python", "-m", "app.health", "--part", "proxy"]):
        with pytest.raises((click.UsageError, KeyError)):
            _parses(wrong)


def test_every_smsagg_container_and_probe_runs_a_real_command():
    containers = _smsagg_containers()
    assert {name for name, _ in containers} >= {"web", "cometd", "beat", "migrate", "worker-interactive",
                                                 "worker-bulk", "worker-inbound", "worker-callbacks"}
    for name, container in containers:
        _parses(container["command"])
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            if "exec" in container.get(probe, {}):
                _parses(container[probe]["exec"]["command"])


def test_every_long_running_part_is_probed():
    for name, container in _smsagg_containers():
        if name == "migrate":
            continue
        assert "livenessProbe" in container, name
        if name != "beat":  # beat takes no traffic and no rollout waits on it
            assert "readinessProbe" in container, name
        if name.startswith("worker-"):
            queue = container["command"][container["command"].index("--queues") + 1].split(",")[0]
            assert container["livenessProbe"]["exec"]["command"][-2:] == ["--queue", queue], name
            assert container["readinessProbe"]["exec"]["command"][-1] == "--ready", name
    web = dict(_smsagg_containers())["web"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"


@pytest.mark.skipif(shutil.which("kubectl") is None, reason="kubectl is not installed")
def test_kustomize_renders_every_resource():
    rendered = subprocess.run(["kubectl", "kustomize", str(MANIFESTS)], capture_output=True, text=True, timeout=60)
    assert rendered.returncode == 0, rendered.stderr
    kinds = [doc["kind"] for doc in yaml.safe_load_all(rendered.stdout) if doc]
    assert kinds.count("Deployment") == 7 and kinds.count("StatefulSet") == 2 and "Job" in kinds


def test_the_compose_health_checks_run_real_commands():
    compose = yaml.safe_load((MANIFESTS.parent / "docker-compose.yml").read_text())
    checked = 0
    for name, service in compose["services"].items():
        test = (service.get("healthcheck") or {}).get("test", [])
        if test[1:4] == ["python", "-m", "app.health"]:
            _parses(test[1:])
            checked += 1
    assert checked == 5  # the four worker groups and beat
