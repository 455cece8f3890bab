"""A real Celery worker on the real Redis broker runs our tasks, with the request id carried."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask

from beat_schedule import BEAT_SCHEDULE
from core.context import request_id_var
from tasks.maintenance import HEARTBEAT_KEY
from workers.queues import ALL_QUEUES


@pytest.fixture
def worker(app: Flask, redis_client: redis.Redis) -> Iterator[Celery]:
    celery: Celery = app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=list(ALL_QUEUES), shutdown_timeout=20):
        yield celery


def test_task_runs_on_its_queue_and_carries_the_request_id(
    worker: Celery, redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    caplog.set_level(logging.INFO, logger="tasks.maintenance")
    token = request_id_var.set("http-req-7")
    try:
        result = worker.tasks["maintenance.heartbeat"].apply_async()
    finally:
        request_id_var.reset(token)
    deadline = time.monotonic() + 20
    while not redis_client.get(HEARTBEAT_KEY) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.2)
    assert redis_client.get(HEARTBEAT_KEY), "the worker never ran the task"
    records = [r for r in caplog.records if r.getMessage() == "heartbeat"]
    assert records, "no log line from the task"
    assert records[-1].request_id == "http-req-7"
    assert records[-1].task_id == result.id


def test_routing_sends_each_area_to_its_queue(worker: Celery) -> None:
    router = worker.amqp.router
    assert router.route({}, "maintenance.heartbeat")["queue"].name == "maintenance"
    assert router.route({}, "payments.capture")["queue"].name == "payments"
    assert router.route({}, "matching.match_order")["queue"].name == "matching"
    assert router.route({}, "something.else")["queue"].name == "default"


def test_every_scheduled_task_exists(worker: Celery) -> None:
    for name, entry in BEAT_SCHEDULE.items():
        assert entry["task"] in worker.tasks, name
