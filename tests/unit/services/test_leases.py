"""The lease keeper (app.services.leases): what a process holds is renewed on a thread
of its own while held, never after it is released, and failures do not stop it."""

from __future__ import annotations

import threading
import time

from app.services.leases import LeaseKeeper, Periodic
from tests.integration.workers import wait_until


def test_held_keys_are_renewed_until_released():
    renewed: list[set[str]] = []
    keeper = LeaseKeeper(lambda keys: renewed.append(set(keys)), every=0.02, name="test-leases")
    with keeper.holding(["a", "b"]):
        wait_until(lambda: len(renewed) >= 3, timeout=5)
    count = len(renewed)
    with keeper.holding(["c"]):  # a later lease's renewal: the ticks since the release renewed nothing else
        wait_until(lambda: {"c"} in renewed[count:], timeout=5)
    assert {"a", "b"} in renewed
    assert all(batch == {"c"} for batch in renewed[count:])  # nothing renewed after release


def test_release_waits_for_a_renewal_in_flight():
    started, finish = threading.Event(), threading.Event()

    def slow(keys):
        started.set()
        finish.wait(2)

    keeper = LeaseKeeper(slow, every=0.01, name="test-leases")
    keeper.hold(["a"])
    assert started.wait(2)
    released_at = []
    releaser = threading.Thread(target=lambda: (keeper.release(["a"]), released_at.append(time.monotonic())))
    releaser.start()
    time.sleep(0.1)  # the window in which release() must not return (kept: the absence is the test)
    assert not released_at  # still renewing: the caller must not record its outcome yet
    finish.set()
    releaser.join(2)
    assert released_at and keeper.held() == set()


def test_a_failing_renewal_is_tried_again():
    attempts = []

    def flaky(keys):
        attempts.append(set(keys))
        if len(attempts) < 3:
            raise ConnectionError("Redis restarting")

    keeper = LeaseKeeper(flaky, every=0.01, name="test-leases")
    with keeper.holding(["a"]):
        wait_until(lambda: len(attempts) >= 4, timeout=5)
    assert attempts[:4] == [{"a"}] * 4  # the same lease, tried again after each failure


def test_a_key_held_twice_stays_held_until_released_twice():
    keeper = LeaseKeeper(lambda keys: None, every=60, name="test-leases")
    keeper.hold(["a"])
    keeper.hold(["a"])
    keeper.release(["a"])
    assert keeper.held() == {"a"}
    keeper.release(["a"])
    assert keeper.held() == set()


def test_periodic_work_survives_its_failures_and_stops():
    runs = []

    def work():
        runs.append(1)
        raise RuntimeError("Redis is away")

    periodic = Periodic(work, every=0.01, name="test-periodic").start()
    wait_until(lambda: len(runs) >= 3, timeout=5)
    periodic.stop()
    assert "test-periodic" not in {thread.name for thread in threading.enumerate()}  # nothing left to run it
