"""The ingress's id filter against real Redis and a real database: while it is
incomplete every submit with a ``message_id`` asks the message log; once rebuilt, a new
id does not and a repeat still gets 7 however old (its claim gone); a filter lost, or
completed on a Redis server that has since restarted, is incomplete again; a rebuild
that Redis lost meanwhile does not complete it; and the worker puts back the bits of
what it records, so an admission's bits Redis lost (a kill -9 before its AOF fsync)
are back once the message is in the log."""

from __future__ import annotations

import dataclasses
import signal
from datetime import datetime, timezone

import pytest

from app.adapters.redis_scripts import RedisKeys, RedisStore
from app.db.session import session_scope
from app.services import id_filter
from app.services.intake import record_accepted
from app.web import create_app
from tests.integration.redis_server import RedisServer
from tests.integration.test_httpapi import params, submit


class CountingLog:
    """The message log, counting how often the ingress asks it."""

    def __init__(self, log):
        self.log, self.asked = log, 0

    def accepted_id(self, *args):
        self.asked += 1
        return self.log.accepted_id(*args)


@pytest.fixture
def ingress(gateway):
    app = create_app(gateway)
    submit_service = app.extensions["smsagg"]["submit"]
    submit_service.message_log = counting = CountingLog(submit_service.message_log)
    return app.test_client(), counting, submit_service.store


def forget_claim(gateway, redis_client, client_message_id: str) -> None:
    """As if the claim had expired (SMSAGG_IDEMPOTENCY_TTL_SECONDS later)."""
    redis_client.delete(RedisKeys(gateway.key_prefix).idempotency(1, client_message_id))


def recorded(gateway, queued, client_message_id: str) -> None:
    """The queued payload of ``client_message_id`` written to the message log, as the worker does."""
    [payload] = [p for p in queued() if p["client_message_id"] == client_message_id]
    with session_scope(gateway.database_url) as session:
        record_accepted(session, payload, now=datetime.now(timezone.utc), route=lambda _n: 99901,
                        refund=lambda *_: None)


def test_until_rebuilt_every_id_asks_the_message_log(ingress):
    client, log, store = ingress
    assert not store.id_filter_complete()
    assert submit(client, "POST", params(message_id="a-1")) == 0
    assert submit(client, "POST", params(message_id="a-2")) == 0
    assert log.asked == 2


def test_once_complete_a_new_id_skips_the_database_and_a_repeat_still_gets_7(gateway, ingress, redis_client,
                                                                                queued):
    client, log, store = ingress
    assert submit(client, "POST", params(message_id="old-1")) == 0
    recorded(gateway, queued, "old-1")
    assert id_filter.ensure_complete(gateway.database_url, store) and store.id_filter_complete()
    log.asked = 0
    for n in range(20):
        assert submit(client, "POST", params(message_id=f"new-{n}")) == 0
    assert log.asked == 0  # (a false positive in 20 ids of an almost empty filter: ~1e-30)
    forget_claim(gateway, redis_client, "old-1")
    assert submit(client, "POST", params(message_id="old-1")) == 7
    assert log.asked == 1


def test_the_rebuild_reads_ids_the_filter_never_saw(gateway, ingress, redis_client, queued):
    client, log, store = ingress
    assert submit(client, "POST", params(message_id="before-1")) == 0
    recorded(gateway, queued, "before-1")
    redis_client.delete(store.keys.id_filter())  # a filter lost (or from before filters existed)
    forget_claim(gateway, redis_client, "before-1")
    assert id_filter.ensure_complete(gateway.database_url, store)
    assert submit(client, "POST", params(message_id="before-1")) == 7


def test_a_lost_filter_is_incomplete_and_the_database_decides(gateway, ingress, redis_client, queued):
    client, log, store = ingress
    assert submit(client, "POST", params(message_id="m-1")) == 0
    recorded(gateway, queued, "m-1")
    assert id_filter.ensure_complete(gateway.database_url, store)
    redis_client.delete(store.keys.id_filter())
    forget_claim(gateway, redis_client, "m-1")
    log.asked = 0
    assert not store.id_filter_complete()
    assert submit(client, "POST", params(message_id="m-1")) == 7 and log.asked == 1
    assert submit(client, "POST", params(message_id="m-2")) == 0 and log.asked == 2


def test_a_filter_completed_before_redis_restarted_is_incomplete(gateway, ingress, redis_client):
    _client, _log, store = ingress
    assert id_filter.ensure_complete(gateway.database_url, store)
    redis_client.set(store.keys.id_filter_run(), "the-run-before-a-restart")
    assert not store.id_filter_complete()
    assert id_filter.ensure_complete(gateway.database_url, store) and store.id_filter_complete()


def test_a_rebuild_that_redis_lost_meanwhile_does_not_complete(gateway, ingress, redis_client):
    _client, _log, store = ingress
    nonce = b"\x01abcdef"
    store.begin_id_filter_rebuild(nonce)
    redis_client.delete(store.keys.id_filter())  # lost; then an admission makes it anew
    redis_client.setbit(store.keys.id_filter(), 1000, 1)
    assert not store.finish_id_filter_rebuild(nonce)
    assert not store.id_filter_complete()
    store.begin_id_filter_rebuild(nonce)
    store.begin_id_filter_rebuild(b"\x01zzzzzz")  # a second rebuild began: the first may not finish
    assert not store.finish_id_filter_rebuild(nonce)


def test_the_worker_puts_back_bits_an_admission_lost(gateway, ingress, redis_client, queued):
    """Redis killed -9 within a second of admitting ``lost-1``, a worker having taken it:
    the claim and the bits are gone with that second of AOF; the worker records the
    message and sets its bits again, so the repeat asks the log and gets 7."""
    client, log, store = ingress
    assert id_filter.ensure_complete(gateway.database_url, store)
    assert submit(client, "POST", params(message_id="lost-1")) == 0
    [payload] = queued()
    redis_client.delete(store.keys.id_filter())  # the last second's writes lost ...
    assert id_filter.ensure_complete(gateway.database_url, store)  # ... and the filter rebuilt before the worker wrote
    forget_claim(gateway, redis_client, "lost-1")
    recorded(gateway, queued, "lost-1")
    RedisStore(redis_client, gateway.key_prefix).remember_client_ids([(payload["account_id"], "lost-1")])
    log.asked = 0
    assert submit(client, "POST", params(message_id="lost-1")) == 7 and log.asked == 1


def test_a_redis_killed_and_restarted_from_its_aof_is_not_trusted_until_rebuilt(gateway, tmp_path):
    """kill -9 with ``appendfsync everysec``: what Redis had acknowledged comes back from
    the AOF (claims, bits, the header), but the filter was completed on the Redis run
    that died: from the first admission after the restart every id asks the database
    again (the script compares run_ids), until the rebuild."""
    server = RedisServer(tmp_path / "redis", "--appendonly", "yes", "--appendfsync", "everysec").start()
    try:
        settings = dataclasses.replace(gateway, redis_url=f"redis://127.0.0.1:{server.port}/0", key_prefix="aof:")
        app = create_app(settings)
        submit_service = app.extensions["smsagg"]["submit"]
        submit_service.message_log = log = CountingLog(submit_service.message_log)
        client, store = app.test_client(), submit_service.store
        assert id_filter.ensure_complete(gateway.database_url, store)
        for n in range(5):
            assert submit(client, "POST", params(message_id=f"k-{n}")) == 0
        assert log.asked == 0
        server.stop(signal.SIGKILL)
        server.start()
        assert not store.id_filter_complete()  # another run_id: an unsynced second may be gone
        log.asked = 0
        assert [submit(client, "POST", params(message_id=f"k-{n}")) for n in range(5)] == [7] * 5  # the claims
        assert submit(client, "POST", params(message_id="after-1")) == 0 and log.asked == 1  # asks meanwhile
        assert id_filter.ensure_complete(gateway.database_url, store)
        assert submit(client, "POST", params(message_id="after-2")) == 0 and log.asked == 1
    finally:
        server.stop(signal.SIGKILL)
