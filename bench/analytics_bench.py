"""Analytics: is the cache worth it? Times ``/analytics/me`` and ``/admin/analytics``'s
domain calls in-process, cold (computed by SQL) against warm (read from Redis), on a
throwaway PostgreSQL database seeded with a marketplace's worth of orders.

    .venv/bin/python -m bench.analytics_bench [--orders 100000]

The warm path still pays the per-user version stamp (one indexed statement): that is the
price of never serving a user's own write stale.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import insert, text
from sqlalchemy.orm import Session

from bench.scratch import create_database, drop_database
from core.embedded_redis import start_redis_server
from core.enums import ApplicationStatus, OrderStatus, PaymentStatus, UserRole
from db import migrate
from db.models import Order, OrderApplication, PaymentTransaction, User
from db.session import make_engine
from domain import analytics


def _seed(session: Session, orders: int, rng: random.Random) -> uuid.UUID:
    now = datetime.now(UTC)
    creators = [uuid.uuid4() for _ in range(200)]
    providers = [uuid.uuid4() for _ in range(200)]
    session.execute(insert(User), [
        {"id": uid, "username": f"b{i}", "email": f"b{i}@bench.test", "password_hash": "x",
         "role": UserRole.BOTH, "profile": {}, "created_at": now, "updated_at": now}
        for i, uid in enumerate(creators + providers)])
    rows, apps, pays = [], [], []
    for _ in range(orders):
        created = now - timedelta(seconds=rng.uniform(0, 300 * 86400))
        accepted = rng.random() < 0.8
        status = (rng.choice([OrderStatus.COMPLETED, OrderStatus.COMPLETED, OrderStatus.ACCEPTED,
                              OrderStatus.CANCELLED]) if accepted else OrderStatus.PENDING)
        oid, pid = uuid.uuid4(), rng.choice(providers)
        rows.append({
            "id": oid, "title": "bench", "creator_id": rng.choice(creators),
            "provider_id": pid if accepted else None, "latitude": 40.7, "longitude": -74.0,
            "base_amount_minor": 2500, "currency": rng.choice(["USD", "EUR"]),
            "status": status, "created_at": created, "updated_at": created,
            "accepted_at": created + timedelta(seconds=rng.expovariate(1 / 300))
            if accepted else None,
            "completed_at": created + timedelta(hours=2)
            if status is OrderStatus.COMPLETED else None})
        apps.append({"id": uuid.uuid4(), "order_id": oid, "provider_id": pid,
                     "status": ApplicationStatus.ACCEPTED if accepted
                     else ApplicationStatus.PENDING, "created_at": created,
                     "updated_at": created})
        if status is OrderStatus.COMPLETED:
            pays.append({"id": uuid.uuid4(), "order_id": oid, "payee_id": pid,
                         "gross_amount_minor": 2500, "platform_fee_minor": 375,
                         "processing_fee_minor": 103, "net_amount_minor": 2022,
                         "currency": rows[-1]["currency"], "status": PaymentStatus.SUCCEEDED,
                         "settled_at": created + timedelta(days=2), "created_at": created,
                         "updated_at": created})
    for model, batch in ((Order, rows), (OrderApplication, apps),
                         (PaymentTransaction, pays)):
        for i in range(0, len(batch), 5000):
            session.execute(insert(model), batch[i:i + 5000])
    session.commit()
    session.execute(text("ANALYZE"))
    return creators[0]


def _ms(fn: Callable[[], Any], runs: int, before: Callable[[], Any] = lambda: None) -> float:
    times = []
    for _ in range(runs):
        before()
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000)
    return statistics.median(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    name, url = create_database()
    server, redis_url = start_redis_server(Path(tempfile.mkdtemp()), persist=False)
    engine = make_engine(url)
    try:
        migrate.upgrade(engine)
        cache = redis.Redis.from_url(redis_url, decode_responses=True)
        with Session(engine) as session:
            user_id = _seed(session, args.orders, random.Random(7))
            user = session.get(User, user_id)
            assert user is not None
            now = datetime.now(UTC)
            window = analytics.resolve_window(None, None, now)

            def me() -> Any:
                return analytics.user_analytics(session, cache, user, window, now)

            def platform() -> Any:
                return analytics.platform_analytics(session, cache, window, now,
                                                    available=dict, queue_depths=dict)

            results = {
                "/analytics/me": (_ms(me, args.runs, cache.flushdb), _ms(me, args.runs)),
                "/admin/analytics": (_ms(platform, args.runs, cache.flushdb),
                                     _ms(platform, args.runs)),
            }
        print(f"{args.orders} orders, 400 users; median of {args.runs} runs (ms)")
        for label, (cold, warm) in results.items():
            print(f"{label:18} cold {cold:8.2f}  warm {warm:6.2f}  x{cold / warm:5.1f}")
    finally:
        engine.dispose()
        server.terminate()
        server.wait(timeout=10)
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
