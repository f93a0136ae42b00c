"""The probes against a real Redis: ``smsagg health`` reads this host's heartbeats,
the ingress answers ``/livez``, ``/healthz`` and ``/readyz``."""

from __future__ import annotations

import socket
from dataclasses import replace

import redis
from click.testing import CliRunner

from app.adapters.heartbeats import Heartbeat
from app.cli.main import main
from app.settings import get_settings
from app.web import create_app


def _health(settings, monkeypatch, *args):
    for name, value in (("SMSAGG_HOME", str(settings.home)), ("SMSAGG_DATABASE_URL", settings.database_url),
                        ("SMSAGG_REDIS_URL", settings.redis_url), ("SMSAGG_REDIS_PREFIX", settings.key_prefix)):
        monkeypatch.setenv(name, value)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(main, ["health", *args])
    finally:
        get_settings.cache_clear()


def test_a_worker_beating_on_this_host_is_alive_and_ready(settings, redis_client, monkeypatch):
    Heartbeat(redis_client, settings.key_prefix, "worker", queues=("callbacks",)).beat()
    for args in ((), ("--ready",), ("--queue", "callbacks")):
        result = _health(settings, monkeypatch, "--part", "worker", *args)
        assert result.exit_code == 0, result.output
    assert f"worker on {socket.gethostname()}" in result.output


def test_a_part_without_a_heartbeat_here_fails_the_probe(settings, redis_client, monkeypatch):
    Heartbeat(redis_client, settings.key_prefix, "worker", queues=("callbacks",)).beat()
    for args in (("--part", "beat"), ("--part", "worker", "--queue", "mt.bulk"),
                 ("--part", "worker", "--host", "another-host", "--ready")):
        result = _health(settings, monkeypatch, *args)
        assert result.exit_code == 1 and "no heartbeat" in result.output, args


def test_redis_away_is_alive_but_not_ready(settings, monkeypatch):
    away = replace(settings, redis_url=f"redis://127.0.0.1:{_closed_port()}/0")
    assert _health(away, monkeypatch, "--part", "worker").exit_code == 0
    result = _health(away, monkeypatch, "--part", "worker", "--ready")
    assert result.exit_code == 1 and "Redis does not answer" in result.output


def test_the_ingress_probes(gateway):
    client = create_app(gateway).test_client()
    assert client.get("/livez").get_json() == {"status": "ok"}
    assert client.get("/readyz").get_json() == {"status": "ready", "redis": "ok", "database": "ok"}


def test_readyz_names_what_does_not_answer(gateway, tmp_path):
    unreachable = replace(gateway, database_url=f"postgresql+psycopg://nobody@127.0.0.1:{_closed_port()}/none")
    app = create_app(unreachable)
    reply = app.test_client().get("/readyz")
    assert reply.status_code == 503
    body = reply.get_json()
    assert body["status"] == "unavailable" and body["redis"] == "ok" and body["database"] != "ok"
    app.extensions["smsagg"]["store"].client = redis.Redis(port=_closed_port(), socket_connect_timeout=0.5)
    body = app.test_client().get("/readyz").get_json()
    assert body["redis"] != "ok" and app.test_client().get("/livez").status_code == 200


def test_readyz_gives_up_on_a_database_that_never_answers(gateway):
    with socket.socket() as silent:  # accepts connections (the backlog) and never says a word
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        port = silent.getsockname()[1]
        app = create_app(replace(gateway, database_url=f"postgresql+psycopg://nobody@127.0.0.1:{port}/none"))
        reply = app.test_client().get("/readyz")
    assert reply.status_code == 503 and "timeout" in reply.get_json()["database"].lower()


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]
