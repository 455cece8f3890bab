"""Per-request cost of the hot endpoints, in process, without HTTP or load generator noise.

Run:  .venv/bin/python -m bench.request_cost [--orders 100000] [--requests 2000]
      .venv/bin/python -m bench.request_cost --profile nearby   # cProfile of one endpoint
      .venv/bin/python -m bench.request_cost --token-check      # the token check on its own

The HTTP benchmark (``bench.api_bench``) answers "how fast is it under load"; this one answers
"where does one request's time go", which is what a change made for speed has to move. It seeds
the same data as ``bench.api_bench`` (a throwaway PostGIS database), builds the real app in this
process (rate limits off, logs at WARNING), and calls each endpoint through Flask's test client
one request at a time: the figures are wall time per request of the app plus PostgreSQL and
Redis round trips on loopback, as a ratio of ``GET /health`` measured in the same run.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import random
import statistics
import time
from collections.abc import Callable
from typing import Any

from bench.api_bench import CITIES, REDIS_URL, SECRET, _seed
from bench.scratch import create_database, drop_database

CREATE_BODY = {
    "title": "Bench stream",
    "location": {"latitude": 40.7128, "longitude": -74.006},
    "serviceRadius": 500,
    "baseAmount": "25.00",
    "currency": "USD",
}


def _scenarios(client: Any, headers: dict[str, dict[str, str]]) -> dict[str, Callable[[], Any]]:
    rng = random.Random(7)
    # One order of the creator's, read back by its creator (the read cache answers after the
    # first read: no write touches this order, only the creator's list version moves).
    created = client.post("/api/v1/orders", json=CREATE_BODY, headers=headers["creator"])
    read_path = f"/api/v1/orders/{created.get_json()['data']['order']['id']}"

    def nearby() -> Any:
        lat, lon = rng.choice(CITIES)
        lat += (rng.random() - 0.5) * 0.2
        lon += (rng.random() - 0.5) * 0.2
        return client.get(
            f"/api/v1/orders/nearby?latitude={lat:.5f}&longitude={lon:.5f}&radius=2000&limit=20",
            headers=headers["provider"])

    return {
        "health": lambda: client.get("/health"),
        "me": lambda: client.get("/api/v1/users/me", headers=headers["provider"]),
        "nearby": nearby,
        "create": lambda: client.post("/api/v1/orders", json=CREATE_BODY,
                                      headers=headers["creator"]),
        "read": lambda: client.get(read_path, headers=headers["creator"]),
    }


def _time(call: Callable[[], Any], requests: int) -> float:
    """Median of ten batches, microseconds per request."""
    batch = max(1, requests // 10)
    samples = []
    for _ in range(10):
        started = time.perf_counter()
        for _ in range(batch):
            response = call()
            if response.status_code >= 300:
                raise RuntimeError(f"{response.status_code}: {response.get_data(as_text=True)}")
        samples.append((time.perf_counter() - started) / batch * 1e6)
    return statistics.median(samples)


def _time_token_check(app: Any, headers: dict[str, str], requests: int) -> None:
    """The check a request runs once (claims cache, one Redis round trip), without the
    request around it: one request context, its kept outcome cleared before each call."""
    from flask import g

    from api.auth.request_token import request_token
    from api.services import services

    class _Ok:
        status_code = 200

    def check() -> Any:
        g.pop("_taplive_token", None)
        request_token()
        return _Ok

    with app.test_request_context("/api/v1/users/me", headers=headers):
        redis_client = services().redis

        def mget() -> Any:
            redis_client.mget(["taplive:auth:denied:-", "taplive:auth:gen:-"])
            return _Ok

        _time(check, 100)
        print(f"token check: {_time(check, requests):,.0f} us; "
              f"bare MGET: {_time(mget, requests):,.0f} us (median of ten batches)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=2000, help="per scenario")
    parser.add_argument("--profile", help="cProfile this scenario instead of timing all")
    parser.add_argument("--token-check", action="store_true",
                        help="time the per-request token check alone, and a bare Redis MGET")
    args = parser.parse_args()

    name, url = create_database()
    try:
        creator_id, provider_id = _seed(url, args.orders)
        os.environ.update(DATABASE_URL=url, REDIS_URL=REDIS_URL, SECRET_KEY=SECRET,
                          JWT_SECRET_KEY=SECRET + "jwt", LOG_LEVEL="WARNING",
                          APP_ENV="development", RATE_LIMIT_ENABLED="false")
        from api import create_app
        from api.services import services
        from db.models import User
        from tests.auth_helpers import auth_headers

        app = create_app()
        with app.app_context():
            session = services().db.session()
            headers = {"creator": auth_headers(session.get(User, creator_id), app),
                       "provider": auth_headers(session.get(User, provider_id), app)}
            services().db.session.remove()
        client = app.test_client()
        scenarios = _scenarios(client, headers)
        for call in scenarios.values():  # warm every cache once
            _time(call, 50)

        if args.token_check:
            _time_token_check(app, headers["provider"], args.requests)
            return 0

        if args.profile:
            profiler = cProfile.Profile()
            profiler.enable()
            _time(scenarios[args.profile], args.requests)
            profiler.disable()
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
            print(out.getvalue())
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(40)
            print(out.getvalue())
            return 0

        costs = {label: _time(call, args.requests) for label, call in scenarios.items()}
        print(f"\n{args.orders} pending orders; {args.requests} requests per scenario, "
              "sequential, in process\n")
        print("| endpoint | us per request | x GET /health |")
        print("| --- | ---: | ---: |")
        for label, cost in costs.items():
            print(f"| {label} | {cost:,.0f} | {cost / costs['health']:.1f} |")
    finally:
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
