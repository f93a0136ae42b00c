"""The failure policy every task shares (workers.base.SmsaggTask): an outage is retried,
anything else is set aside once instead of being retried forever."""

from __future__ import annotations

import pytest
import redis
from celery import Celery
from celery.exceptions import Retry
from sqlalchemy.exc import OperationalError

from workers.base import SmsaggTask


@pytest.fixture
def app():
    return Celery("test-failures", set_as_current=False)


@pytest.fixture
def set_aside(monkeypatch):
    calls = []
    monkeypatch.setattr(SmsaggTask, "set_aside", lambda self, args, error: calls.append((self.name, args, error)))
    return calls


@pytest.mark.parametrize("outage", [redis.ConnectionError("Redis restarting"),
                                    OperationalError("SELECT 1", {}, Exception("the database system is starting up")),
                                    redis.ResponseError("LOADING Redis is loading the dataset in memory")])
def test_an_outage_is_retried_with_backoff(app, set_aside, monkeypatch, outage):
    retries = []

    def retry(self, exc=None, countdown=None, max_retries=None, **_):
        retries.append((exc, countdown, max_retries))
        return Retry(exc=exc, when=countdown)

    monkeypatch.setattr(SmsaggTask, "retry", retry)

    @app.task(base=SmsaggTask, name="t.outage")
    def needs_redis():
        raise outage

    result = needs_redis.apply()
    assert result.state == "RETRY" and set_aside == []
    [(error, countdown, max_retries)] = retries
    assert error is outage and 0 <= countdown <= SmsaggTask.retry_backoff_max and max_retries is None


def test_a_poison_task_is_set_aside_once_not_retried(app, set_aside):
    @app.task(base=SmsaggTask, name="t.poison")
    def broken(batch_id):
        raise KeyError("meta")

    result = broken.apply(args=["b-1"])
    assert result.state == "SUCCESS"
    [(name, args, error)] = set_aside
    assert (name, args, type(error)) == ("t.poison", ["b-1"], KeyError)


def test_a_task_that_works_returns_its_value(app, set_aside):
    @app.task(base=SmsaggTask, name="t.ok", bind=True)
    def fine(self, value):
        return value * 2

    assert fine.apply(args=[21]).get() == 42 and set_aside == []
