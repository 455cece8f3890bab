"""The order read caches (domain/order_cache.py), before and after, in one run.

Run:  .venv/bin/python -m bench.cache_bench [--orders 500] [--requests 2000]

The same reads (``GET /users/me``, ``GET /orders`` first page of 20 of a creator's N orders,
``GET /orders/{id}``) on two instances of the app in this process: one with the read cache off
(``READ_CACHE_TTL_S=0``: every request reads PostgreSQL) and one with it on, repeating the same
request (every request after the first is a hit). ``GET /users/me`` is not cached: it is the
control, and shows what the cache's extra Redis round trip is *not* costing there. In process,
through Flask's test client, like ``bench.request_cost``.
"""

from __future__ import annotations

import argparse
import os

from bench.api_bench import REDIS_URL, SECRET, _seed
from bench.request_cost import _time
from bench.scratch import create_database, drop_database


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
        from core.config import load_settings
        from db.models import Order, User
        from tests.auth_helpers import auth_headers

        apps = {ttl: create_app(load_settings(read_cache_ttl_s=ttl)) for ttl in (0, 60)}
        with apps[0].app_context():
            session = services().db.session()
            headers = auth_headers(session.get(User, creator_id), apps[0])
            order_id = session.scalars(select(Order.id).limit(1)).one()
            services().db.session.remove()
        reads = {"user profile (not cached: control)": "/api/v1/users/me",
                 "order history page": "/api/v1/orders",
                 "one order": f"/api/v1/orders/{order_id}"}

        print(f"\nA creator with {args.orders} orders; {args.requests} requests per "
              "measurement, sequential, in process\n")
        print("| read | cache off, us | cache on (hits), us | saved |")
        print("| --- | ---: | ---: | ---: |")
        for label, path in reads.items():
            costs = []
            for ttl in (0, 60):
                client = apps[ttl].test_client()
                assert client.get(path, headers=headers).status_code == 200
                costs.append(_time(lambda c=client, p=path: c.get(p, headers=headers),
                                   args.requests))
            print(f"| {label} | {costs[0]:,.0f} | {costs[1]:,.0f} | "
                  f"{1 - costs[1] / costs[0]:.0%} |")
    finally:
        drop_database(name)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
