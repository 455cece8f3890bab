"""Load + faults: a seeded market driven through the real HTTP API by concurrent clients against
gunicorn + a prefork Celery worker + beat, on PostgreSQL/PostGIS and a Redis of the run's own,
while a fault schedule SIGKILLs pool children and the worker, restarts the broker and runs a
second beat, and the processor's webhooks arrive twice and out of order. Then, once the market
is quiet (bounded), the invariants (``invariants.py``) and a report.

The quick size runs in the test command (``test_load_faults.py``); a larger one from here:

    .venv/bin/python -m tests.reliability.harness --orders 500 --clients 16 [--seed 7]

which makes a throwaway database (``bench.scratch``), prints the report and writes it as JSON
and markdown under ``var/reliability/``; exit status 1 if an invariant failed.
"""

from __future__ import annotations

import argparse
import json
import math
import random
import statistics
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.stream_bench import percentile
from db.session import make_engine
from domain.auth.tokens import TokenIssuer
from tests.reliability import invariants
from tests.reliability.faults import CYCLE_S, FaultLog, WebhookReplayer, run_faults, schedule
from tests.reliability.market import (
    Api,
    Client,
    Recorder,
    drive,
    plan_orders,
    seed_admin,
    seed_people,
)
from tests.reliability.processes import REPO, Stack, callback_secret
from tests.reliability.queue_latency import QueueLatency

SECRET = "reliability-secret-key-0123456789abcdef0123"


@dataclass(frozen=True)
class RunConfig:
    orders: int = 40
    clients: int = 6
    seed: int = 14
    worker_concurrency: int = 2
    api_workers: int = 4
    quiesce_s: float = 90.0
    split_workers: bool = False


@dataclass
class Report:
    config: dict[str, Any]
    orders_by_outcome: dict[str, int]
    load_s: float
    drain_s: float
    requests: int
    requests_per_s: float
    orders_settled: int
    orders_refunded: int  # refund outcomes whose dispute the admin resolved with a refund
    orders_settled_per_s: float
    endpoints: dict[str, dict[str, float]]
    statuses: dict[str, int]
    queue_latency_ms: dict[str, dict[str, float]]
    capture_lag_s: dict[str, float]
    faults: list[tuple[float, str, str]]
    fault_counts: dict[str, int]
    restarts: dict[str, int]  # by the restart policy, per process
    webhooks_delivered: int
    notifications: int
    client_failures: list[str]
    tracebacks: dict[str, int]  # per process log (worker kills leave some: WorkerLostError)
    logs: str
    violations: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not any(self.violations.values())

    def markdown(self) -> str:
        lines = [
            f"orders {self.config['orders']} ({self.orders_by_outcome}), clients "
            f"{self.config['clients']}, seed {self.config['seed']}",
            f"load {self.load_s:.1f} s, drain {self.drain_s:.1f} s; {self.requests} requests "
            f"({self.requests_per_s:.1f}/s during the load); {self.orders_settled} orders "
            f"settled ({self.orders_settled_per_s:.2f}/s over load + drain), "
            f"{self.orders_refunded} refunded after a dispute",
            f"faults: {self.fault_counts}; restarted by the policy {self.restarts}; webhooks "
            f"delivered {self.webhooks_delivered}; notifications {self.notifications}",
            f"statuses: {self.statuses}",
            f"tracebacks in the logs ({self.logs}): {self.tracebacks}",
            "",
            "| endpoint | n | p50 ms | p99 ms | max ms |", "|---|---|---|---|---|",
            *(f"| {name} | {row['n']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} | "
              f"{row['max_ms']:.1f} |" for name, row in sorted(self.endpoints.items())),
            "",
            "| task (queue wait: task-sent -> task-started) | n | p50 ms | p99 ms |",
            "|---|---|---|---|",
            *(f"| {name} | {row['n']:.0f} | {row['p50_ms']:.1f} | {row['p99_ms']:.1f} |"
              for name, row in sorted(self.queue_latency_ms.items())),
            "",
            f"completion -> capture posting: {self.capture_lag_s}",
            "",
            "invariants: " + ("all hold" if self.ok else "VIOLATED"),
            *(f"- {name}: {len(found)} violation(s) {found[:5]}"
              for name, found in self.violations.items()),
        ]
        if self.client_failures:
            lines += ["", f"unexpected answers ({len(self.client_failures)}):",
                      *(f"- {f}" for f in self.client_failures[:20])]
        return "\n".join(lines)


def _summary(values: list[float], scale: float = 1.0) -> dict[str, float]:
    if not values:
        return {"n": 0, "p50_ms": math.nan, "p99_ms": math.nan, "max_ms": math.nan}
    return {"n": len(values), "p50_ms": percentile(values, 50) * scale,
            "p99_ms": percentile(values, 99) * scale, "max_ms": max(values) * scale}


def run(database_url: str, config: RunConfig, workdir: Path) -> Report:
    """One run against ``database_url`` (migrated and empty)."""
    rng = random.Random(config.seed)
    plans = plan_orders(rng, config.orders)
    fault_plan = schedule(rng, cycles=max(1, config.orders // 40))
    stack = Stack(database_url, workdir, SECRET, worker_concurrency=config.worker_concurrency,
                  api_workers=config.api_workers, split_workers=config.split_workers)
    engine = make_engine(database_url)
    stop = threading.Event()
    threads: list[threading.Thread] = []
    report: Report | None = None
    try:
        stack.start()
        issuer = TokenIssuer(SECRET + "-jwt", 86_400, 86_400)
        people = seed_people(engine, issuer, config.clients)
        admin = seed_admin(engine, issuer)
        recorder = Recorder()
        clients = [Client(Api(stack.base_url, recorder), creator, providers,
                          callback_secret(SECRET), admin) for creator, providers in people]
        latency = QueueLatency(stack.redis_url)
        webhooks = WebhookReplayer(stack, recorder.add)
        load_done = threading.Event()
        log = FaultLog()
        faults = threading.Thread(target=run_faults, args=(stack, fault_plan, log, load_done),
                                  daemon=True)
        threads = [threading.Thread(target=latency.run, args=(stop,), daemon=True),
                   threading.Thread(target=webhooks.run, args=(stop,), daemon=True)]
        for thread in threads:
            thread.start()
        faults.start()
        load_s = drive(clients, plans)
        load_done.set()
        faults.join(timeout=CYCLE_S * 2 + 60)
        drain_began = time.monotonic()
        planned = {oid: outcome for c in clients for oid, outcome in c.created.items()
                   if oid in c.finished}
        while time.monotonic() - drain_began < config.quiesce_s:
            if not invariants.unsettled(engine, planned) and \
                    not invariants.unpublished_outbox(engine):
                break
            time.sleep(1.0)
        drain_s = time.monotonic() - drain_began
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        stopped_early = {oid for c in clients for oid in c.created if oid not in c.finished}
        all_created = {oid: outcome for c in clients for oid, outcome in c.created.items()}
        # The refunds the admin decided (its resolve answered 200).
        refunds = {oid: minor for c in clients for oid, minor in c.refunds.items()
                   if oid in c.finished}
        operations = stack.processor_log()
        violations = {
            "orders (lost or stuck)": invariants.check_orders(engine, all_created,
                                                              stopped_early),
            "processor (double hold/capture/refund/transfer)": invariants.check_gateway(
                engine, operations),
            "refunds (each decided refund made once, for its amount)":
                invariants.check_refunds(engine, operations, refunds),
            "ledger (balanced per currency, one posting per kind)":
                invariants.check_ledger(engine),
            "notifications (none lost)": invariants.check_notifications(engine),
            "API (no 5xx)": [f"{endpoint}: {status}" for endpoint, status, _ in
                             recorder.samples if status >= 500],
        }
        statuses: dict[str, int] = {}
        for _, status, _ in recorder.samples:
            statuses[str(status)] = statuses.get(str(status), 0) + 1
        settled = sum(1 for s in invariants.order_states(engine).values()
                      if s.escrow == "settled")
        lags = invariants.capture_lags(engine)
        outcomes: dict[str, int] = {}
        for plan in plans:
            outcomes[plan.outcome] = outcomes.get(plan.outcome, 0) + 1
        report = Report(
            config=asdict(config), orders_by_outcome=outcomes, load_s=load_s, drain_s=drain_s,
            requests=len(recorder.samples),
            requests_per_s=len(recorder.samples) / load_s,
            orders_settled=settled, orders_refunded=len(refunds),
            orders_settled_per_s=settled / (load_s + drain_s),
            endpoints={name: _summary([s for _, s in rows], 1000.0)
                       for name, rows in recorder.by_endpoint().items()},
            statuses=statuses,
            queue_latency_ms={name: _summary(waits, 1000.0)
                              for name, waits in latency.waits.items()},
            capture_lag_s={"n": len(lags),
                           "p50": round(statistics.median(lags), 2) if lags else math.nan,
                           "p99": round(percentile(lags, 99), 2) if lags else math.nan},
            faults=log.entries, fault_counts=log.counts(),
            restarts=stack.restarts, webhooks_delivered=webhooks.delivered,
            notifications=invariants.notification_count(engine),
            client_failures=recorder.failures, tracebacks={}, logs=str(workdir),
            violations=violations)
        return report
    finally:
        stop.set()
        stack.stop()
        if report is not None:
            report.tracebacks = stack.tracebacks()
        engine.dispose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=500)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--worker-concurrency", type=int, default=2)
    parser.add_argument("--api-workers", type=int, default=4)
    parser.add_argument("--quiesce", type=float, default=300.0)
    parser.add_argument("--split-workers", action="store_true",
                        help="one worker per queue group (payments | matching | the rest), "
                             "as compose and Kubernetes run them; default: the Procfile's one")
    parser.add_argument("--out", type=Path, default=REPO / "var" / "reliability")
    args = parser.parse_args(argv)
    from bench.scratch import create_database, drop_database
    from db import migrate

    config = RunConfig(orders=args.orders, clients=args.clients, seed=args.seed,
                       worker_concurrency=args.worker_concurrency,
                       api_workers=args.api_workers, quiesce_s=args.quiesce,
                       split_workers=args.split_workers)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    workdir = args.out / f"run-{stamp}"  # the processes' logs, kept
    workdir.mkdir(parents=True, exist_ok=True)
    name, url = create_database()
    try:
        engine = make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        report = run(url, config, workdir)
    finally:
        drop_database(name)
    text = report.markdown()
    print(text)
    (args.out / f"load-faults-{stamp}.md").write_text(text + "\n")
    (args.out / f"load-faults-{stamp}.json").write_text(
        json.dumps(asdict(report), indent=2, default=str) + "\n")
    print(f"written: {args.out}/load-faults-{stamp}.{{md,json}}")
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
