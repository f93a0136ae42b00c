"""The ingress's credential cache: when an entry is missing or expired, the password KDF
runs once per credentials however many threads ask at once, and the others take its
answer; different credentials do not wait for each other."""

from __future__ import annotations

import threading

from app.db.session import session_scope
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.directory import Directory
from tests.integration.workers import wait_until
from tests.unit.services.test_directory_outage import NO_RULES


def _counting_directory(database_url, now, release: threading.Event):
    directory = Directory(database_url, credential_ttl=30, refresh_seconds=5, clock=lambda: now[0], rules=NO_RULES)
    verified = []
    verify = directory._verify

    def slow_verify(login, password):
        verified.append(login)
        release.wait(10)
        return verify(login, password)

    directory._verify = slow_verify
    return directory, verified


def test_one_kdf_per_credentials_at_a_time_and_again_once_expired(database_url):
    with session_scope(database_url) as session:
        svc.create_account(session, "acme", "secret-1", options=AccountOptions(), default_max_length=1600)
        svc.create_account(session, "other", "secret-2", options=AccountOptions(), default_max_length=1600)
    now, release = [1000.0], threading.Event()
    directory, verified = _counting_directory(database_url, now, release)

    def ask_many(login, password):
        answers = []
        threads = [threading.Thread(target=lambda: answers.append(directory.authenticate(login, password)))
                   for _ in range(8)]
        for thread in threads:
            thread.start()
        return threads, answers

    acme, acme_answers = ask_many("acme", "secret-1")
    other, other_answers = ask_many("other", "secret-2")
    wait_until(lambda: len(verified) == 2, timeout=10)  # both KDFs run at once
    release.set()
    for thread in acme + other:
        thread.join(10)
    assert sorted(verified) == ["acme", "other"]
    assert {view.login for view in acme_answers} == {"acme"} and len(acme_answers) == 8
    assert {view.login for view in other_answers} == {"other"} and len(other_answers) == 8

    now[0] += 31  # expired: verified again, once
    again, answers = ask_many("acme", "secret-1")
    for thread in again:
        thread.join(10)
    assert sorted(verified) == ["acme", "acme", "other"] and len(answers) == 8
