"""Batches in the workers: fan-out, the durable record, the scheduler, progress.

* :func:`fan_out` turns a released batch into per-destination MT task messages on
  the batch's priority queue, ``SMSAGG_BULK_FANOUT_CHUNK`` at a time. Each chunk is
  pushed by a script that first checks the batch's cursor, so a redelivered fan-out
  task (``acks_late``) resumes where the last one stopped and never pushes a message
  twice. A destination whose payload cannot be built is set aside (a dead letter of
  the fan-out, replayable with :func:`fan_out_entries`) and the rest goes on.
* :func:`ensure_record` writes the batch's database row (the durable record: every
  destination with its message id and price) the first time a worker sees the batch,
  and moves its status forward (scheduled -> released | cancelled) after that.
* The schedule index is the Redis sorted set ``schedule`` (score = due epoch);
  :func:`release_due` (beat, every ``SMSAGG_BULK_RELEASE_INTERVAL_SECONDS``) moves
  what is due into its queue in one script (ZRANGEBYSCORE + ZREM + LPUSH: a batch is
  released once). :func:`rebuild_index` puts every ``scheduled`` row back into Redis
  if Redis lost it (run when beat starts).
* :func:`progress` counts a batch's messages by state (their ids share the batch id
  as prefix), for ``smsagg batch status``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.adapters import stage_queue
from app.bulk import payloads
from app.bulk.models import Batch
from app.bulk.store import BulkStore
from app.db.models import Message
from app.domain.priorities import Priority
from app.domain.states import MessageState

log = logging.getLogger(__name__)

_FORWARD = {"scheduled": 0, "released": 1, "cancelled": 1}


def _utc(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, tz=timezone.utc)


def _fields(store: BulkStore, batch_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in store.client.hgetall(store.keys.batch(batch_id)).items()}


def _destinations(store: BulkStore, batch_id: str, start: int = 0, stop: int = -1) -> list[tuple]:
    """(number, message id, price) per destination; an entry that does not read so is
    kept as (its raw text, None, None), for the record (the fan-out sets it aside)."""
    result = []
    for raw in store.client.lrange(store.keys.batch_destinations(batch_id), start, stop):
        try:
            number, message_id, price = raw.decode().split("|")
            result.append((number, message_id, int(price)))
        except (ValueError, UnicodeDecodeError):
            result.append((raw.decode(errors="replace"), None, None))
    return result


def ensure_record(session: Session, store: BulkStore, batch_id: str) -> Batch | None:
    """The batch's row, written from Redis if it is not there yet; its status follows Redis."""
    fields = _fields(store, batch_id)
    row = session.get(Batch, batch_id)
    state = fields.get("state")
    if row is None:
        if not fields or fields.get("mode") == "direct":
            return None
        meta = json.loads(fields["meta"])
        row = Batch(
            id=batch_id, account_id=int(fields["account"]), status=state or "released",
            due_at=_utc(float(fields["due"])), total=int(fields["count"]), cost=int(fields["cost"]),
            meta=meta, destinations=[list(d) for d in _destinations(store, batch_id)],
            created_at=_utc(meta["accepted_at"]),
        )
        if "released_at" in fields:
            row.released_at = _utc(float(fields["released_at"]))
        session.add(row)
        try:
            session.flush()
        except IntegrityError:
            session.rollback()
            row = session.get(Batch, batch_id)
    if row is not None and state in _FORWARD and _FORWARD[state] > _FORWARD.get(row.status, 0):
        row.status = state
        if state == "released" and "released_at" in fields:
            row.released_at = _utc(float(fields["released_at"]))
    return row


SetAside = Callable[[list[int], Exception], None]
"""Called with destination indexes that cannot be fanned out, and the error."""


def fan_out(store: BulkStore, batch_id: str, *, chunk: int, set_aside: SetAside | None = None) -> int:
    """Push the batch's per-destination payloads; returns how many this call pushed.
    A destination whose payload cannot be built is handed to ``set_aside`` (once, after
    its chunk is pushed) and the rest of the batch goes on; without ``set_aside`` it raises."""
    fields = _fields(store, batch_id)
    if fields.get("state") != "released":
        log.warning("fan-out of batch %s skipped: state %r", batch_id, fields.get("state"))
        return 0
    meta = json.loads(fields["meta"])
    queue = Priority(meta["priority"]).queue
    count, cursor, pushed = int(fields["count"]), int(fields.get("cursor", 0)), 0
    key = store.keys.batch_destinations(batch_id)
    while cursor < count:
        raw_entries = store.client.lrange(key, cursor, cursor + chunk - 1)
        if not raw_entries:
            break
        items, bad = [], []
        for index, raw in enumerate(raw_entries, start=cursor):
            try:
                items.append(_destination_item(meta, raw))
            except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
                if set_aside is None:
                    raise
                bad.append((index, exc))
        actual = store.fanout_chunk(batch_id, queue, cursor, items, stage_queue.drain_message(queue),
                                    entries=len(raw_entries))
        if actual == -1:
            cursor += len(raw_entries)
            pushed += len(items)
            for index, exc in bad:
                set_aside([index], exc)
        else:
            cursor = actual
    if pushed:
        store.client.hsetnx(store.keys.batch(batch_id), "fanned_out_at", repr(_now_redis(store)))
    return pushed


def fan_out_entries(store: BulkStore, batch_id: str, indexes: list[int]) -> int:
    """Push these destinations of a released batch again (a replayed dead letter of
    the fan-out); the MT stage records each message id once, so pushing twice is harmless."""
    fields = _fields(store, batch_id)
    meta = json.loads(fields["meta"])
    queue = Priority(meta["priority"]).queue
    key = store.keys.batch_destinations(batch_id)
    items = [_destination_item(meta, store.client.lindex(key, index)) for index in indexes]
    stage_queue.StageQueue(store.client, store.keys.prefix).push(queue, [json.loads(item) for item in items])
    return len(items)


def _destination_item(meta: dict[str, Any], raw: bytes | None) -> str:
    if raw is None:
        raise ValueError("no such destination in the batch")
    number, message_id, price = raw.decode().split("|")
    return payloads.destination_item(meta, number, message_id, int(price))


def _now_redis(store: BulkStore) -> float:
    seconds, micros = store.client.time()
    return seconds + micros / 1_000_000


def release_due(session: Session, store: BulkStore, now: float) -> list[str]:
    """Release every batch due at ``now``; their rows follow."""
    released = store.release_due(now)
    for batch_id in released:
        row = session.get(Batch, batch_id)
        if row is not None and row.status == "scheduled":
            row.status, row.released_at = "released", _utc(now)
    if released:
        log.info("released %d scheduled batch(es): %s", len(released), ", ".join(released))
    return released


def rebuild_index(session: Session, store: BulkStore) -> dict[str, int]:
    """Make Redis agree with the ``scheduled`` rows: restore what Redis lost, and move
    rows forward whose batch Redis already released or cancelled."""
    restored = indexed = moved = 0
    for row in session.scalars(select(Batch).where(Batch.status == "scheduled")):
        state = store.client.hget(store.keys.batch(row.id), "state")
        if state is None:
            _restore(store, row)
            restored += 1
        elif state == b"scheduled":
            due = row.due_at.timestamp()
            store.client.zadd(store.keys.schedule(), {row.id: due})
            store.client.zadd(store.keys.account_schedule(row.account_id), {row.id: due})
            indexed += 1
        else:
            ensure_record(session, store, row.id)
            moved += 1
    return {"restored": restored, "indexed": indexed, "moved_forward": moved}


def _restore(store: BulkStore, row: Batch) -> None:
    meta: dict[str, Any] = row.meta
    due = row.due_at.timestamp()
    key = store.keys.batch(row.id)
    pipe = store.client.pipeline(transaction=True)
    pipe.delete(store.keys.batch_destinations(row.id))
    if row.destinations:
        pipe.rpush(store.keys.batch_destinations(row.id), *(f"{n}|{m}|{p}" for n, m, p in row.destinations))
    pipe.hset(key, mapping={
        "results": "", "meta": payloads.dumps(meta), "account": row.account_id, "cost": row.cost,
        "prepaid": "1" if row.cost else "0", "count": row.total, "due": repr(due),
        "dup": meta.get("duplicate_prefix", ""),
        "queue": Priority(meta["priority"]).queue, "mode": "schedule", "state": "scheduled",
        "task": payloads.batch_task(payloads.FANOUT_TASK, meta, row.id),
    })
    pipe.zadd(store.keys.schedule(), {row.id: due})
    pipe.zadd(store.keys.account_schedule(row.account_id), {row.id: due})
    pipe.execute()
    log.warning("scheduled batch %s restored into Redis from the database", row.id)


def cancel(session: Session, store: BulkStore, batch_id: str, account_id: int | None = None) -> tuple[bool, str]:
    """Withdraw a scheduled batch (refunding a prepaid account). Returns whether this
    call cancelled it, and the batch's state (``cancelled``, ``released``, ``missing``)."""
    done, state = store.cancel(batch_id, account_id)
    if state in ("cancelled", "released"):
        ensure_record(session, store, batch_id)
    return done, state


@dataclass(frozen=True)
class Scheduled:
    batch_id: str
    account_id: int
    due: float
    destinations: int
    message: str


def list_scheduled(store: BulkStore, account_id: int | None = None, limit: int = 1000) -> list[Scheduled]:
    """What is waiting, soonest first (the Redis index is the live truth)."""
    key = store.keys.schedule() if account_id is None else store.keys.account_schedule(account_id)
    entries = store.client.zrange(key, 0, limit - 1, withscores=True)
    pipe = store.client.pipeline(transaction=False)
    for batch_id, _ in entries:
        pipe.hmget(store.keys.batch(batch_id.decode()), "account", "count", "meta")
    result = []
    for (batch_id, due), (account, count, meta) in zip(entries, pipe.execute()):
        if account is None:
            continue
        result.append(Scheduled(batch_id.decode(), int(account), due, int(count), json.loads(meta)["message"]))
    return result


_FAILED = (MessageState.EXPIRED, MessageState.DELETED, MessageState.UNDELIVERABLE, MessageState.REJECTED)


@dataclass(frozen=True)
class Progress:
    batch_id: str
    status: str
    total: int
    fanned_out: int
    queued: int
    submitted: int
    delivered: int
    failed: int

    @property
    def done(self) -> int:
        return self.delivered + self.failed

    @property
    def finished(self) -> bool:
        return self.status == "cancelled" or (self.total > 0 and self.done >= self.total)

    def as_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "done": self.done, "finished": self.finished}


def progress(session: Session, store: BulkStore, batch_id: str) -> Progress | None:
    """Counts by state: queued (accepted, not yet at a carrier, including messages not
    recorded yet), submitted (en route / unknown), delivered, failed (expired, deleted,
    undeliverable, rejected)."""
    fields = _fields(store, batch_id)
    row = session.get(Batch, batch_id)
    if row is None and not fields:
        return None
    total = int(fields["count"]) if fields else row.total
    status = fields.get("state") or row.status
    counts = dict(session.execute(
        select(Message.state, func.count()).where(Message.id >= batch_id + "0" * 8,
                                                  Message.id <= batch_id + "f" * 8).group_by(Message.state)
    ).all())
    delivered = counts.get(MessageState.DELIVERED, 0)
    failed = sum(counts.get(state, 0) for state in _FAILED)
    submitted = counts.get(MessageState.ENROUTE, 0) + counts.get(MessageState.UNKNOWN, 0)
    fanned_out = int(fields.get("cursor", 0)) if fields else (total if status == "released" else 0)
    queued = max(0, total - delivered - failed - submitted) if status != "cancelled" else 0
    return Progress(batch_id, status, total, fanned_out, queued, submitted, delivered, failed)
