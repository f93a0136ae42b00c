"""``smsagg up``'s supervisor (``app.supervisor.Supervisor``): a dead part is started
again after an exponential backoff and logged with how it died; a part that keeps dying
stops the gateway; parts stop before the ``stop_last`` ones (Redis)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading

from app.supervisor import Part, RestartPolicy, Supervisor, describe_exit
from tests.integration.workers import wait_until

SLEEPER = [sys.executable, "-c", "import time; time.sleep(120)"]


class FakeProcess:
    def __init__(self, pid: int) -> None:
        self.pid, self.returncode = pid, None

    def poll(self):
        return self.returncode


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def fake_part(name: str = "worker") -> tuple[Part, list[FakeProcess]]:
    started: list[FakeProcess] = []

    def start() -> FakeProcess:
        started.append(FakeProcess(100 + len(started)))
        return started[-1]

    return Part(name, start), started


def test_backoff_doubles_to_its_cap_and_starts_over_once_a_part_stayed_up():
    clock, logs = Clock(), []
    supervisor = Supervisor(RestartPolicy(first_backoff=1, give_up_deaths=100, give_up_window=60, max_backoff=5),
                            log=logs.append, clock=clock)
    part, started = fake_part()
    supervisor.add(part)
    delays = []
    for _ in range(5):
        started[-1].returncode = 1
        supervisor.check(clock.now)
        delays.append(part.restart_at - clock.now)
        clock.now = part.restart_at
        supervisor.check(clock.now)
    assert delays == [1, 2, 4, 5, 5]
    assert len(started) == 6 and part.restart_at is None

    clock.now += 60  # up for a minute: settled
    started[-1].returncode = -signal.SIGKILL
    supervisor.check(clock.now)
    assert part.restart_at - clock.now == 1
    assert logs[-1].endswith(f"worker (pid {started[-1].pid}) was killed by SIGKILL; starting it again in 1 s")
    assert supervisor.gave_up is None


def test_a_part_dying_too_often_within_the_window_is_given_up_on():
    clock, logs = Clock(), []
    supervisor = Supervisor(RestartPolicy(first_backoff=1, give_up_deaths=3, give_up_window=10), log=logs.append,
                            clock=clock)
    part, started = fake_part("web")
    supervisor.add(part)
    for _ in range(2):
        started[-1].returncode = 3
        supervisor.check(clock.now)
        clock.now = part.restart_at
        supervisor.check(clock.now)
    started[-1].returncode = 3
    supervisor.check(clock.now)
    assert supervisor.gave_up is part
    assert "web (pid 102) exited with status 3: it died 3 times within 10 s; stopping the gateway" in logs[-1]


def test_deaths_older_than_the_window_do_not_count():
    clock = Clock()
    supervisor = Supervisor(RestartPolicy(first_backoff=1, give_up_deaths=2, give_up_window=10), log=lambda _: None,
                            clock=clock)
    part, started = fake_part()
    supervisor.add(part)
    for _ in range(3):
        started[-1].returncode = 1
        supervisor.check(clock.now)
        clock.now = part.restart_at + 20  # each death more than the window after the one before
        supervisor.check(clock.now)
    assert supervisor.gave_up is None and len(started) == 4


def test_a_part_that_cannot_even_start_counts_as_a_death():
    clock, logs = Clock(), []
    supervisor = Supervisor(RestartPolicy(first_backoff=1, give_up_deaths=5, give_up_window=60), log=logs.append,
                            clock=clock)
    attempts = []

    def start():
        attempts.append(1)
        if len(attempts) > 1:
            raise RuntimeError("embedded redis-server exited with 1")
        return FakeProcess(7)

    part = Part("redis", start)
    supervisor.add(part)
    clock.now += 600  # long after it started
    part.process.returncode = 1
    supervisor.check(clock.now)
    for delay in (2, 4):  # each failed start is a death, and the backoff keeps growing
        clock.now = part.restart_at
        supervisor.check(clock.now)
        assert f"redis could not start (embedded redis-server exited with 1); starting it again in {delay} s" in logs[-1]
    assert len(part.deaths) == 3


def test_describe_exit():
    assert describe_exit(0) == "exited with status 0"
    assert describe_exit(-9) == "was killed by SIGKILL"


def _run_in_background(supervisor: Supervisor, action) -> int:
    """``supervisor.run()`` on this thread (as ``smsagg up`` does) while ``action`` runs beside it."""
    errors = []

    def act():
        try:
            action()
        except BaseException as exc:  # reported below, on the test's thread
            errors.append(exc)
        finally:
            supervisor.request_stop()

    helper = threading.Thread(target=act)
    helper.start()
    try:
        return supervisor.run()
    finally:
        helper.join()
        supervisor.stop()
        assert not errors, errors


def test_a_child_killed_with_sigkill_comes_back_and_the_others_stay_up():
    logs = []
    supervisor = Supervisor(RestartPolicy(first_backoff=0.1), log=logs.append)
    victim = Part("victim", lambda: subprocess.Popen(SLEEPER))
    bystander = Part("bystander", lambda: subprocess.Popen(SLEEPER))
    supervisor.add(victim)
    supervisor.add(bystander)
    first_pid, bystander_pid = victim.process.pid, bystander.process.pid

    def kill_and_wait():
        os.kill(first_pid, signal.SIGKILL)
        assert wait_until(lambda: victim.running and victim.process.pid != first_pid, timeout=10)

    assert _run_in_background(supervisor, kill_and_wait) == 0
    assert any(f"victim (pid {first_pid}) was killed by SIGKILL; starting it again in 0.1 s" in line for line in logs)
    assert any(f"victim started again (pid {victim.process.pid})" in line for line in logs)
    assert bystander.process.pid == bystander_pid  # never restarted
    assert victim.process.poll() is not None and bystander.process.poll() is not None  # stopped at the end


def test_a_child_that_always_dies_makes_the_supervisor_give_up_and_stop_the_rest():
    logs = []
    supervisor = Supervisor(RestartPolicy(first_backoff=0.05, give_up_deaths=3, give_up_window=60), log=logs.append)
    supervisor.add(Part("bystander", lambda: subprocess.Popen(SLEEPER)))
    supervisor.add(Part("broken", lambda: subprocess.Popen([sys.executable, "-c", "raise SystemExit(3)"])))
    try:
        assert supervisor.run() == 1
    finally:
        supervisor.stop()
    assert supervisor.gave_up.name == "broken"
    assert "exited with status 3: it died 3 times within 60 s; stopping the gateway" in logs[-1]
    assert supervisor.parts[0].process.returncode == -signal.SIGTERM


def test_stop_last_parts_are_stopped_after_the_others(tmp_path):
    order = tmp_path / "order"
    script = ("import signal, sys, time\n"
              "def stop(*_):\n"
              f"    open({str(order)!r}, 'a').write(sys.argv[1] + '\\n'); sys.exit(0)\n"
              "signal.signal(signal.SIGTERM, stop)\n"
              "print('ready', flush=True)\n"
              "time.sleep(120)\n")

    def part(name: str, **options) -> Part:
        return Part(name, lambda: subprocess.Popen([sys.executable, "-c", script, name], stdout=subprocess.PIPE,
                                                   text=True), **options)

    supervisor = Supervisor(RestartPolicy())
    for each in (part("redis", stop_last=True), part("web"), part("worker")):
        supervisor.add(each)
    for each in supervisor.parts:
        assert each.process.stdout.readline() == "ready\n"
    supervisor.stop()
    lines = order.read_text().split()
    assert sorted(lines[:2]) == ["web", "worker"] and lines[2] == "redis"
