"""Each account's current token generation, kept in Redis for the per-request token check.

The truth is ``users.token_generation`` (bumped by logout-all, password change and erasure in
the same transaction as the change itself; ``domain.users.revoke_tokens``). Reading it from
PostgreSQL on every request cost a round trip and a statement, a sixth of a nearby search, so
the API keeps a copy in Redis and reads it in the same pipeline as the denylist check.

The copy is a *monotonic register*: generations only grow, and every write (the bump published
after its commit, a reader filling a missing key from the database) goes through one script
that keeps the larger value. So a reader that read the database just before a bump committed
can never overwrite the bump with its older value, whichever order the two writes land in. A
bump is refused the moment its commit is published, on every API process at once.

What could still leave a stale copy is a process that dies between the bump's commit and its
publish while an older copy sits in Redis; the key's TTL (``GENERATION_TTL_S``) bounds that
window, and a missing key is simply re-read from the database.
"""

from __future__ import annotations

import logging
import uuid

import redis
from sqlalchemy.orm import Session

from db.session import committed_notes
from domain.users import TOKEN_GENERATION_BUMPED

log = logging.getLogger(__name__)

PREFIX = "taplive:auth:gen:"
GENERATION_TTL_S = 600

# KEYS[1] = the user's key; ARGV[1] = a generation, ARGV[2] = TTL in seconds.
# Sets the key to ARGV[1] unless it already holds a larger generation; returns the value kept.
_KEEP_LARGER = """
local current = tonumber(redis.call('GET', KEYS[1]))
local offered = tonumber(ARGV[1])
if current == nil or current < offered then
  redis.call('SET', KEYS[1], offered, 'EX', ARGV[2])
  return offered
end
return current
"""


def key(user_id: uuid.UUID | str) -> str:
    return f"{PREFIX}{user_id}"


class GenerationRegister:
    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._keep_larger = client.register_script(_KEEP_LARGER)

    def offer(self, user_id: uuid.UUID, generation: int) -> int:
        """Record ``generation`` unless a larger one is known; returns the one kept."""
        return int(self._keep_larger(keys=[key(user_id)], args=[generation, GENERATION_TTL_S]))

    def publish_committed_bumps(self, session: Session) -> None:
        """``Database.on_commit`` hook: make the revocations this commit made effective."""
        for user_id, generation in committed_notes(session, TOKEN_GENERATION_BUMPED):
            try:
                self.offer(user_id, generation)
            except redis.RedisError:
                # Requests fail closed while Redis is unreachable; if it comes back holding an
                # older copy, the copy expires within GENERATION_TTL_S.
                log.error("could not publish a token revocation", exc_info=True,
                          extra={"user_id": str(user_id)})
