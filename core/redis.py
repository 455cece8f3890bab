"""One Redis client per process and URL, with short timeouts so a dead Redis fails fast."""

from __future__ import annotations

import redis


def make_redis(url: str, timeout_s: float = 2.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        health_check_interval=30,
        decode_responses=True,
    )
