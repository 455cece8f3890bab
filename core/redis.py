"""One Redis client per process and URL, with short timeouts so a dead Redis fails fast, and
a short retry on a refused or dropped connection so a restarted one does not.

A restart by its process manager (compose, Kubernetes, standalone's launcher) keeps Redis away
for a fraction of a second; without the retry every request and task caught in that moment
failed (a 500 or a 503; the load-and-faults run, docs/reliability.md). Only connection errors
are retried, with backoff (50 ms doubling, capped at 0.5 s, 5 times: ~1.3 s in all); a
timeout is not (a hung Redis must still fail within ``timeout_s``)."""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

RECONNECT_RETRIES = 5


def make_redis(url: str, timeout_s: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=True,
        retry=Retry(ExponentialBackoff(cap=0.5, base=0.05), RECONNECT_RETRIES,
                    supported_errors=(redis.ConnectionError,)),
        retry_on_error=[redis.ConnectionError],
    )
