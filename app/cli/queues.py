"""``smsagg queues``: how much work waits at each stage, for operators watching a backlog;
``smsagg queues dead|replay``: the work set aside because it could not be done."""

from __future__ import annotations

import json

import click
from sqlalchemy import func, select

from app.adapters.redis_scripts import connect
from app.adapters.stage_queue import StageQueue
from app.cli.common import print_table, settings, unit_of_work
from app.db.models import Callback
from app.domain.priorities import ALL_QUEUES, CALLBACK_QUEUE

_COLUMNS = ["queue", "waiting", "oldest_waiting_s", "claimed", "batches", "oldest_claim_s", "lapsed", "delayed", "dead",
            "task_messages"]


def _stages() -> tuple[StageQueue, object]:
    config = settings()
    client = connect(config.require_redis_url())
    return StageQueue(client, config.key_prefix), client


def _queue_argument(value: str) -> str:
    if value not in ALL_QUEUES:
        raise click.BadParameter(f"unknown queue {value!r}; choose from {', '.join(ALL_QUEUES)}")
    return value


@click.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def queues(context, as_json) -> None:
    """Per queue: items waiting to be drained and how long the next one has waited; items claimed by running drain tasks, the
    age of the oldest claim and how many claims' leases lapsed (about to be given back);
    items delayed (retries, throttled); dead letters (set aside: see ``queues dead``;
    for callbacks, with the dead callbacks); and Celery task messages waiting."""
    if context.invoked_subcommand is not None:
        return
    stages, client = _stages()
    depths = {d.queue: d for d in stages.depths()}
    with unit_of_work() as session:
        dead_callbacks = session.scalar(select(func.count()).select_from(Callback).where(Callback.status == "dead"))
    rows = []
    for queue in ALL_QUEUES:
        depth = depths.get(queue)
        dead = depth.dead if depth else stages.dead_count(queue)
        if queue == CALLBACK_QUEUE:
            dead += int(dead_callbacks or 0)
        rows.append([queue, *((depth.waiting, depth.oldest_waiting_seconds, depth.claimed, depth.batches,
                               depth.oldest_claim_seconds, depth.lapsed, depth.delayed) if depth else (None,) * 7),
                     dead, client.llen(queue)])
    print_table("queues", _COLUMNS, rows, as_json)


@queues.command("dead")
@click.argument("queue", callback=lambda _c, _p, value: _queue_argument(value))
@click.option("--limit", type=int, default=100, show_default=True, help="Newest first, at most this many.")
@click.option("--json", "as_json", is_flag=True)
def queues_dead(queue, limit, as_json) -> None:
    """What QUEUE set aside (newest first): each entry's id, kind (``item``: a stage
    item as claimed; ``task``: a task and its arguments), time, error and content."""
    stages, _ = _stages()
    entries = [entry.as_dict() for entry in stages.dead_letters(queue, limit)]
    if as_json:
        click.echo(json.dumps(entries))
        return
    print_table(f"dead letters of {queue}", ["id", "kind", "at", "error", "content"],
                [[e["id"], e["kind"], e["at"], e["error"], e["item"] if e["kind"] == "item" else
                  f"{e['task']}{tuple(e['args'] or [])}"] for e in entries], False)
    if queue == CALLBACK_QUEUE:
        click.echo("Dead callbacks themselves: smsagg callbacks list --failed / smsagg callbacks replay")


@queues.command("replay")
@click.argument("queue", callback=lambda _c, _p, value: _queue_argument(value))
@click.option("--id", "entry_ids", multiple=True, help="The dead letter to replay (repeatable).")
@click.option("--all", "replay_all", is_flag=True, help="Every dead letter of QUEUE.")
def queues_replay(queue, entry_ids, replay_all) -> None:
    """Put set-aside work back: items at the head of QUEUE's list, tasks onto QUEUE,
    oldest first. Each entry is replayed once; one that fails again is set aside again."""
    if bool(entry_ids) == replay_all:
        raise click.BadParameter("give --id ID (one or more) or --all")
    stages, _ = _stages()
    replayed = stages.replay(queue, None if replay_all else entry_ids)
    missing = sorted(set(entry_ids) - set(replayed))
    click.echo(f"replayed {len(replayed)} dead letter(s) of {queue}")
    if missing:
        raise click.ClickException(f"no dead letter {', '.join(missing)} on {queue}")
