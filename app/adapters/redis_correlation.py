"""SMSC message id -> our message, in Redis (DESIGN.md, "DR correlation").

When the SMSC acknowledges a segment, ``<prefix>smsc:<carrier>:<smsc id>`` is set to
``<message id>:<seq>`` for ``ttl`` seconds (receipts come within days or not at all);
the segment table keeps the same mapping for good. Ids are stored in the canonical
form of :func:`app.domain.receipts.normalize_smsc_id`, and looked up by every
candidate reading of the id a receipt carries (hex vs decimal, zero padding).
"""

from __future__ import annotations

from collections.abc import Iterable

import redis

from app.domain.receipts import normalize_smsc_id, smsc_id_candidates

DEFAULT_TTL_SECONDS = 3 * 24 * 3600


class SmscIdIndex:
    def __init__(self, client: redis.Redis, key_prefix: str, ttl_seconds: int = DEFAULT_TTL_SECONDS):
        self.client = client
        self.prefix = key_prefix
        self.ttl_seconds = ttl_seconds

    def _key(self, carrier_id: int, smsc_id: str) -> str:
        return f"{self.prefix}smsc:{carrier_id}:{smsc_id}"

    def remember(self, carrier_id: int, entries: Iterable[tuple[str, str, int]]) -> None:
        """Record ``(smsc id, message id, seq)`` triples in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for smsc_id, message_id, seq in entries:
            pipe.set(self._key(carrier_id, normalize_smsc_id(smsc_id)), f"{message_id}:{seq}", ex=self.ttl_seconds)
        pipe.execute()

    def lookup(self, carrier_id: int, raw_smsc_id: str) -> tuple[str, int] | None:
        """The (message id, seq) a receipt's id belongs to, trying every reading of it."""
        candidates = smsc_id_candidates(raw_smsc_id)
        values = self.client.mget([self._key(carrier_id, c) for c in candidates]) if candidates else []
        for value in values:
            if value:
                message_id, _, seq = value.decode().rpartition(":")
                return message_id, int(seq)
        return None
