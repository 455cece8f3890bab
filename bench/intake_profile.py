"""Where one matching pass spends its time (issue 16): cProfile of ``tasks.matching._pass`` in
this process, for batches of 1, 10 and 50 new orders, on a throwaway database with N providers
online around New York (the intake bench's setup, without the load).

Run:  .venv/bin/python -m bench.intake_profile [--providers 2000] [--top 45]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import random
import time
import uuid
from typing import Any

import redis

from bench.matching_e2e_bench import NYC, REDIS_URL, _env, _seed
from bench.scratch import create_database, drop_database


def _time_statements(engine: Any) -> list[tuple[float, str]]:
    """Every statement's time from now on (ms, the first 110 characters)."""
    from sqlalchemy import event

    timed: list[tuple[float, str]] = []

    @event.listens_for(engine, "before_cursor_execute")
    def _before(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        conn.info["bench_started"] = time.perf_counter()

    @event.listens_for(engine, "after_cursor_execute")
    def _after(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        ms = (time.perf_counter() - conn.info.pop("bench_started")) * 1000
        timed.append((ms, " ".join(statement.split())[:110]))

    return timed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--providers", type=int, default=2000)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--statements", action="store_true",
                        help="print each SQL statement's time in the profiled pass")
    parser.add_argument("--profile-orders", type=int, default=50, choices=(1, 10, 50),
                        help="which pass to profile")
    args = parser.parse_args()
    name, url = create_database()
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    rng = random.Random(1)
    try:
        creator_id = _seed(url, args.providers, rng)
        os.environ.update(_env(url))
        from api import create_app
        from api.auth.tokens import issue_access_token
        from db.models import User
        from tasks.matching import _pass

        app = create_app()
        svc: Any = app.extensions["taplive"]
        with app.app_context():
            creator = svc.db.session().get(User, creator_id)
            headers = {"Authorization": f"Bearer {issue_access_token(creator)}"}
            svc.db.session.remove()
        client = app.test_client()

        def post() -> uuid.UUID:
            body = {"title": "Bench stream", "serviceRadius": 1500, "baseAmount": "25.00",
                    "currency": "USD",
                    "location": {"latitude": NYC[0] + rng.gauss(0, 0.02),
                                 "longitude": NYC[1] + rng.gauss(0, 0.025)}}
            response = client.post("/api/v1/orders", json=body, headers=headers)
            assert response.status_code == 201, response.json
            return uuid.UUID(response.json["data"]["order"]["id"])

        with app.app_context():
            _pass(svc, post(), wait=False)  # the index build and the statement caches
            for n in (1, 10, 50):
                # Unprofiled first (the figure), then profiled (where the time goes).
                timings = []
                for _ in range(3):
                    ids = [post() for _ in range(n)]
                    started = time.perf_counter()
                    invited = _pass(svc, ids[0], wait=False).invited
                    timings.append((time.perf_counter() - started) * 1000)
                print(f"\n=== one pass, {n} orders: {invited} invitations, best of 3 "
                      f"{min(timings):.1f} ms (unprofiled)", flush=True)
                if n == args.profile_orders and args.top:
                    ids = [post() for _ in range(n)]
                    timed = _time_statements(svc.db.engine) if args.statements else None
                    profile = cProfile.Profile()
                    profile.enable()
                    _pass(svc, ids[0], wait=False)
                    profile.disable()
                    for ms, statement in timed or ():
                        print(f"{ms:8.2f} ms  {statement}")
                    order = os.environ.get("PROFILE_SORT", "cumulative")  # or tottime
                    pstats.Stats(profile).sort_stats(order).print_stats(args.top)
    finally:
        store.flushdb()
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
