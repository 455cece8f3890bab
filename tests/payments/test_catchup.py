"""Catch-up sweeps with a real Celery worker: a backlog of lost captures, then of due
settlements, drains in one chain of rounds paced by PAYMENT_GATEWAY_RATE_PER_S; a sweep
started twice at once runs one chain, and no order is handled twice.

``CATCHUP_N=800 CATCHUP_RATE=40 ... -s`` runs the drain test on a bigger backlog at another
rate and prints its timings (the measurement in docs/reliability.md).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from flask import Flask

from api import create_app
from tasks.catchup import KEY_PREFIX
from tasks.payments import BATCH
from tests.conftest import TEST_REDIS_URL, discard_committed_data, make_settings
from tests.payments.backlog import capture_backlog, make_settleable, states
from workers.queues import ALL_QUEUES

pytestmark = pytest.mark.slow
# Processor calls per second per chain in these tests (CATCHUP_RATE for the measurement).
RATE = float(os.environ.get("CATCHUP_RATE", "100"))
N = int(os.environ.get("CATCHUP_N", "300"))
SETTLE_BATCH = 100
SWEEPS = ("payments.retry_captures", "payments.settle_due")


@pytest.fixture
def catchup_app(pg_url: str) -> Iterator[Flask]:
    app = create_app(make_settings(pg_url, db_pool_size=10, payment_gateway_rate_per_s=RATE,
                                   payment_settlement_batch=SETTLE_BATCH))
    yield app
    discard_committed_data(app)


@pytest.fixture
def worker(catchup_app: Flask) -> Iterator[Celery]:
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    celery: Celery = catchup_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=list(ALL_QUEUES), shutdown_timeout=20):
        yield celery


@pytest.fixture
def rounds() -> Iterator[list[tuple[str, str | None, int]]]:
    """Every run of a sweep (worker or eager): (task, chain token, orders handled)."""
    seen: list[tuple[str, str | None, int]] = []

    def record(task: Any = None, kwargs: dict[str, Any] | None = None, retval: Any = None,
               **_: Any) -> None:
        if task is not None and task.name in SWEEPS:
            seen.append((task.name, (kwargs or {}).get("chain"), retval))

    task_postrun.connect(record, weak=False)
    yield seen
    task_postrun.disconnect(record)


def _wait(done: Callable[[], bool], timeout_s: float) -> float:
    started = time.monotonic()
    while not done():
        assert time.monotonic() - started < timeout_s, "the backlog did not drain in time"
        time.sleep(0.1)
    return time.monotonic() - started


def _idle(name: str) -> bool:
    return not redis.Redis.from_url(TEST_REDIS_URL).exists(KEY_PREFIX + name)


def _captures(app: Flask) -> list[str]:
    gateway = app.extensions["taplive"].payments.gateway
    return [op["intent"] for op in gateway.operations() if op["op"] == "capture"]


def test_a_backlog_drains_in_one_chain_at_the_gateway_rate(
        catchup_app: Flask, worker: Celery, rounds: list[tuple[str, str | None, int]]) -> None:
    ids = capture_backlog(catchup_app, N)
    worker.send_task("payments.retry_captures")  # what beat sends every 5 minutes
    captured_s = _wait(lambda: states(catchup_app, ids) == {"captured": N}
                       and _idle("retry_captures"), 60 + N / 5)
    chain = [r for r in rounds if r[0] == "payments.retry_captures"]
    # Full batches, then the one that finds the rest (or nothing): a single chain.
    assert len(chain) == N // BATCH + 1
    assert chain[0][1] is None and len({token for _, token, _ in chain[1:]}) <= 1
    assert sum(handled for _, _, handled in chain) == N
    assert len(_captures(catchup_app)) == N == len(set(_captures(catchup_app)))
    # Paced: every full round's calls took at least calls / rate before the next began.
    assert captured_s >= (N // BATCH) * BATCH / RATE * 0.95

    make_settleable(catchup_app, ids)
    worker.send_task("payments.settle_due")  # what beat sends every 10 minutes
    settled_s = _wait(lambda: states(catchup_app, ids) == {"settled": N}
                      and _idle("settle_due"), 60 + N / 5)
    chain = [r for r in rounds if r[0] == "payments.settle_due"]
    assert len(chain) == N // SETTLE_BATCH + 1
    assert sum(handled for _, _, handled in chain) == N
    assert settled_s >= (N // SETTLE_BATCH) * SETTLE_BATCH / RATE * 0.95
    transfers = [op for op in catchup_app.extensions["taplive"].payments.gateway.operations()
                 if op["op"] == "transfer"]
    assert len(transfers) == N
    print(f"\ncatch-up of {N} orders at {RATE:g} calls/s: captures {captured_s:.1f} s in "
          f"{N // BATCH + 1} rounds, settlement {settled_s:.1f} s in "
          f"{N // SETTLE_BATCH + 1} rounds")


def test_two_sweeps_at_once_run_one_chain(
        catchup_app: Flask, worker: Celery, rounds: list[tuple[str, str | None, int]]) -> None:
    ids = capture_backlog(catchup_app, 300)
    sweep = worker.tasks["payments.retry_captures"]
    start = threading.Barrier(2)
    results: list[int] = []

    def beat_tick() -> None:  # two ticks at once (beat and a chained round, two beats)
        start.wait()
        results.append(sweep.apply().get())

    ticks = [threading.Thread(target=beat_tick) for _ in range(2)]
    for tick in ticks:
        tick.start()
    for tick in ticks:
        tick.join(timeout=60)
    _wait(lambda: states(catchup_app, ids) == {"captured": 300}
          and _idle("retry_captures"), 120)
    # One tick started the chain (its first batch), the other found it running.
    assert sorted(results) == [0, BATCH]
    # Each order handled once across every round of every run: none was captured (or even
    # re-checked) twice.
    assert sum(handled for name, _, handled in rounds if name == SWEEPS[0]) == 300
    captures = _captures(catchup_app)
    assert len(captures) == 300 == len(set(captures))
