"""HTTP benchmark of the orders API against the same app's hello-world ceiling, in one run.

Run:  .venv/bin/python -m bench.api_bench [--orders 100000] [--duration 15] [--quick]

Loads N pending orders into a throwaway PostGIS database, starts gunicorn on the real app, and
drives it with wrk (a second process on loopback) for three scenarios, back to back:

* ``GET /health``          the hello-world ceiling: same app, same server, no database;
* ``POST /orders``         authenticated create (validation, one transaction, outbox row);
* ``GET /orders/nearby``   authenticated PostGIS ST_DWithin + ST_Distance, random points.

Reports requests/s, p50 and p99 latency per scenario and each one's throughput as a ratio of
the ceiling measured in the same run. Needs PostgreSQL+PostGIS and Redis (as ``make test``) and
``wrk`` (Debian: ``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import insert, text

from bench.scratch import create_database, drop_database

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
SECRET = "bench-secret-key-0123456789abcdef0123456789"
CITIES = [
    (40.7128, -74.0060),
    (51.5074, -0.1278),
    (35.6762, 139.6503),
    (-33.8688, 151.2093),
    (48.8566, 2.3522),
    (-23.5505, -46.6333),
    (19.4326, -99.1332),
    (1.3521, 103.8198),
    (55.7558, 37.6173),
    (-18.1248, 178.4501),
]


@dataclass
class Result:
    scenario: str
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    errors: int
    ratio_to_ceiling: float = 0.0
    #: CPU microseconds per request by process group (``--cpu``).
    cpu_us: dict[str, float] | None = None


def _cpu_seconds() -> dict[str, float]:
    """CPU time used so far by the server's, PostgreSQL's and Redis's processes (Linux /proc),
    and by this process's finished children (wrk)."""
    tick = os.sysconf("SC_CLK_TCK")
    groups = {"python (gunicorn)": 0.0, "postgresql": 0.0, "redis": 0.0}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        name = stat[stat.index("(") + 1:stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2:].split()
        used = (int(fields[11]) + int(fields[12])) / tick
        group = ("postgresql" if name.startswith("postgres") else
                 "python (gunicorn)" if b"gunicorn" in cmdline else
                 "redis" if name.startswith("redis-server") else None)
        if group:
            groups[group] += used
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    groups["wrk"] = children.ru_utime + children.ru_stime
    return groups


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _seed(url: str, count: int) -> tuple[uuid.UUID, uuid.UUID]:
    from core.enums import OrderStatus, UserRole, VerificationStatus
    from db import migrate
    from db.models import Order, User
    from db.session import make_engine
    from domain.passwords import hash_password

    engine = make_engine(url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    creator_id, provider_id = uuid.uuid4(), uuid.uuid4()
    password = hash_password("bench password 123")
    with engine.begin() as conn:
        conn.execute(
            insert(User.__table__),
            [
                {
                    "id": creator_id,
                    "username": "bench_creator",
                    "email": "c@bench.test",
                    "password_hash": password,
                    "role": UserRole.CREATOR,
                    "profile": {},
                    "verification_status": VerificationStatus.PENDING,
                    "created_at": now,
                    "updated_at": now,
                },
                {
                    "id": provider_id,
                    "username": "bench_provider",
                    "email": "p@bench.test",
                    "password_hash": password,
                    "role": UserRole.PROVIDER,
                    "profile": {},
                    "verification_status": VerificationStatus.VERIFIED,
                    "created_at": now,
                    "updated_at": now,
                },
            ],
        )
    rng = random.Random(42)
    batch: list[dict[str, Any]] = []
    started = time.perf_counter()
    with engine.begin() as conn:
        for i in range(count):
            lat, lon = rng.choice(CITIES)
            batch.append(
                {
                    "id": uuid.uuid4(),
                    "title": f"Bench order {i}",
                    "creator_id": creator_id,
                    "latitude": max(-90.0, min(90.0, lat + rng.gauss(0, 0.08))),
                    "longitude": ((lon + rng.gauss(0, 0.08) + 180) % 360) - 180,
                    "service_radius": 1000,
                    "base_amount_minor": 2500,
                    "currency": "USD",
                    "status": OrderStatus.PENDING,
                    "version": 1,
                    "requirements": {},
                    "tags": [],
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if len(batch) == 5000:
                conn.execute(insert(Order.__table__), batch)
                batch.clear()
        if batch:
            conn.execute(insert(Order.__table__), batch)
        conn.execute(text("ANALYZE live_stream_orders"))
    print(f"seeded {count} orders in {time.perf_counter() - started:.1f}s", flush=True)
    engine.dispose()
    return creator_id, provider_id


def _tokens(env: dict[str, str], creator_id: uuid.UUID, provider_id: uuid.UUID) -> dict[str, str]:
    """Mint access tokens with the app's own JWT settings (same code path as login)."""
    code = (
        "import json,sys,uuid\n"
        "from api import create_app\n"
        "from api.services import services\n"
        "from db.models import User\n"
        "from tests.auth_helpers import auth_headers\n"
        "app = create_app()\n"
        "with app.app_context():\n"
        "    s = services().db.session()\n"
        "    out = {k: auth_headers(s.get(User, uuid.UUID(v)), app)['Authorization']\n"
        "           for k, v in json.loads(sys.argv[1]).items()}\n"
        "print(json.dumps(out))\n"
    )
    arg = json.dumps({"creator": str(creator_id), "provider": str(provider_id)})
    out = subprocess.run(
        [sys.executable, "-c", code, arg],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


LUA_POST = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "%(token)s"
wrk.body = '{"title":"Bench stream","location":{"latitude":40.7128,"longitude":-74.006},' ..
           '"serviceRadius":500,"baseAmount":"25.00","currency":"USD"}'
"""

LUA_NEARBY = """
local cities = %(cities)s
wrk.headers["Authorization"] = "%(token)s"
math.randomseed(7)
request = function()
  local c = cities[math.random(#cities)]
  local lat = c[1] + (math.random() - 0.5) * 0.2
  local lon = c[2] + (math.random() - 0.5) * 0.2
  return wrk.format("GET", string.format(
    "/api/v1/orders/nearby?latitude=%%.5f&longitude=%%.5f&radius=2000&limit=20", lat, lon))
end
"""

LUA_GET = ""


def _wrk(url: str, script: str, duration: int, connections: int) -> tuple[float, float, float, int]:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as fh:
        fh.write(script)
    out = subprocess.run(
        ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", "-s", fh.name, url],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    os.unlink(fh.name)

    def ms(label: str) -> float:
        match = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        if not match:
            raise RuntimeError(out)
        value, unit = float(match.group(1)), match.group(2)
        return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value

    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    errors = 0
    for pattern in (r"Non-2xx or 3xx responses: (\d+)", r"Socket errors: .*?timeout (\d+)"):
        match = re.search(pattern, out)
        errors += int(match.group(1)) if match else 0
    return rps, ms("50"), ms("99"), errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--orders", type=int, default=100_000)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--connections", default="4,16",
                        help="comma-separated wrk connection counts; each is a separate round")
    parser.add_argument("--workers", type=int, default=4,
                        help="gunicorn worker processes (the Procfile's default: 2 per core)")
    parser.add_argument("--threads", type=int, default=1,
                        help="threads per worker (>1 = the gthread worker, with keep-alive)")
    parser.add_argument("--quick", action="store_true", help="10k orders, 5 s per scenario")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--cpu", action="store_true",
                        help="also report CPU per request by process (Linux /proc)")
    args = parser.parse_args()
    if args.quick:
        args.orders, args.duration = 10_000, 5
    if shutil.which("wrk") is None:
        print("wrk is not installed (Debian: apt-get install wrk)", file=sys.stderr)
        return 2

    name, url = create_database()
    server: subprocess.Popen[bytes] | None = None
    try:
        creator_id, provider_id = _seed(url, args.orders)
        env = dict(
            os.environ,
            DATABASE_URL=url,
            REDIS_URL=REDIS_URL,
            SECRET_KEY=SECRET,
            JWT_SECRET_KEY=SECRET + "jwt",
            LOG_LEVEL="WARNING",
            APP_ENV="development",
            RATE_LIMIT_ENABLED="false",
            PYTHONPATH=str(ROOT),
        )
        tokens = _tokens(env, creator_id, provider_id)
        port = _free_port()
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gunicorn",
                "api.wsgi:app",
                "--bind",
                f"127.0.0.1:{port}",
                "--workers",
                str(args.workers),
                "--threads",
                str(args.threads),
                "--log-level",
                "warning",
            ],
            env=env,
            cwd=ROOT,
        )
        base = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        cities = "{" + ",".join(f"{{{lat},{lon}}}" for lat, lon in CITIES) + "}"
        scenarios = [
            ("GET /health (ceiling)", f"{base}/health", LUA_GET),
            ("POST /orders", f"{base}/api/v1/orders", LUA_POST % {"token": tokens["creator"]}),
            (
                "GET /orders/nearby",
                f"{base}/",
                LUA_NEARBY % {"token": tokens["provider"], "cities": cities},
            ),
        ]
        results = []
        for connections in [int(c) for c in str(args.connections).split(",")]:
            round_results = []
            for label, target, script in scenarios:
                _wrk(target, script, 2, connections)  # warm-up
                before = _cpu_seconds() if args.cpu else {}
                rps, p50, p99, errors = _wrk(target, script, args.duration, connections)
                cpu = None
                if args.cpu:
                    after, done = _cpu_seconds(), rps * args.duration
                    cpu = {k: (after[k] - before[k]) / done * 1e6 for k in after}
                round_results.append(Result(f"{label} @ c={connections}", rps, p50, p99,
                                            errors, cpu_us=cpu))
            ceiling = round_results[0].requests_per_s
            for result in round_results:
                result.ratio_to_ceiling = result.requests_per_s / ceiling
            results += round_results
    finally:
        if server is not None:
            server.terminate()
            server.wait(timeout=20)
        drop_database(name)

    print(
        f"\nmachine: {os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}; {args.orders} pending orders in PostGIS; gunicorn "
        f"{args.workers} workers x {args.threads} threads; "
        f"wrk -t2 -c{args.connections} -d{args.duration}s\n"
    )
    print("| scenario | req/s | p50 ms | p99 ms | errors | vs ceiling |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for r in results:
        print(
            f"| {r.scenario} | {r.requests_per_s:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
            f"{r.errors} | {r.ratio_to_ceiling:.0%} |"
        )
    if args.cpu:
        groups = list(results[0].cpu_us or {})
        print("\nCPU per request, microseconds (all processes of each kind):\n")
        print("| scenario | " + " | ".join(groups) + " |")
        print("| --- |" + " ---: |" * len(groups))
        for r in results:
            cpu = r.cpu_us or {}
            print(f"| {r.scenario} | " + " | ".join(f"{cpu[g]:,.0f}" for g in groups) + " |")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results], indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
