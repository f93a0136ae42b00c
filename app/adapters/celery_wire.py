"""Celery task messages built without ``apply_async``, so the ingress can push one
with the same Redis round trip that claims the idempotency key and takes the token.

A message here is exactly what kombu's Redis transport ``LPUSH``-es for a task sent
with Celery's message protocol 2 and the default priority: a JSON envelope with a
base64 JSON body ``[args, kwargs, embed]``. ``apply_async`` from a single process
reaches ~1.9k/s on this machine against ~41k/s for pushing pre-built messages
(DESIGN.md); the integration tests prove a real worker consumes these.
"""

from __future__ import annotations

import base64
import functools
import json
import os
import socket
import uuid
from datetime import datetime, timezone
from typing import Any

_ORIGIN = f"{os.getpid()}@{socket.gethostname()}"
_EMBED = {"callbacks": None, "errbacks": None, "chain": None, "chord": None}


def task_message(task_name: str, queue: str, args: list[Any], task_id: str | None = None,
                 eta: float | None = None) -> str:
    """The serialized kombu envelope for ``task_name(*args)`` routed to ``queue``; with
    ``eta`` (epoch seconds) the worker holds it until then, as for a ``countdown``."""
    task_id = task_id or uuid.uuid4().hex
    body = base64.b64encode(json.dumps([args, {}, _EMBED], separators=(",", ":")).encode("utf-8")).decode("ascii")
    message = _envelope_template(task_name, queue).replace(_BODY, body).replace(_ID, task_id)
    if eta is not None:
        when = datetime.fromtimestamp(eta, timezone.utc).isoformat()
        message = message.replace('"eta":null', f'"eta":"{when}"', 1)
    return message


_BODY, _ID = "@smsagg-body@", "@smsagg-id@"


@functools.lru_cache(maxsize=64)
def _envelope_template(task_name: str, queue: str) -> str:
    """The envelope with the body and the id left open: everything else is the same
    for every message of a task and queue, so the hot path only fills two values
    (base64 and ids never need JSON escaping). The id doubles as the delivery tag."""
    envelope = {
        "body": _BODY,
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {
            "lang": "py",
            "task": task_name,
            "id": _ID,
            "shadow": None,
            "eta": None,
            "expires": None,
            "group": None,
            "group_index": None,
            "retries": 0,
            "timelimit": [None, None],
            "root_id": _ID,
            "parent_id": None,
            "argsrepr": "",
            "kwargsrepr": "{}",
            "origin": _ORIGIN,
            "ignore_result": True,
        },
        "properties": {
            "correlation_id": _ID,
            "reply_to": "",
            "delivery_mode": 2,
            "delivery_info": {"exchange": "", "routing_key": queue},
            "priority": 0,
            "body_encoding": "base64",
            "delivery_tag": _ID,
        },
    }
    return json.dumps(envelope, separators=(",", ":"))
