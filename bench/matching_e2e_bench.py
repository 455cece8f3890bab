"""End-to-end matching latency: from ``POST /orders`` returning to the first invited provider's
notification record, through a real Celery worker, Redis and PostgreSQL.

Run:  .venv/bin/python -m bench.matching_e2e_bench [--providers 5000] [--orders 300] [--quick]

What runs: a throwaway PostGIS database (migrated), Redis logical database 14 (flushed),
N verified providers online around New York (bulk-inserted users, presence registered through
``PresenceRegistry`` exactly as ``PUT /providers/me/availability`` does), and one real worker
process (``celery -A celery_app worker``, prefork, 2 children, every queue: the Procfile's
worker). The API is the real app in this process (Flask test client: the request, its
commit and the after-commit outbox kick are the production code; only the HTTP socket is
skipped, which is not on the measured path).

For each order (sequentially): POST /orders, then poll (1 ms) until the rank-1 invitation row
and its notification record are committed, while a Redis subscriber catches the push of that
provider's invitation on the Socket.IO channel (what every real-time server process relays to
the provider's sockets; bench/realtime_bench.py measures to the socket itself).
The chain measured (issue 12's fast path): commit -> matching.match_order sent by the commit
hook (index refresh, KD-tree search, live re-check, rank, insert, commit) ->
notifications.notify_invited sent by that commit's hook (records, commit) -> pushed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, insert, text

from bench.scratch import create_database, drop_database
from core.notifier import SOCKETIO_CHANNEL

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret-key-0123456789abcdef0123456789"
NYC = (40.7128, -74.0060)
PROBE = text("""
    SELECT m.id, n.id FROM order_matches m
    LEFT JOIN notifications n ON n.match_id = m.id AND n.kind = 'order_invitation'
    WHERE m.order_id = :order_id AND m.rank = 1
""")


def _env(url: str) -> dict[str, str]:
    return os.environ | {
        "DATABASE_URL": url, "REDIS_URL": REDIS_URL, "SECRET_KEY": SECRET,
        "JWT_SECRET_KEY": SECRET + "-jwt", "APP_ENV": "development", "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "console", "SERVICE_NAME": "bench-worker",
        # The seeded providers report once; keep them live for the whole run.
        "PRESENCE_OFFLINE_AFTER_S": "86400",
    }


def _seed(url: str, providers: int, rng: random.Random) -> uuid.UUID:
    from core.enums import UserRole, VerificationStatus
    from db import migrate
    from db.models import User
    from db.session import make_engine
    from domain.presence_store import PresenceRegistry, ProviderLocation

    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    creator = uuid.uuid4()
    ids = [uuid.uuid4() for _ in range(providers)]

    def user(uid: uuid.UUID, name: str, role: UserRole, status: VerificationStatus
             ) -> dict[str, Any]:
        return {"id": uid, "username": name, "email": f"{name}@bench.test",
                "password_hash": "x", "role": role, "profile": {},
                "verification_status": status, "created_at": now, "updated_at": now}

    with engine.begin() as conn:
        conn.execute(insert(User.__table__), [
            user(creator, "bench_creator", UserRole.CREATOR, VerificationStatus.PENDING),
            *(user(uid, f"bench_p{i}", UserRole.PROVIDER, VerificationStatus.VERIFIED)
              for i, uid in enumerate(ids))])
    engine.dispose()
    registry = PresenceRegistry(redis.Redis.from_url(REDIS_URL, decode_responses=True))
    for uid in ids:
        lat, lon = NYC[0] + rng.gauss(0, 0.03), NYC[1] + rng.gauss(0, 0.04)  # ~3 km sigma
        registry.go_online(uid, {"online": True, "maxTravelM": rng.choice([None, 3000, 5000]),
                                 "verified": True, "acceptanceRate": rng.random(),
                                 "completionRate": None},
                           ProviderLocation(lat, lon, 5.0, now), now.timestamp())
    return creator


def _start_worker(url: str) -> subprocess.Popen[bytes]:
    level = os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")
    return subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
         "--concurrency", "2", "--queues", "default,matching,payments,notifications,maintenance",
         "--loglevel", level, "--without-mingle", "--without-gossip"],
        cwd=ROOT, env=_env(url), start_new_session=True, stdout=subprocess.DEVNULL)


def _stop_worker(worker: subprocess.Popen[bytes]) -> None:
    """Warm shutdown of the worker we started (its main process stops its own children); kill
    its process group only if it does not stop in time."""
    worker.send_signal(signal.SIGTERM)
    try:
        worker.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=10)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    rank = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[rank]


def _one_order(client: Any, headers: dict[str, str], engine: Any, pubsub: Any,
               rng: random.Random, timeout: float = 15.0) -> dict[str, float] | None:
    body = {"title": "Bench stream", "serviceRadius": 1500, "baseAmount": "25.00",
            "currency": "USD",
            "location": {"latitude": NYC[0] + rng.gauss(0, 0.02),
                         "longitude": NYC[1] + rng.gauss(0, 0.025)}}
    started = time.perf_counter()
    response = client.post("/api/v1/orders", json=body, headers=headers)
    returned = time.perf_counter()
    assert response.status_code == 201, response.json
    order_id = response.json["data"]["order"]["id"]
    out = {"post_ms": (returned - started) * 1000}
    deadline = returned + timeout
    with engine.connect() as conn:
        while time.perf_counter() < deadline and len(out) < 4:
            now = time.perf_counter()
            if "notification_ms" not in out:
                row = conn.execute(PROBE, {"order_id": order_id}).first()
                conn.rollback()  # a fresh snapshot for the next poll
                if row is not None and "match_ms" not in out:
                    out["match_ms"] = (now - returned) * 1000
                if row is not None and row[1] is not None:
                    out["notification_ms"] = (now - returned) * 1000
            while "event_ms" not in out:
                message = pubsub.get_message(timeout=0)
                if message is None:
                    break
                if message["type"] != "message":
                    continue
                emitted = json.loads(message["data"])
                data = emitted.get("data")
                event = data[0] if isinstance(data, list) and data else {}
                payload = event.get("payload") or {}
                if (emitted.get("event") == "order:created"
                        and payload.get("orderId") == order_id and payload.get("rank") == 1):
                    out["event_ms"] = (time.perf_counter() - returned) * 1000
            time.sleep(0.001)
    return out if len(out) == 4 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", type=int, default=5000)
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--quick", action="store_true", help="500 providers, 30 orders")
    args = parser.parse_args()
    if args.quick:
        args.providers, args.orders, args.warmup = 500, 30, 3
    rng = random.Random(20261202)
    name, url = create_database()
    store = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    store.flushdb()
    worker: subprocess.Popen[bytes] | None = None
    try:
        creator_id = _seed(url, args.providers, rng)
        os.environ.update(_env(url) | {"SERVICE_NAME": "bench-api"})
        from api import create_app
        from api.auth.tokens import issue_access_token
        from db.models import User

        app = create_app()
        with app.app_context():
            session = app.extensions["taplive"].db.session()
            creator = session.get(User, creator_id)
            headers = {"Authorization": f"Bearer {issue_access_token(creator)}"}
            app.extensions["taplive"].db.session.remove()
        worker = _start_worker(url)
        engine = create_engine(url)
        pubsub = store.pubsub()
        pubsub.subscribe(SOCKETIO_CHANNEL)
        client = app.test_client()
        for _ in range(args.warmup):  # worker start-up, index build, connection pools
            _one_order(client, headers, engine, pubsub, rng, timeout=60)
        samples, lost = [], 0
        started = time.perf_counter()
        for _ in range(args.orders):
            sample = _one_order(client, headers, engine, pubsub, rng)
            if sample is None:
                lost += 1
            else:
                samples.append(sample)
        wall = time.perf_counter() - started
        _report(args, samples, lost, wall)
    finally:
        if worker is not None:
            _stop_worker(worker)
        store.flushdb()
        drop_database(name)


def _report(args: argparse.Namespace, samples: list[dict[str, float]], lost: int,
            wall: float) -> None:
    import numpy
    import scipy

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}; "
          f"{args.providers:,} providers online around New York, {len(samples)} orders "
          f"(+{args.warmup} warm-up), sequential; worker: prefork x2, every queue\n")
    print("| from POST /orders returning to ... | p50 (ms) | p90 (ms) | p99 (ms) | max (ms) |")
    print("|---|---:|---:|---:|---:|")
    rows = [("POST /orders itself (request, commit, outbox kick)", "post_ms"),
            ("rank-1 invitation stored (order_matches)", "match_ms"),
            ("rank-1 provider's notification record", "notification_ms"),
            ("its invitation pushed to the real-time servers", "event_ms")]
    for label, key in rows:
        values = [s[key] for s in samples]
        if values:
            print(f"| {label} | {statistics.median(values):.1f} | "
                  f"{_percentile(values, 90):.1f} | {_percentile(values, 99):.1f} | "
                  f"{max(values):.1f} |")
    print(f"\nlost (no notification within 15 s): {lost}; wall time {wall:.1f} s")


if __name__ == "__main__":
    main()
