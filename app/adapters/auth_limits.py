"""The failed-login counts in Redis (:mod:`app.domain.auth_limits` decides what they mean).

Two windowed counters per attempt, one per client address group and one per login,
read (before a KDF may run) or incremented (after a failure) by one script in one round
trip. A counter's window starts with its first failure and lasts ``window_seconds``;
a key that lapses takes its count with it, so nothing needs cleaning up. Being in Redis,
the counts are shared by every ingress process and host.

Keys: ``<prefix>auth:addr:<address group>`` and ``<prefix>auth:login:<scope>:<digest>``.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from app.adapters.redis_scripts import LuaScript

_FAILURES_LUA = """
-- KEYS: address counter, login counter; ARGV: '1' to count a failure (else only read), window s
local counts = {}
for i, key in ipairs(KEYS) do
  if ARGV[1] == '1' then
    counts[i] = redis.call('INCR', key)
    if counts[i] == 1 then redis.call('EXPIRE', key, tonumber(ARGV[2])) end
  else
    counts[i] = tonumber(redis.call('GET', key) or '0')
  end
end
return counts
"""


@dataclass(frozen=True)
class FailureCounts:
    address: int
    login: int


class RedisFailureCounter:
    """Failed logins per address group and per login, counted in Redis."""

    _script = LuaScript(_FAILURES_LUA)

    def __init__(self, client: redis.Redis, prefix: str, *, window_seconds: int):
        self.client = client
        self.prefix = prefix
        self.window_seconds = window_seconds

    def read(self, address_group: str, login_tag: str) -> FailureCounts:
        return self._call(address_group, login_tag, record=False)

    def record_failure(self, address_group: str, login_tag: str) -> FailureCounts:
        return self._call(address_group, login_tag, record=True)

    def _call(self, address_group: str, login_tag: str, *, record: bool) -> FailureCounts:
        keys = [f"{self.prefix}auth:addr:{address_group}", f"{self.prefix}auth:login:{login_tag}"]
        address, login = self._script(self.client, keys, ["1" if record else "0", self.window_seconds])
        return FailureCounts(int(address), int(login))
