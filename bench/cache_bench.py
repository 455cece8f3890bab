"""Would the spec's Redis caches pay on the orders API's reads? The best case, measured.

Run:  .venv/bin/python -m bench.cache_bench [--orders 500] [--requests 2000]

The spec lists cache classes (user profiles 5 min, active orders 1 min, order history 24 h).
A cache-aside hit still pays for everything around the data: the token check, Flask, the
envelope, a Redis round trip and decoding the cached JSON. This benchmark measures exactly that
against the real endpoint, in one run: each real read (``GET /users/me``, ``GET /orders``
first page of 20 of a creator's N orders, ``GET /orders/{id}``) and a stand-in endpoint with the
same authentication that answers from Redis (GET + decode + return) the same data. The
difference is the most any cache could save per request, at a 100 % hit rate and before the
cost of invalidating it on every write. In process, through Flask's test client, like
``bench.request_cost``.
"""

from __future__ import annotations

import argparse
import os
import uuid
from collections.abc import Callable
from typing import Any

import orjson

from bench.api_bench import REDIS_URL, SECRET, _seed
from bench.request_cost import _time
from bench.scratch import create_database, drop_database


def _cached_view(key: str) -> Callable[[], Any]:
    from flask import jsonify

    from api.auth import authenticated
    from api.envelope import success
    from api.services import services

    def view() -> Any:
        return jsonify(success(orjson.loads(services().redis.get(key) or b"null")))

    view.__name__ = f"cached_{key.rsplit(':', 1)[-1]}"
    return authenticated()(view)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=500, help="the creator's orders")
    parser.add_argument("--requests", type=int, default=2000, help="per measurement")
    args = parser.parse_args()

    name, url = create_database()
    try:
        creator_id, _provider_id = _seed(url, args.orders)
        os.environ.update(DATABASE_URL=url, REDIS_URL=REDIS_URL, SECRET_KEY=SECRET,
                          JWT_SECRET_KEY=SECRET + "jwt", LOG_LEVEL="WARNING",
                          APP_ENV="development", RATE_LIMIT_ENABLED="false")
        from sqlalchemy import select

        from api import create_app
        from api.services import services
        from db.models import Order, User
        from tests.auth_helpers import auth_headers

        app = create_app()
        reads = {"user profile": "/api/v1/users/me", "order history page": "/api/v1/orders",
                 "one order": ""}
        for label in reads:
            key = f"bench:cache:{uuid.uuid4().hex}"
            app.add_url_rule(f"/bench/{key}", view_func=_cached_view(key))
            reads[label] = reads[label] + "|" + key
        with app.app_context():
            session = services().db.session()
            headers = auth_headers(session.get(User, creator_id), app)
            order_id = session.scalars(select(Order.id).limit(1)).one()
            services().db.session.remove()
        reads["one order"] = f"/api/v1/orders/{order_id}" + reads["one order"]
        client = app.test_client()
        redis_client = app.extensions["taplive"].redis

        print(f"\nA creator with {args.orders} orders; {args.requests} requests per "
              "measurement, sequential, in process\n")
        print("| read | real endpoint, us | answered from Redis, us | most a cache saves |")
        print("| --- | ---: | ---: | ---: |")
        for label, spec in reads.items():
            path, key = spec.split("|")
            real = client.get(path, headers=headers)
            assert real.status_code == 200, real.get_data(as_text=True)
            redis_client.set(key, orjson.dumps(real.json["data"]))
            cached = client.get(f"/bench/{key}", headers=headers)
            assert cached.json["data"] == real.json["data"]
            cost_real = _time(lambda p=path: client.get(p, headers=headers), args.requests)
            cost_cached = _time(lambda k=key: client.get(f"/bench/{k}", headers=headers),
                                args.requests)
            print(f"| {label} | {cost_real:,.0f} | {cost_cached:,.0f} | "
                  f"{1 - cost_cached / cost_real:.0%} |")
            redis_client.delete(key)
    finally:
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
