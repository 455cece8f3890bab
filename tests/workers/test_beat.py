"""Exactly one scheduler: a second beat process waits on redbeat's Redis lock instead of
doubling the schedule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from tests.conftest import TEST_SECRET, redis_db
from workers.queues import ALL_QUEUES

ROOT = Path(__file__).resolve().parents[2]


def _sent_tasks(client: redis.Redis) -> Counter[str]:
    sent: Counter[str] = Counter()
    for queue in ALL_QUEUES:
        for raw in client.lrange(queue, 0, -1):
            sent[json.loads(raw)["headers"]["task"]] += 1
    return sent


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_two_beats_do_not_double_the_schedule(pg_url: str, tmp_path: Path) -> None:
    # Its own logical database: nothing else flushes it while the beats hold their lock.
    beat_redis = redis_db(13)
    client = redis.Redis.from_url(beat_redis, decode_responses=True)
    client.flushdb()
    env = dict(os.environ, DATABASE_URL=pg_url, REDIS_URL=beat_redis, APP_ENV="test",
               SECRET_KEY=TEST_SECRET, JWT_SECRET_KEY=TEST_SECRET + "-jwt", LOG_LEVEL="INFO")
    beats = [
        subprocess.Popen([sys.executable, "-m", "celery", "-A", "celery_app", "beat",
                          "--schedule", str(tmp_path / f"beat{i}"), "--loglevel", "INFO"],
                         env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for i in range(2)
    ]
    try:
        # events.drain_outbox runs every 10 s: in 25 s one scheduler sends it twice (at ~10 s
        # and ~20 s); two schedulers that both ran the schedule would send it four times.
        time.sleep(25)
        sent = _sent_tasks(client)
        lock_holder = client.get("redbeat::lock")
    finally:
        for beat in beats:
            beat.terminate()
        for beat in beats:
            beat.wait(timeout=20)
        client.flushdb()
    assert lock_holder, "one beat holds the lock"
    assert 1 <= sent["events.drain_outbox"] <= 2, sent
    # Every 10 s task at most twice; streams.sample_stats (every 5 s) at most five times.
    assert all(count <= (5 if name == "streams.sample_stats" else 2)
               for name, count in sent.items()), sent
