"""A Redis restart (the broker and cache restarted by its process manager, a fraction of a
second down) is ridden through by every process's client instead of failing the requests and
tasks caught in it. Found by the load-and-faults run (tests/reliability/): a request in flight
while redis-server restarted answered 500 (``redis.exceptions.ConnectionError: Connection
refused``), another 503."""

from __future__ import annotations

import subprocess
import threading
import time
from pathlib import Path

import pytest
import redis

from core.embedded_redis import start_redis_server
from core.redis import make_redis


def test_a_client_rides_through_a_restart_of_its_server(tmp_path: Path) -> None:
    server, url = start_redis_server(tmp_path, persist=False, appendonly=True)
    port = int(url.rsplit(":", 1)[1].split("/")[0])
    client = make_redis(url)
    client.set("order", "held")
    restarted: list[subprocess.Popen[bytes]] = []

    def restart_later() -> None:  # down for ~0.3 s, as a process manager's restart
        time.sleep(0.3)
        restarted.append(start_redis_server(tmp_path, persist=False, port=port,
                                            appendonly=True)[0])

    server.terminate()
    server.wait(timeout=10)
    thread = threading.Thread(target=restart_later)
    thread.start()
    try:
        began = time.monotonic()
        assert client.get("order") == "held"  # the append-only file kept it
        assert client.incr("counter") == 1  # and a write goes through once
        assert time.monotonic() - began < 2.5
    finally:
        thread.join()
        for proc in restarted:
            proc.terminate()
            proc.wait(timeout=10)


def test_a_dead_redis_still_fails_within_seconds(tmp_path: Path) -> None:
    server, url = start_redis_server(tmp_path, persist=False)
    server.terminate()
    server.wait(timeout=10)
    client = make_redis(url)
    began = time.monotonic()
    with pytest.raises(redis.ConnectionError):
        client.get("anything")
    assert time.monotonic() - began < 3.0
