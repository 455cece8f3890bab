"""Prometheus metrics, defined once (the spec's names and buckets plus the engine's own).

Multiprocess-safe: when ``PROMETHEUS_MULTIPROC_DIR`` is set (gunicorn with several workers,
standalone mode), every process writes its samples to files in that directory and ``/metrics``
aggregates them, so a scrape sees the whole server whichever worker answers. Workers on the
same host that share the directory are included; across hosts, Flower's own ``/metrics`` covers
task outcomes and runtimes.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import REGISTRY, Collector

HTTP_REQUEST_DURATION = Histogram(
    "http_request_duration_seconds",
    "Duration of HTTP requests in seconds",
    ["method", "route", "status_code"],
    buckets=(0.1, 0.3, 0.5, 0.7, 1, 3, 5, 7, 10),  # the spec's buckets
)
USER_REGISTRATIONS = Counter(
    "taplive_user_registrations_total", "Total number of user registrations")
TASK_OUTCOMES = Counter(
    "taplive_task_outcomes_total", "Celery task outcomes", ["task", "outcome"])
# The engine's own: observed in the worker where the work happens (domain.matching_service,
# domain.payments.settlement). Buckets are sized from docs/matching.md: a candidate query is
# well under a millisecond, a whole match_order step (with its Redis and database re-checks)
# a few to tens of milliseconds.
MATCH_LATENCY = Histogram(
    "taplive_match_latency_seconds",
    "Time to find and rank the live candidates of one new order",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
)
MATCH_CANDIDATES = Histogram(
    "taplive_match_candidates",
    "Index candidates within a new order's radius (before the live re-check)",
    buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000),
)
REMATCH_ASSIGNMENT_SIZE = Histogram(
    "taplive_rematch_assignment_size",
    "Orders matched by one batch re-match (a histogram, not a gauge: every run counts, and "
    "a gauge would need a multiprocess mode per worker)",
    buckets=(0, 1, 5, 10, 50, 100, 500, 1000, 5000, 10000, 50000),
)
SETTLEMENT_AMOUNT = Counter(
    "taplive_settlement_amount_minor_total",
    "Net amounts transferred to providers, in minor units of the currency",
    ["currency"],
)


class CallbackGauge(Collector):
    """A gauge computed at scrape time (e.g. active orders from the database, queue depth from
    Redis): the truth lives elsewhere, so nothing is cached in-process."""

    def __init__(self, name: str, documentation: str, labels: list[str],
                 read: Callable[[], Iterable[tuple[list[str], float]]]) -> None:
        self._name, self._doc, self._labels, self._read = name, documentation, labels, read

    def collect(self) -> Iterable[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, self._doc, labels=self._labels)
        try:
            for label_values, value in self._read():
                family.add_metric(label_values, value)
        except Exception:  # a dead dependency must not break the whole scrape
            pass
        yield family


def render(extra: Iterable[Collector] = ()) -> bytes:
    """The text exposition of every process's metrics plus the scrape-time gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        multiprocess.MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    scrape_time = CollectorRegistry()
    for collector in extra:
        scrape_time.register(collector)
    return bytes(generate_latest(processes)) + bytes(generate_latest(scrape_time))


def mark_process_dead(pid: int) -> None:
    """gunicorn ``child_exit`` hook: drop a dead worker's live gauges."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(pid)
