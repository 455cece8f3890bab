"""Catch-up sweeps: a beat job that drains its whole backlog in one chain of rounds.

Beat starts a sweep every few minutes. One round handles one batch; while the batch came back
full (work may remain) the round re-enqueues itself at once, with a countdown that keeps the
chain under the processor's rate limit (``PAYMENT_GATEWAY_RATE_PER_S``), and a cursor so one
pass never comes back to an order that failed earlier in it (the next beat tick retries it).

One chain at a time: a Redis key holds the chain's token. A beat tick that finds the key held
by another chain does nothing; a round of the chain refreshes it (the lease covers its own
run, its countdown and the queue's wait); the last round deletes it. A chain whose message is
lost (a crash between a round and its re-enqueue) lets the lease lapse and the next beat tick
starts over. Every round re-checks each order under its row lock, as a single sweep always
did, so even an overlap (a lapsed lease) repeats no processor call.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
from celery import Task

log = logging.getLogger(__name__)
KEY_PREFIX = "taplive:catchup:"
# Beyond a round's own time limit and countdown: how long its message may wait in the queue
# before the chain is presumed lost.
LEASE_SLACK_S = 120.0
# SET the key to the chain's token unless another chain holds it; refresh it if ours.
_CLAIM = """
local held = redis.call('GET', KEYS[1])
if held == false or held == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


@dataclass(frozen=True)
class Round:
    """What one round did: ``handled`` orders (any outcome), processor ``calls`` made (for
    the pacing), whether the batch was full (``more``), where the pass stands (``cursor``),
    and the processor's Retry-After when it answered 429 (the chain waits that long)."""

    handled: int
    calls: int
    more: bool
    cursor: str | None = None
    retry_after: float | None = None


def pace_s(calls: int, rate_per_s: float, elapsed_s: float) -> float:
    """Countdown before the next round so the chain averages at most ``rate_per_s`` calls:
    a round that made ``calls`` calls may not start its successor before calls/rate seconds
    after its own start. A slow processor (Stripe's ~0.3 s per call from one worker) is
    already below the rate: the next round then starts at once."""
    return max(0.0, calls / rate_per_s - elapsed_s)


def claim(client: redis.Redis, name: str, token: str, lease_s: float) -> bool:
    return bool(client.eval(_CLAIM, 1, KEY_PREFIX + name, token, int(lease_s * 1000)))


def release(client: redis.Redis, name: str, token: str) -> None:
    client.eval(_RELEASE, 1, KEY_PREFIX + name, token)


def run_round(task: Task, client: redis.Redis, name: str, chain: str | None,
              cursor: str | None, rate_per_s: float,
              work: Callable[[str | None], Round]) -> int:
    """One round of the sweep ``name``: claim (or keep) the chain's key, run ``work`` from
    ``cursor``, and re-enqueue ``task`` while work remains. Returns the orders handled
    (0 when another chain is running)."""
    # A chain's first round takes its message's id as the token: if its worker dies holding
    # the lease (SIGKILL skips the release below), the same message handed back by the
    # broker takes the lease back and carries on, instead of finding "another chain" and
    # waiting for the lease to lapse (docs/reliability.md, "Load and faults").
    token = chain or task.request.id or uuid.uuid4().hex
    time_limit = float(task.time_limit or 600)
    if not claim(client, name, token, time_limit + LEASE_SLACK_S):
        log.info("%s: another chain is running", name)
        return 0
    started = time.monotonic()
    try:
        done = work(cursor)
    except BaseException:
        release(client, name, token)  # the next beat tick starts a fresh chain
        raise
    if not (done.more or done.retry_after is not None):
        release(client, name, token)
        if chain:
            log.info("%s: backlog drained", name)
        return done.handled
    countdown = (done.retry_after if done.retry_after is not None
                 else pace_s(done.calls, rate_per_s, time.monotonic() - started))
    claim(client, name, token, countdown + time_limit + LEASE_SLACK_S)
    kwargs: dict[str, Any] = {"chain": token, "cursor": done.cursor}
    task.apply_async(kwargs=kwargs, countdown=countdown)
    log.info("%s: round done, next in %.2f s", name, countdown,
             extra={"handled": done.handled, "cursor": done.cursor})
    return done.handled
