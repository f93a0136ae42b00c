"""``smsagg queues``: how much work waits at each stage, for operators watching a backlog."""

from __future__ import annotations

import time

import click

from app.adapters.redis_scripts import connect
from app.adapters.stage_queue import StageQueue
from app.cli.common import print_table, settings
from app.domain.priorities import ALL_QUEUES


@click.command()
@click.option("--json", "as_json", is_flag=True)
def queues(as_json) -> None:
    """Per queue: items waiting to be drained, items claimed by running drain tasks (and
    the age of the oldest claim), and Celery task messages waiting (retries, callbacks)."""
    config = settings()
    client = connect(config.require_redis_url())
    depths = {d.queue: d for d in StageQueue(client, config.key_prefix).depths(time.time())}
    rows = []
    for queue in ALL_QUEUES:
        depth = depths.get(queue)
        rows.append([queue, depth.waiting if depth else None, depth.claimed if depth else None,
                     depth.batches if depth else None, depth.oldest_claim_seconds if depth else None,
                     client.llen(queue)])
    print_table("queues", ["queue", "waiting", "claimed", "batches", "oldest_claim_s", "task_messages"], rows,
                as_json)
