"""Nothing open by default (issue "Faults under load", part 7): the shipped Redis
configurations refuse a client without the password, smsagg refuses the placeholder
password, and ``rediss://`` (TLS, with a password in the URL) works for the gateway's
own clients, a real worker and the ingress, against a TLS redis-server the test starts
with a certificate it makes."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import redis
from sqlalchemy import select

from app.adapters.redis_scripts import connect
from app.adapters.stage_queue import StageQueue
from app.db import migrate
from app.db.models import MoMessage
from app.db.session import session_scope
from app.embedded_redis import PERSISTENCE
from app.settings import PLACEHOLDER_REDIS_PASSWORD, Settings, SettingsError
from tests.conftest import free_port
from tests.integration.conftest import provision
from tests.integration.redis_server import RedisServer
from tests.integration.workers import running, wait_until, worker_ready

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
pytestmark = pytest.mark.integration


def conf_values(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.strip().partition(" ")
            values[name] = value
    return values


def test_deploy_redis_conf_refuses_a_client_without_the_password(tmp_path):
    conf = conf_values(DEPLOY / "redis.conf")
    assert conf["protected-mode"] == "yes" and conf["bind"].split()[0] == "127.0.0.1"
    with RedisServer(tmp_path, conf=DEPLOY / "redis.conf") as server:
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=server.port).ping()
        assert redis.Redis(port=server.port, password=conf["requirepass"]).ping()


def test_compose_and_systemd_give_redis_and_every_part_a_password():
    compose = (DEPLOY / "docker-compose.yml").read_text()
    redis_service = compose[compose.index("\n  redis:\n"):compose.index("\n  postgres:\n")]
    assert '"--requirepass", "${SMSAGG_REDIS_PASSWORD:?' in redis_service
    assert "ports:" not in redis_service  # reachable on the compose network only
    assert re.search(r"SMSAGG_REDIS_URL: redis://:\$\{SMSAGG_REDIS_PASSWORD:\?[^}]*\}@redis:6379/0", compose)
    env = dict(line.split("=", 1) for line in (DEPLOY / "systemd" / "smsagg.env").read_text().splitlines()
               if line and not line.startswith("#"))
    assert env["SMSAGG_REDIS_URL"].startswith(f"redis://:{conf_values(DEPLOY / 'redis.conf')['requirepass']}@")


def test_smsagg_refuses_to_run_with_the_placeholder_password():
    settings = Settings(redis_url=f"redis://:{PLACEHOLDER_REDIS_PASSWORD}@127.0.0.1:6379/0")
    with pytest.raises(SettingsError, match="placeholder"):
        settings.require_redis_url()


def test_the_embedded_redis_persists_as_deploy_does():
    conf = conf_values(DEPLOY / "redis.conf")
    assert {name: conf[name] for name in PERSISTENCE} == PERSISTENCE


@pytest.fixture
def tls_files(tmp_path) -> dict[str, Path]:
    """A CA and a server certificate for 127.0.0.1 (subjectAltName IP), made with openssl."""
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "ca-key", "cert", "key")}
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=smsagg test CA",
        "-keyout", str(files["ca-key"]), "-out", str(files["ca"]))
    request = tmp_path / "server.csr"
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", str(files["key"]),
        "-out", str(request))
    extensions = tmp_path / "san.cnf"
    extensions.write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", str(request), "-CA", str(files["ca"]), "-CAkey", str(files["ca-key"]),
        "-CAcreateserial", "-days", "1", "-extfile", str(extensions), "-out", str(files["cert"]))
    return files


@pytest.fixture
def tls_redis(tmp_path, tls_files):
    tls_port = free_port()
    server = RedisServer(tmp_path / "redis", "--tls-port", str(tls_port), "--tls-cert-file", str(tls_files["cert"]),
                         "--tls-key-file", str(tls_files["key"]), "--tls-ca-cert-file", str(tls_files["ca"]),
                         "--tls-auth-clients", "no", "--requirepass", "s3cret", tls=True)
    server.args[server.args.index("--port") + 1] = "0"  # TLS only: no plain-text port at all
    server.start(wait_for_port=tls_port)
    yield f"rediss://:s3cret@127.0.0.1:{tls_port}/0?ssl_cert_reqs=required&ssl_ca_certs={tls_files['ca']}"
    server.stop()


def test_rediss_with_a_password_serves_the_gateway_a_worker_and_the_ingress(tmp_path, tls_redis):
    client = connect(tls_redis)
    assert client.ping()
    with pytest.raises(redis.ConnectionError):  # the certificate is checked: an unknown CA is refused
        connect(tls_redis.split("&ssl_ca_certs")[0]).ping()
    database_url = f"sqlite:///{tmp_path / 'smsagg.db'}"
    migrate.upgrade(database_url)
    provision(database_url)
    settings = Settings(home=tmp_path, redis_url=tls_redis, database_url=database_url, key_prefix="tls:",
                        allow_private_callbacks=True)
    log = tmp_path / "worker.log"
    with running(["worker", "--queues", "inbound"], settings, log, ready=worker_ready(log)):
        StageQueue(client, "tls:").push("inbound", [
            {"source": "webhook_mo", "carrier": None, "fields": {"from": "12025550100", "to": "99222", "text": "hi"}}])

        def received():
            with session_scope(database_url) as session:
                return session.scalar(select(MoMessage.text))

        assert wait_until(received, timeout=30) == "hi"

    from app.web import create_app
    from tests.integration.test_httpapi import params

    reply = create_app(settings).test_client().post("/httpapi/receiver", data=params(message_id="over-tls"))
    assert reply.get_data(as_text=True) == "result_code=0"
    assert client.llen("tls:stage:mt.bulk") == 1
