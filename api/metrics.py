"""``GET /metrics`` (Prometheus text format, outside the JSON envelope by necessity) and the
per-request timing that feeds ``http_request_duration_seconds``."""

from __future__ import annotations

import time
from collections.abc import Iterable

import redis
from flask import Flask, Response, current_app, g, request
from sqlalchemy import func, select

from api.services import Services
from core.enums import OrderStatus
from core.metrics import HTTP_REQUEST_DURATION, CallbackGauge, render
from db.models import Order
from workers.queues import ALL_QUEUES

OPEN_STATUSES = (OrderStatus.PENDING, OrderStatus.ACCEPTED, OrderStatus.ACTIVE)
# kombu's Redis transport keeps each queue as a list, plus one list per priority step.
PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")


def broker_client(svc: Services) -> redis.Redis | None:
    """A client on the Celery broker, if it is Redis (queue depths are read there)."""
    return (redis.Redis.from_url(svc.settings.broker_url, socket_timeout=1)
            if svc.settings.broker_url.startswith("redis") else None)


def read_queue_depths(broker: redis.Redis | None) -> dict[str, int]:
    """Messages waiting per Celery queue (all priority lists), in one pipeline."""
    if broker is None:
        return {}
    pipe = broker.pipeline(transaction=False)
    for queue in ALL_QUEUES:
        for suffix in PRIORITY_SUFFIXES:
            pipe.llen(queue + suffix)
    lengths = pipe.execute()
    step = len(PRIORITY_SUFFIXES)
    return {queue: int(sum(lengths[i * step:(i + 1) * step]))
            for i, queue in enumerate(ALL_QUEUES)}


def _collectors(svc: Services, broker: redis.Redis | None) -> list[CallbackGauge]:
    def active_orders() -> Iterable[tuple[list[str], float]]:
        with svc.db.engine.connect() as conn:
            counts = dict(conn.execute(
                select(Order.status, func.count()).where(Order.status.in_(OPEN_STATUSES))
                .group_by(Order.status)).all())
        return [([s.value], float(counts.get(s, 0))) for s in OPEN_STATUSES]

    def queue_depth() -> Iterable[tuple[list[str], float]]:
        return [([queue], float(n)) for queue, n in read_queue_depths(broker).items()]

    return [
        CallbackGauge("taplive_active_orders_total", "Orders not yet finished, by status",
                      ["status"], active_orders),
        CallbackGauge("taplive_queue_depth", "Messages waiting in each Celery queue",
                      ["queue"], queue_depth),
    ]


def queue_depths() -> dict[str, int]:
    """The current app's queue depths (the admin analytics' queue health)."""
    return read_queue_depths(current_app.extensions["taplive_broker"])


def register_metrics(app: Flask) -> None:
    broker = app.extensions["taplive_broker"] = broker_client(app.extensions["taplive"])
    collectors = _collectors(app.extensions["taplive"], broker)

    @app.before_request
    def _start_timer() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _observe(response: Response) -> Response:
        started = g.pop("metrics_started", None)
        if started is not None:
            # The route template, never the raw path: label cardinality stays bounded.
            route = request.url_rule.rule if request.url_rule else "<unmatched>"
            HTTP_REQUEST_DURATION.labels(request.method, route, str(response.status_code)
                                         ).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(render(collectors), mimetype="text/plain; version=0.0.4")
