"""The real-time server under ten thousand held sockets (issue 12's benchmark).

Run:  .venv/bin/python -m bench.realtime_bench [--clients 10000] [--quick] [--gap 120]
      [--variants bare,shipped,procfile]

What runs: a throwaway PostGIS database (migrated) with one user per held socket, Redis logical
database 14 (``BENCH_REDIS_URL``; flushed), the real server started as the Procfile starts it
(``uvicorn realtime.asgi:app`` + the Procfile's flags, on a free port), and every client in ONE
separate process, bench/rt_client.py (bare WebSockets speaking Engine.IO/Socket.IO frames; its
CPU and event-loop lag are reported to show it is not the bottleneck). Emits go through
``core.notifier.SocketIONotifier``, the class every worker emits with (a PUBLISH that the server
relays), stamped with ``time.time()``; a client stamps the receipt with the same clock.

Groups of the held sockets: 50 sessions of one user (the room of 50: ``user:<id>``), 2,000
sessions of another (the room of 2,000), the online providers of the order chain (one socket
each), the recovery users (tracked, one socket each) and a live control group, and idle users
(one socket each) up to ``--clients``.

Variants, each its own server process, one after the other, with the same fleet:
- ``bare``: bench/bare_rt_server.py, a bare python-socketio server with the same Redis manager
  and pings and nothing of ours: the baseline of memory, idle CPU and fan-out;
- ``shipped``: ours as it shipped before this benchmark (permessage-deflate on, pings 20/20 s,
  no GC tuning), for the before/after;
- ``nodeflate``, ``gc``: one change each on top of ``shipped``; ``ping25``: the Procfile with
  python-socketio's default heartbeat (25 s / 20 s);
- ``procfile``: the Procfile's command and the settings' defaults as they are now. The order
  chain (``POST /orders`` -> the rank-1 provider's socket, a real Celery worker) and recovery
  (a forced disconnect of ``--gap`` seconds) run on this one, the last.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shlex
import statistics
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import insert

from bench.bare_rt_server import BARE_CHANNEL
from bench.matching_e2e_bench import (
    NYC,
    REDIS_URL,
    ROOT,
    SECRET,
    _env,
    _percentile,
    _start_worker,
    _stop_worker,
)
from bench.scratch import create_database, drop_database
from core.notifier import SOCKETIO_CHANNEL, SocketIONotifier, user_room

CLK_TCK = os.sysconf("SC_CLK_TCK")

#: The server flags as shipped before this benchmark (the Procfile's, less host and port).
SHIPPED_FLAGS = ["--proxy-headers", "--timeout-graceful-shutdown", "5"]
SHIPPED_ENV = {"REALTIME_GC_TUNING": "false", "REALTIME_PING_INTERVAL_S": "20",
               "REALTIME_PING_TIMEOUT_S": "20"}


@dataclass
class Variant:
    module: str
    flags: list[str]
    env: dict[str, str]
    bare: bool = False


def procfile_flags() -> list[str]:
    """The Procfile's realtime flags, less ``--host``/``--port`` (the bench binds loopback)."""
    line = next(row for row in (ROOT / "Procfile").read_text().splitlines()
                if row.startswith("realtime:"))
    argv = shlex.split(line.partition(":")[2])
    assert argv[:2] == ["uvicorn", "realtime.asgi:app"], argv
    flags, rest = [], argv[2:]
    while rest:
        flag = rest.pop(0)
        if flag in ("--host", "--port"):
            rest.pop(0)
        else:
            flags.append(flag)
    return flags


NO_DEFLATE = ["--ws-per-message-deflate", "false"]
VARIANTS: dict[str, Callable[[], Variant]] = {
    "bare": lambda: Variant("bench.bare_rt_server:app", [], {}, bare=True),
    "shipped": lambda: Variant("realtime.asgi:app", SHIPPED_FLAGS, SHIPPED_ENV),
    # One change on top of ``shipped`` each:
    "nodeflate": lambda: Variant("realtime.asgi:app", [*SHIPPED_FLAGS, *NO_DEFLATE],
                                 SHIPPED_ENV),
    "gc": lambda: Variant("realtime.asgi:app", SHIPPED_FLAGS,
                          SHIPPED_ENV | {"REALTIME_GC_TUNING": "true"}),
    # python-socketio's own defaults (25 s / 20 s) on top of the Procfile's.
    "ping25": lambda: Variant("realtime.asgi:app", procfile_flags(),
                              {"REALTIME_PING_INTERVAL_S": "25",
                               "REALTIME_PING_TIMEOUT_S": "20"}),
    "procfile": lambda: Variant("realtime.asgi:app", procfile_flags(), {}),
}


# ------------------------------------------------------------------------------ processes
def _free_port() -> int:
    import socket
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    url: str

    def rss_kib(self) -> int:
        return _proc_rss_kib(self.proc.pid)

    def cpu_s(self) -> float:
        return _proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_server(variant: Variant, db_url: str) -> Server:
    port = _free_port()
    env = _env(db_url) | {"SERVICE_NAME": "bench-realtime", "BARE_REDIS_URL": REDIS_URL,
                          # The revocation check stays on, as in production.
                          "REALTIME_RETENTION_S": "300"} | variant.env
    argv = [sys.executable, "-m", "uvicorn", variant.module, "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "warning", *variant.flags]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {argv}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1):
                return Server(proc, url)
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("server did not start")


class FleetProcess:
    """bench/rt_client.py in its own process, driven over its stdin/stdout."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "bench.rt_client"], cwd=ROOT,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)

    def call(self, **command: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write((json.dumps(command) + "\n").encode())
        self.proc.stdin.flush()
        reply: dict[str, Any] = json.loads(self.proc.stdout.readline())
        if "error" in reply:
            raise RuntimeError(reply["error"])
        return reply

    def cpu_s(self) -> float:
        return _proc_cpu_s(self.proc.pid)

    def stop(self) -> None:
        try:
            self.call(op="quit")
        except (OSError, ValueError):
            self.proc.kill()
        finally:
            self.proc.wait(timeout=30)


# -------------------------------------------------------------------------------- seeding
@dataclass
class Plan:
    """Who holds which socket: group -> [(user id, token)]."""

    groups: dict[str, list[tuple[uuid.UUID, str]]] = field(default_factory=dict)
    creator_headers: dict[str, str] = field(default_factory=dict)

    def size(self) -> int:
        return sum(len(v) for v in self.groups.values())


def seed(db_url: str, clients: int, providers: int, recovery: int,
         rng: random.Random) -> Plan:
    from core.enums import UserRole, VerificationStatus
    from db import migrate
    from db.models import User
    from db.session import make_engine
    from domain.auth.tokens import TokenIssuer
    from domain.presence_store import PresenceRegistry, ProviderLocation

    fixed = 50 + 2000 + providers + 2 * recovery
    if clients < fixed:
        raise SystemExit(f"--clients must be at least {fixed} for these groups")
    engine = make_engine(db_url)
    migrate.upgrade(engine)
    now = datetime.now(UTC)
    issuer = TokenIssuer(SECRET + "-jwt", 6 * 3600, 6 * 3600)
    rows: list[dict[str, Any]] = []
    plan = Plan()

    def user(group: str, role: UserRole, sessions: int = 1) -> uuid.UUID:
        uid = uuid.uuid4()
        name = f"b{len(rows)}"
        status = VerificationStatus.VERIFIED if role == UserRole.PROVIDER \
            else VerificationStatus.PENDING
        rows.append({"id": uid, "username": name, "email": f"{name}@bench.test",
                     "password_hash": "x", "role": role, "profile": {},
                     "verification_status": status, "created_at": now, "updated_at": now})
        token = issuer.issue(User(id=uid, role=role, is_premium=False, token_generation=0))
        if group:
            plan.groups.setdefault(group, []).extend([(uid, token)] * sessions)
        return uid

    creator = user("", UserRole.CREATOR)
    plan.creator_headers = {"Authorization": "Bearer " + issuer.issue(
        User(id=creator, role=UserRole.CREATOR, is_premium=False, token_generation=0))}
    user("room50", UserRole.CREATOR, 50)
    user("room2000", UserRole.CREATOR, 2000)
    provider_ids = [user("providers", UserRole.PROVIDER) for _ in range(providers)]
    for _ in range(recovery):
        user("recovery", UserRole.CREATOR)
        user("live", UserRole.CREATOR)
    for _ in range(clients - fixed):
        user("idle", UserRole.CREATOR)
    with engine.begin() as conn:
        conn.execute(insert(User.__table__), rows)
    engine.dispose()
    registry = PresenceRegistry(redis.Redis.from_url(REDIS_URL, decode_responses=True))
    for uid in provider_ids:
        lat, lon = NYC[0] + rng.gauss(0, 0.03), NYC[1] + rng.gauss(0, 0.04)
        registry.go_online(uid, {"online": True, "maxTravelM": rng.choice([None, 3000, 5000]),
                                 "verified": True, "acceptanceRate": rng.random(),
                                 "completionRate": None},
                           ProviderLocation(lat, lon, 5.0, now), now.timestamp())
    return plan


# ----------------------------------------------------------------------------- measuring
def connect_all(fleet: FleetProcess, server: Server, plan: Plan, bare: bool) -> dict[str, Any]:
    """Every group's sockets; on the bare server a socket's "token" is its room's name."""
    total = {"ok": 0, "failed": 0, "seconds": 0.0, "errors": []}
    for group, members in plan.groups.items():
        if bare:
            tokens = [group if group.startswith("room") else f"solo:{uid}"
                      for uid, _ in members]
        else:
            tokens = [token for _, token in members]
        reply = fleet.call(op="connect", url=server.url, group=group, tokens=tokens,
                           track=group in ("recovery", "live"), concurrency=100)
        total["ok"] += reply["ok"]
        total["failed"] += reply["failed"]
        total["seconds"] += reply["seconds"]
        total["errors"] += reply["errors"]
    return total


def fanout(fleet: FleetProcess, emit: Callable[[str, dict[str, Any]], None], room: str,
           size: int, tag: str, emits: int, rate: float) -> dict[str, Any]:
    """``emits`` emits to ``room`` at ``rate`` per second; per emit, the time from the emit
    call to the first and to the last of its ``size`` receipts."""
    sent: dict[str, float] = {}
    prefix = f"f:{tag}:{size}:"
    started = time.perf_counter()
    for i in range(emits):
        key = f"{prefix}{i}"
        at = time.time()
        emit(room, {"bench": key, "at": at})
        sent[key] = at
        pause = started + (i + 1) / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    time.sleep(3.0)
    receipts = fleet.call(op="receipts", prefix=prefix)["receipts"]
    last, first, short = [], [], 0
    for key, at in sent.items():
        got = receipts.get(key)
        if got is None or got[0] < size:
            short += 1
        if got is not None:
            first.append((got[1] - at) * 1000)
            last.append((got[2] - at) * 1000)
    return {"last": last, "first": first, "incomplete": short}


def _stats(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"p50 {statistics.median(values):.1f} / p99 {_percentile(values, 99):.1f} / "
            f"max {max(values):.1f}")


def run_variant(name: str, variant: Variant, db_url: str, plan: Plan, fleet: FleetProcess,
                args: argparse.Namespace, last: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"variant": name}
    server = start_server(variant, db_url)
    emitter = SocketIONotifier(REDIS_URL, channel=BARE_CHANNEL if variant.bare
                               else SOCKETIO_CHANNEL)
    rooms = {"room50": "room50", "room2000": "room2000"} if variant.bare else {
        group: user_room(plan.groups[group][0][0]) for group in ("room50", "room2000")}
    try:
        time.sleep(2.0)
        rss0 = server.rss_kib()
        connected = connect_all(fleet, server, plan, variant.bare)
        time.sleep(5.0)  # the connect burst's garbage and pending pings settle
        rss1 = server.rss_kib()
        out |= {"connected": connected["ok"], "failed": connected["failed"],
                "connect_s": connected["seconds"], "errors": connected["errors"],
                "rss0_mib": rss0 / 1024, "rss1_mib": rss1 / 1024,
                "kib_per_conn": (rss1 - rss0) / max(1, connected["ok"])}
        cpu0, fcpu0, t0 = server.cpu_s(), fleet.cpu_s(), time.perf_counter()
        fleet.call(op="stats")
        time.sleep(args.idle_s)
        wall = time.perf_counter() - t0
        out["idle_cpu"] = (server.cpu_s() - cpu0) / wall
        out["fleet_idle_cpu"] = (fleet.cpu_s() - fcpu0) / wall

        def emit(room: str, data: dict[str, Any]) -> None:
            emitter.emit("bench:fanout", data, room=rooms[room])

        for room, size, emits, rate in (("room50", 50, args.emits50, 20.0),
                                        ("room2000", 2000, args.emits2000, 0.5)):
            cpu0, fcpu0, t0 = server.cpu_s(), fleet.cpu_s(), time.perf_counter()
            result = fanout(fleet, emit, room, size, name, emits, rate)
            wall = time.perf_counter() - t0
            stats = fleet.call(op="stats")
            out[room] = result | {"server_cpu": (server.cpu_s() - cpu0) / wall,
                                  "fleet_cpu": (fleet.cpu_s() - fcpu0) / wall,
                                  "fleet_lag_ms": stats["max_lag_ms"]}
        out["fleet_rss_mib"] = fleet.call(op="stats")["rss_kib"] / 1024
        if last and not variant.bare:
            out["orders"] = order_chain(fleet, db_url, plan, args)
            out["recovery"] = recovery(fleet, plan, args)
    finally:
        try:
            fleet.call(op="close")
        finally:  # never leave a server behind, even when the fleet has died
            server.stop()
    return out


def order_chain(fleet: FleetProcess, db_url: str, plan: Plan, args: argparse.Namespace
                ) -> dict[str, Any]:
    """``POST /orders`` (the real app in this process, as bench/matching_e2e_bench.py) ->
    the rank-1 provider's socket receiving ``order:created``, through a real worker. The
    baseline: the same invitation published on the Socket.IO channel (what the server gets)."""
    os.environ.update(_env(db_url) | {"SERVICE_NAME": "bench-api"})
    from api import create_app

    app = create_app()
    client = app.test_client()
    worker = _start_worker(db_url)
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.subscribe(SOCKETIO_CHANNEL)
    rng = random.Random(7)
    socket_ms: list[float] = []
    published_ms: list[float] = []
    lost = 0
    try:
        for i in range(args.warmup + args.orders):
            body = {"title": "Bench stream", "serviceRadius": 1500, "baseAmount": "25.00",
                    "currency": "USD",
                    "location": {"latitude": NYC[0] + rng.gauss(0, 0.02),
                                 "longitude": NYC[1] + rng.gauss(0, 0.025)}}
            response = client.post("/api/v1/orders", json=body, headers=plan.creator_headers)
            returned = time.time()
            assert response.status_code == 201, response.json
            order_id = response.json["data"]["order"]["id"]
            key = f"inv:{order_id}"
            deadline = time.monotonic() + (60 if i < args.warmup else 10)
            got, published = None, None
            while time.monotonic() < deadline and got is None:
                while published is None:
                    message = pubsub.get_message(timeout=0)
                    if message is None:
                        break
                    if message["type"] == "message" and order_id.encode() in message["data"] \
                            and b'"rank":1' in message["data"].replace(b" ", b""):
                        published = time.time()
                got = fleet.call(op="receipts", prefix=key)["receipts"].get(key)
                if got is None:
                    time.sleep(0.005)
            if i < args.warmup:
                continue
            if got is None:
                lost += 1
                continue
            socket_ms.append((got[1] - returned) * 1000)
            if published is not None:
                published_ms.append((published - returned) * 1000)
    finally:
        _stop_worker(worker)
        pubsub.close()
    return {"socket": socket_ms, "published": published_ms, "lost": lost}


def recovery(fleet: FleetProcess, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    """A forced disconnect (TCP cut, no goodbye) of the recovery group for ``--gap`` s while
    durable events are pushed to them and to a live control group (the baseline) through
    ``domain.push.NotificationPusher``, the workers' push; then a reconnect with the pid and
    the last offset seen. Every event pushed must be there, replayed or live."""
    from domain.push import NotificationPusher

    pusher = NotificationPusher(redis.Redis.from_url(REDIS_URL),
                                SocketIONotifier(REDIS_URL), retention_s=300)
    users = {group: [uid for uid, _ in plan.groups[group]] for group in ("recovery", "live")}
    everyone = users["recovery"] + users["live"]
    pushed: list[str] = []

    def push(n: int) -> None:
        event_id = f"rec-{n}"
        pushed.append(event_id)
        pusher.push([(uid, {"id": event_id, "event": "bench:recovery", "orderId": None,
                            "at": datetime.now(UTC).isoformat(), "payload": {}})
                     for uid in everyone])

    push(0)  # every socket then holds an offset to resume from
    time.sleep(1.0)
    fleet.call(op="drop", group="recovery")
    started = time.monotonic()
    n = 1
    while time.monotonic() - started < args.gap:
        push(n)
        n += 1
        time.sleep(min(1.0, max(0.0, args.gap - (time.monotonic() - started))))
    gap = time.monotonic() - started
    reconnected = fleet.call(op="reconnect", group="recovery")
    # Until every reconnected socket holds every event (or 60 s): how long recovery takes.
    complete_s = None
    while time.monotonic() - started - gap < 60:
        seen = fleet.call(op="seen", group="recovery", prefix="rec-")["seen"]
        if all(set(pushed) <= set(ids) for ids in seen):
            complete_s = time.monotonic() - started - gap
            break
        time.sleep(0.25)
    time.sleep(1.0)
    out: dict[str, Any] = {"gap_s": round(gap, 1), "events": len(pushed),
                           "reconnected": reconnected["ok"], "errors": reconnected["errors"],
                           "reconnect_s": round(reconnected["seconds"], 2),
                           "all_delivered_after_s": complete_s and round(complete_s, 2)}
    for group in ("recovery", "live"):
        seen = fleet.call(op="seen", group=group, prefix="rec-")["seen"]
        missing = sum(len(set(pushed) - set(ids)) for ids in seen)
        out[group] = {"sockets": len(seen), "missing": missing,
                      "duplicates": sum(len(ids) - len(set(ids)) for ids in seen)}
    return out


def revocation_mget(sockets: int) -> dict[str, float]:
    """One revocation check's Redis read (two keys per socket, half of them present) with
    redis-py's pure-Python reply parser and with hiredis: CPU ms per MGET, median of 15."""
    from redis._parsers import _HiredisParser, _RESP2Parser

    keys = [f"taplive:bench:rk:{i}" for i in range(2 * sockets)]
    store = redis.Redis.from_url(REDIS_URL)
    store.mset({key: "0" for key in keys[1::2]})
    out = {}
    try:
        for name, parser in (("python", _RESP2Parser), ("hiredis", _HiredisParser)):
            client = redis.Redis.from_url(REDIS_URL, parser_class=parser)
            client.mget(keys[:2])
            samples = []
            for _ in range(15):
                started = time.process_time()
                client.mget(keys)
                samples.append((time.process_time() - started) * 1000)
            out[name] = statistics.median(samples)
    finally:
        store.delete(*keys[1::2])
    return out


# ----------------------------------------------------------------------------- reporting
def report(results: list[dict[str, Any]], args: argparse.Namespace, load: str) -> None:
    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}; load before: {load}; after: {_load()}")
    print(f"clients: {args.clients:,} held sockets in one fleet process; idle window "
          f"{args.idle_s:.0f} s; room 50: {args.emits50} emits at 20/s; room 2,000: "
          f"{args.emits2000} emits at 0.5/s\n")
    base = results[0]
    print("| variant | connected | KiB/conn | x base | idle CPU | fan-out 50 last (ms) | "
          "x base p99 | fan-out 2,000 last (ms) | x base p99 | server CPU 50 / 2,000 | "
          "fleet CPU 50 / 2,000, max lag |")
    print("|---|---:|---:|---:|---:|---|---:|---|---:|---|---|")
    for r in results:
        p99 = {room: _percentile(r[room]["last"], 99) if r[room]["last"] else float("nan")
               for room in ("room50", "room2000")}
        bp99 = {room: _percentile(base[room]["last"], 99) if base[room]["last"]
                else float("nan") for room in ("room50", "room2000")}
        print(f"| {r['variant']} | {r['connected']:,} ({r['failed']} failed, "
              f"{r['connect_s']:.0f} s) | {r['kib_per_conn']:.1f} | "
              f"{r['kib_per_conn'] / base['kib_per_conn']:.2f} | {r['idle_cpu'] * 100:.0f} % | "
              f"{_stats(r['room50']['last'])} ({r['room50']['incomplete']} short) | "
              f"{p99['room50'] / bp99['room50']:.2f} | "
              f"{_stats(r['room2000']['last'])} ({r['room2000']['incomplete']} short) | "
              f"{p99['room2000'] / bp99['room2000']:.2f} | "
              f"{r['room50']['server_cpu']:.0%} / {r['room2000']['server_cpu']:.0%} | "
              f"{r['room50']['fleet_cpu']:.0%} / {r['room2000']['fleet_cpu']:.0%}, "
              f"{max(r['room50']['fleet_lag_ms'], r['room2000']['fleet_lag_ms']):.0f} ms |")
        if r["errors"]:
            print(f"|   errors: {r['errors'][:3]} |")
    print("\nRSS (MiB) before -> after connecting: " + "; ".join(
        f"{r['variant']} {r['rss0_mib']:.0f} -> {r['rss1_mib']:.0f}" for r in results)
        + f"; fleet process {results[-1]['fleet_rss_mib']:.0f}")
    last = results[-1]
    if "orders" in last:
        o = last["orders"]
        print(f"\nPOST /orders returning -> rank-1 provider's socket ({len(o['socket'])} orders,"
              f" {o['lost']} lost): {_stats(o['socket'])} ms; baseline, the same invitation "
              f"published on Redis: {_stats(o['published'])} ms")
        if o["socket"] and o["published"]:
            ratio = statistics.median(o["socket"]) / statistics.median(o["published"])
            print(f"  socket / published, p50: {ratio:.2f}")
    if "recovery" in last:
        print(f"\nrecovery: {json.dumps(last['recovery'])}")
    mget = revocation_mget(args.clients)
    print(f"\none revocation check's MGET of {2 * args.clients:,} keys, CPU ms: pure-Python "
          f"parser {mget['python']:.1f}, hiredis {mget['hiredis']:.1f} "
          f"(x{mget['hiredis'] / mget['python']:.2f})")


def _load() -> str:
    with open("/proc/loadavg") as loadavg:
        return " ".join(loadavg.read().split()[:3])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=10_000)
    parser.add_argument("--providers", type=int, default=1000)
    parser.add_argument("--recovery", type=int, default=100)
    parser.add_argument("--gap", type=float, default=120.0,
                        help="seconds of the forced disconnect")
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--emits50", type=int, default=200)
    parser.add_argument("--emits2000", type=int, default=20)
    parser.add_argument("--idle-s", type=float, default=10.0)
    parser.add_argument("--variants", default="bare,shipped,nodeflate,procfile",
                        help=f"comma-separated, the last runs the order chain and recovery; "
                             f"known: {','.join(VARIANTS)}")
    parser.add_argument("--quick", action="store_true",
                        help="3,000 clients, 300 providers, 30 orders, a 10 s gap")
    args = parser.parse_args()
    if args.quick:
        args.clients, args.providers, args.recovery = 3000, 300, 20
        args.orders, args.warmup, args.gap = 30, 3, 10.0
        args.emits50, args.emits2000, args.idle_s = 60, 6, 5.0
    names = args.variants.split(",")
    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; known: {sorted(VARIANTS)}")
    load = _load()
    name, db_url = create_database()
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    fleet = FleetProcess()
    results = []
    try:
        plan = seed(db_url, args.clients, args.providers, args.recovery, random.Random(12))
        for i, variant in enumerate(names):
            print(f"-- {variant} ...", file=sys.stderr, flush=True)
            results.append(run_variant(variant, VARIANTS[variant](), db_url, plan, fleet,
                                       args, last=i == len(names) - 1))
            print(json.dumps({k: v for k, v in results[-1].items()
                              if k not in ("room50", "room2000", "orders")}, default=str),
                  file=sys.stderr, flush=True)
    finally:
        fleet.stop()
        store.flushdb()
        drop_database(name)
    report(results, args, load)


if __name__ == "__main__":
    main()
