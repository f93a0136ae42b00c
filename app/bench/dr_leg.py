"""``smsagg bench dr-leg``: the CPU cost of the receipt -> DR callback legs, in process.

The end-to-end goal (1,000 messages/s with DR callbacks on two shared cores) leaves
about 0.3 ms of CPU per receipt processed and 0.4 ms per callback sent and recorded.
This benchmark measures exactly those two legs, with real code and no Celery:

1. **Setup** (not timed): ``messages`` messages with ``receipt=TRUE``, each with one
   segment the SMSC acknowledged (its row in ``segment_submits``, which receipts are
   matched against) and the state-6 DR callback the MT stage queued, as the MT stage
   leaves them.
2. **Callbacks, state 6**: ``CallbackService.send_batch`` over those callbacks in
   batches of ``batch`` ids (as ``enqueue_callbacks`` groups them), POSTed with the
   real aiohttp sender to a real receiver process on 127.0.0.1. Deferred callbacks
   are sent again at once (the task would wait ``DEFER_SECONDS``): the number of
   ``send_batch`` calls is reported.
3. **Receipts**: ``process_items`` over one DELIVRD receipt per message, in batches
   of ``batch`` items (the ``InboundBatcher``'s maximum), one transaction each, as
   the inbound task runs it. The items are real deliver_sm PDUs as the simulator
   sends them, through the SMPP codec and ``deliver_sm_item``.
4. **Callbacks, final state**: as in 2, for the callbacks the receipts queued.

Figures are CPU time of this process (``time.process_time``; with SQLite the
database work is included, with PostgreSQL its server's share is not) and wall time.
Baselines, from the same run: for receipts, one executemany insert of ``messages``
event rows (the least a batch of database writes can cost here); for callbacks, the
same sender POSTing the same number of requests to the same receiver with no
database at all.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import insert, select

from app.adapters.callback_http import AiohttpCallbackSender, CallbackRequest
from app.adapters.inbound_queue import deliver_sm_item
from app.bench.harness import free_port, wait_for_port
from app.db import migrate
from app.db.models import Account, Callback, Message, MessageEvent, SegmentSubmit
from app.db.session import session_scope
from app.domain.states import MessageState
from app.services import accounts as svc
from app.services.accounts import AccountOptions
from app.services.callback_outbox import dr_fields
from app.services.callbacks import CallbackService
from app.services.inbound import InboundService, process_items
from app.smpp import pdu as smpp
from app.smpp.pdu import DeliverSm, EsmClass, Tag

CARRIER = 1
BATCH = 200
MESSAGES_PER_SECOND_OPTION = 100
"""``--seconds`` sizes the run: that many seconds times this many messages."""
RECEIPT_TARGET_MS, CALLBACK_TARGET_MS = 0.3, 0.4


@dataclass(frozen=True)
class Leg:
    items: int
    cpu_s: float
    wall_s: float
    calls: int = 0

    @property
    def cpu_ms_per_item(self) -> float:
        return self.cpu_s * 1000.0 / max(1, self.items)

    @property
    def items_per_s(self) -> float:
        return self.items / self.wall_s if self.wall_s else 0.0

    def figures(self) -> dict:
        return {"items": self.items, "cpu_ms_per_item": round(self.cpu_ms_per_item, 4),
                "items_per_s": round(self.items_per_s, 1), "wall_s": round(self.wall_s, 3), "calls": self.calls}


@contextmanager
def _timed() -> Iterator[list[float]]:
    out: list[float] = []
    cpu, wall = time.process_time(), time.perf_counter()
    yield out
    out += [time.process_time() - cpu, time.perf_counter() - wall]


def _chunks(values: Sequence, size: int) -> Iterator[Sequence]:
    for start in range(0, len(values), size):
        yield values[start:start + size]


def provision(database_url: str, dr_url: str) -> int:
    """An account with a DR URL and the carrier; returns the account id."""
    with session_scope(database_url) as session:
        account = svc.create_account(session, "bench-dr", "bench-password", senders=("12345",),
                                     default_max_length=1600, options=AccountOptions(dr_url=dr_url))
        svc.add_carrier(session, CARRIER, "bench-smsc", connector="smpp",
                        settings={"host": "127.0.0.1", "port": 1, "system_id": "bench"}, throughput=None)
        session.flush()
        return account.id


def sent_messages(database_url: str, account_id: int, count: int) -> list[str]:
    """``count`` messages as the MT stage leaves them once the SMSC acknowledged them:
    message, segment row, Redis correlation, state-6 DR callback. Returns SMSC ids."""
    now = datetime.now(UTC)
    run = uuid.uuid4().hex[:8]
    ids = [f"{run}{n:024d}" for n in range(count)]
    smsc = [f"{run}{n:08x}" for n in range(count)]
    with session_scope(database_url) as session:
        account = session.get(Account, account_id)
        messages = [dict(id=i, account_id=account_id, client_message_id=f"client-{i}", phone_number="12025550100",
                         sender="12345", text="Benchmark message end to end", priority="BULK", receipt=True,
                         carrier_id=CARRIER, segments=1, state=int(MessageState.ACCEPTED), accepted_at=now,
                         options={}) for i in ids]
        session.execute(insert(Message), messages)
        session.execute(insert(SegmentSubmit), [
            dict(message_id=i, seq=1, total=1, carrier_id=CARRIER, smsc_message_id=s,
                 state=int(MessageState.ACCEPTED), command_status=0, submitted_at=now) for i, s in zip(ids, smsc)])
        session.execute(insert(Callback), [
            dict(id=uuid.uuid4().hex, account_id=account_id, message_id=m["id"], kind="dr", url=account.dr_url,
                 fields=dr_fields(Message(**m), MessageState.ACCEPTED, 0), status="pending", attempts=0,
                 max_retries=account.callback_max_retries, retry_interval=account.callback_retry_interval,
                 created_at=now, next_attempt_at=now) for m in messages])
    return smsc


def receipt_items(smsc_ids: Sequence[str]) -> list[dict]:
    """One DELIVRD receipt per id, as the simulator sends it and the inbound queue carries it."""
    items = []
    for smsc_id in smsc_ids:
        body = (f"id:{smsc_id} sub:001 dlvrd:001 submit date:2611221200 done date:2611221200 stat:DELIVRD "
                f"err:000 text:Benchmark message end")
        pdu = DeliverSm(source_addr="12025550100", destination_addr="12345", esm_class=EsmClass.DELIVERY_RECEIPT,
                        short_message=body.encode("ascii"),
                        tlvs={Tag.RECEIPTED_MESSAGE_ID: smsc_id, Tag.MESSAGE_STATE: 2})
        items.append(json.loads(json.dumps(deliver_sm_item(CARRIER, smpp.decode(smpp.encode(pdu))))))
    return items


def pending_callbacks(database_url: str, state: MessageState) -> list[str]:
    """Pending DR callback ids reporting ``state``, oldest first."""
    with session_scope(database_url) as session:
        rows = session.execute(select(Callback.id, Callback.fields).where(Callback.status == "pending")
                               .order_by(Callback.created_at, Callback.id))
        return [row.id for row in rows if ["message_state", str(int(state))] in row.fields]


def send_all(service: CallbackService, ids: list[str], batch: int) -> tuple[int, int]:
    """Every id through ``send_batch``; deferred ones again at once. (delivered, calls)."""
    delivered = calls = 0
    for chunk in _chunks(ids, batch):
        todo = list(chunk)
        while todo:
            outcome = service.send_batch(todo)
            calls += 1
            delivered += len(outcome.delivered)
            if outcome.retries or outcome.dead:
                raise RuntimeError(f"callbacks failed: {outcome.retries or outcome.dead}")
            todo = outcome.deferred
    return delivered, calls


def insert_baseline(database_url: str, count: int) -> Leg:
    """One executemany insert of ``count`` event rows, in one transaction (rolled back)."""
    with session_scope(database_url) as session:
        message_id = session.scalar(select(Message.id).limit(1))
        rows = [dict(message_id=message_id, at=datetime.now(UTC), kind="bench", state=2, detail={"n": n})
                for n in range(count)]
        with _timed() as spent:
            session.execute(insert(MessageEvent), rows)
        session.rollback()
    return Leg(count, *spent, calls=1)


def sender_baseline(url: str, count: int, batch: int, account_id: int) -> Leg:
    """The sender alone: ``count`` POSTs in batches, no database."""
    body = b"type=receipt&message_id=baseline&message_state=2&result_code=0"
    requests = [CallbackRequest(str(n), account_id, url, body, {"Content-Type": "application/x-www-form-urlencoded"})
                for n in range(count)]
    with closing(AiohttpCallbackSender(allow_private=True)) as sender, _timed() as spent:
        for chunk in _chunks(requests, batch):
            sender.send_many(chunk)
    return Leg(count, *spent, calls=-(-count // batch))


def measure(database_url: str, receiver_url: str, messages: int, *, batch: int = BATCH,
            echo: Callable[[str], None] = print) -> dict:
    """Run the four steps (module docstring) on a migrated, empty database."""
    account_id = provision(database_url, receiver_url)
    smsc = sent_messages(database_url, account_id, messages)
    items = receipt_items(smsc)
    inbound = InboundService()
    with closing(AiohttpCallbackSender(allow_private=True)) as sender:  # the worker's settings
        service = CallbackService(database_url, sender)
        with _timed() as accepted_spent:
            sent, accepted_calls = send_all(service, pending_callbacks(database_url, MessageState.ACCEPTED), batch)
        with _timed() as receipts_spent:
            for chunk in _chunks(items, batch):
                with session_scope(database_url) as session:
                    process_items(inbound, session, list(chunk), datetime.now(UTC))
        finals = pending_callbacks(database_url, MessageState.DELIVERED)
        with _timed() as final_spent:
            delivered, final_calls = send_all(service, finals, batch)
    if sent != messages or delivered != messages:
        raise RuntimeError(f"expected {messages} callbacks of each kind, sent {sent} and {delivered}")

    receipts = Leg(messages, *receipts_spent, calls=-(-messages // batch))
    callbacks = Leg(2 * messages, accepted_spent[0] + final_spent[0], accepted_spent[1] + final_spent[1],
                    calls=accepted_calls + final_calls)
    inserts = insert_baseline(database_url, messages)
    posts = sender_baseline(receiver_url, 2 * messages, batch, account_id)
    return report(receipts, callbacks, inserts, posts, echo)


def report(receipts: Leg, callbacks: Leg, inserts: Leg, posts: Leg, echo: Callable[[str], None]) -> dict:
    def line(name: str, leg: Leg, target: float | None = None) -> None:
        goal = f" (target <= {target} ms)" if target else ""
        echo(f"{name:<34} {leg.items:>6} in {leg.calls:>4} calls: {leg.cpu_ms_per_item:8.4f} ms CPU/item{goal}, "
             f"{leg.items_per_s:9.1f} items/s")

    line("receipts (process_items)", receipts, RECEIPT_TARGET_MS)
    line("baseline: executemany insert", inserts)
    line("callbacks (send_batch)", callbacks, CALLBACK_TARGET_MS)
    line("baseline: sender alone, no db", posts)
    receipt_ratio = receipts.cpu_ms_per_item / inserts.cpu_ms_per_item if inserts.cpu_ms_per_item else 0.0
    callback_ratio = callbacks.cpu_ms_per_item / posts.cpu_ms_per_item if posts.cpu_ms_per_item else 0.0
    echo(f"ratios (CPU per item against its baseline): receipts {receipt_ratio:.1f}x, callbacks {callback_ratio:.2f}x")
    return {"benchmark": "dr-leg", "receipts": receipts.figures(), "insert_baseline": inserts.figures(),
            "callbacks": callbacks.figures(), "sender_baseline": posts.figures(),
            "receipt_ratio": round(receipt_ratio, 2), "callback_ratio": round(callback_ratio, 3)}


@contextmanager
def callback_receiver(home: Path) -> Iterator[str]:
    """``app.bench.receiver`` in its own process; yields its DR URL."""
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "app.bench.receiver", "--port", str(port),
                                "--out", str(home / "received.tsv")])
    try:
        wait_for_port(port)
        yield f"http://127.0.0.1:{port}/dr"
    finally:
        process.terminate()
        process.wait(timeout=20)


def run(seconds: float, concurrency: int, echo: Callable[[str], None]) -> dict:
    """``concurrency`` is not used: the legs run as one worker thread runs them."""
    messages = max(BATCH, int(seconds * MESSAGES_PER_SECOND_OPTION))
    with tempfile.TemporaryDirectory(prefix="smsagg-bench-dr-") as name:
        home = Path(name)
        database_url = f"sqlite:///{home / 'smsagg.db'}"
        migrate.upgrade(database_url)
        with callback_receiver(home) as url:
            echo(f"dr-leg: {messages} messages, batches of {BATCH}, SQLite, receiver {url}")
            return measure(database_url, url, messages, echo=echo)
