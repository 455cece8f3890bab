"""Sustained order intake (issue 16 part 2): open-loop Poisson arrivals of real ``POST /orders``
at increasing rates, through gunicorn, a real Celery worker, Redis and PostGIS, with thousands of
providers online and moving.

Run:  .venv/bin/python -m bench.intake_bench [--rates 25,50,100,200,300] [--duration 20]
          [--providers 5000] [--label after] [--code DIR | --before]

What runs: a throwaway PostGIS database (migrated), Redis logical database 14 (flushed),
N verified providers online around New York (``bench.matching_e2e_bench._seed``: presence
registered as ``PUT /providers/me/availability`` does), gunicorn on the real app (4 sync
workers, the Procfile's default) and one worker (prefork x2, every queue: the Procfile's). A
mover process keeps every provider moving: ``PresenceRegistry.locate`` (what
``PUT /providers/me/location`` does after its checks) for each provider every
``--move-period`` seconds, a few metres of random walk each time.

For each rate: arrivals are a Poisson process (exponential gaps, scheduled in advance of the
responses: open loop; a pool of client threads sends them, so a slow response never delays the
next arrival). Measured per order, on the machine's one clock (epoch seconds):
* ``stored``: from the POST's response returning to the rank-1 invitation row's
  ``created_at`` (the matching pass's timestamp, taken when the pass starts: it understates by
  the pass's own duration, so it is reported next to the next one);
* ``pushed``: from the POST's response to the rank-1 invitation arriving on the Socket.IO Redis
  channel (``core.notifier.SOCKETIO_CHANNEL``): stored, committed and pushed to every
  real-time server, what a provider's socket receives next.
Plus queue depths (LLEN of the worker's queues, sampled every 0.2 s), errors (non-201,
transport errors, orders with no invitation pushed within 30 s), achieved rate, load average.
A rate saturates when p99 pushed > 1 s, errors > 1 % or the achieved rate < 90 % of offered;
the run stops there.

``--before`` measures ``main``'s code, or ``--before-rev``'s (``git archive`` into a temporary
directory: the app and worker run from there, the client and this script from here).
Output: markdown on stdout and in ``var/intake_bench-<label>.md``, JSON in
``var/intake_bench-<label>.json``, and ``var/intake_bench.png`` (latency against offered rate
for every label found in ``var/``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import platform
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis
from sqlalchemy import create_engine, text

from bench.api_bench import _free_port, _tokens
from bench.matching_e2e_bench import NYC, REDIS_URL, _env, _percentile, _seed, _stop_worker
from bench.scratch import create_database, drop_database
from core.notifier import SOCKETIO_CHANNEL

ROOT = Path(__file__).resolve().parent.parent
VAR = ROOT / "var"
QUEUES = ("matching", "notifications", "default")
RANK_1 = text("SELECT order_id, created_at FROM order_matches "
              "WHERE rank = 1 AND order_id = ANY(:ids)")


@dataclass
class Sent:
    order_id: str | None
    responded: float  # epoch s
    lag_ms: float  # sent this late after its scheduled arrival (the client keeping up)
    post_ms: float
    error: str | None = None


@dataclass
class RateResult:
    offered_per_s: float
    achieved_per_s: float
    orders: int
    errors: int
    not_pushed: int
    post_p50_ms: float
    post_p99_ms: float
    stored_p50_ms: float
    stored_p99_ms: float
    pushed_p50_ms: float
    pushed_p99_ms: float
    queue_max: dict[str, int]
    queue_mean: dict[str, float]
    client_lag_p99_ms: float
    load_avg_1m: float
    saturated: bool
    error_kinds: dict[str, int] = field(default_factory=dict)
    #: CPU milliseconds per order, by process group, over the phase (arrivals and drain)
    cpu_ms_per_order: dict[str, float] = field(default_factory=dict)


# ----------------------------------------------------------------------- helper processes
def _mover(ids: list[str], period_s: float, stop: Any) -> None:
    """Every provider reports a new position every ``period_s`` (a few metres of random
    walk), spread evenly over the period: the presence path's writes and the change log the
    workers' indexes fold in."""
    from domain.presence_store import PresenceRegistry, ProviderLocation

    registry = PresenceRegistry(redis.Redis.from_url(REDIS_URL, decode_responses=True))
    rng = random.Random(7)
    spots = {pid: (NYC[0] + rng.gauss(0, 0.03), NYC[1] + rng.gauss(0, 0.04)) for pid in ids}
    gap = period_s / max(len(ids), 1)
    next_at = time.monotonic()
    while not stop.is_set():
        for pid in ids:
            if stop.is_set():
                return
            lat, lon = spots[pid]
            lat, lon = lat + rng.gauss(0, 0.00005), lon + rng.gauss(0, 0.00006)  # ~5 m
            spots[pid] = (lat, lon)
            now = datetime.now(UTC)
            registry.locate(uuid.UUID(pid), ProviderLocation(lat, lon, 5.0, now),
                            now.timestamp())
            next_at += gap
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


def _listener(ready: Any, stop: Any, out: Any) -> None:
    """Subscribe to the Socket.IO channel; record when each order's rank-1 invitation is
    pushed (epoch s). Its own process: thousands of messages a second must not slow the
    client's threads."""
    pubsub = redis.Redis.from_url(REDIS_URL).pubsub()
    pubsub.subscribe(SOCKETIO_CHANNEL)
    seen: dict[str, float] = {}
    ready.set()
    while not stop.is_set():
        message = pubsub.get_message(timeout=0.2)
        if message is None or message["type"] != "message":
            continue
        at = time.time()
        emitted = json.loads(message["data"])
        data = emitted.get("data")
        event = data[0] if isinstance(data, list) and data else {}
        payload = event.get("payload") if isinstance(event, dict) else None
        if (emitted.get("event") == "order:created" and isinstance(payload, dict)
                and payload.get("rank") == 1):
            seen.setdefault(str(payload.get("orderId")), at)
    out.send(seen)


# ------------------------------------------------------------------------- CPU accounting
def _cpu_groups(roots: dict[str, int]) -> dict[str, float]:
    """CPU seconds (user + system) so far of each group: a root process and its descendants
    (``client``: this process alone, whose children are the other groups), plus every
    ``postgres`` and ``redis-server`` process on the machine (the bench is meant for a quiet
    machine, so theirs is the bench's)."""
    import psutil

    def spent(proc: psutil.Process) -> float:
        try:
            t = proc.cpu_times()
            return float(t.user + t.system)
        except psutil.Error:
            return 0.0

    out: dict[str, float] = {}
    for label, pid in roots.items():
        try:
            root = psutil.Process(pid)
            family = [root, *(root.children(recursive=True) if label != "client" else ())]
        except psutil.Error:
            continue
        out[label] = sum(spent(p) for p in family)
    for proc in psutil.process_iter(["name"]):
        name = proc.info["name"] or ""
        label = ("postgres" if name.startswith("postgres")
                 else "redis" if name.startswith("redis-server") else None)
        if label:
            out[label] = out.get(label, 0.0) + spent(proc)
    return out


def _cpu_per_order(before: dict[str, float], after: dict[str, float],
                   orders: int) -> dict[str, float]:
    spent = {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after}
    spent["total"] = sum(spent.values())
    return {k: round(v * 1000 / max(orders, 1), 2) for k, v in spent.items()}


# ----------------------------------------------------------------------------- the client
def _post(port: int, token: str, body: bytes, scheduled: float) -> Sent:
    sent = time.time()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("POST", "/api/v1/orders", body=body,
                     headers={"Authorization": token, "Content-Type": "application/json"})
        response = conn.getresponse()
        raw = response.read()
        conn.close()
        done = time.time()
        if response.status != 201:
            return Sent(None, done, (sent - scheduled) * 1000, (done - sent) * 1000,
                        f"http {response.status}")
        order_id = json.loads(raw)["data"]["order"]["id"]
        return Sent(order_id, done, (sent - scheduled) * 1000, (done - sent) * 1000)
    except (OSError, http.client.HTTPException, ValueError, KeyError) as exc:
        done = time.time()
        return Sent(None, done, (sent - scheduled) * 1000, (done - sent) * 1000,
                    type(exc).__name__)


def _bodies(rng: random.Random, n: int) -> list[bytes]:
    return [json.dumps({
        "title": "Bench stream", "serviceRadius": 1500, "baseAmount": "25.00",
        "currency": "USD", "location": {"latitude": NYC[0] + rng.gauss(0, 0.02),
                                        "longitude": NYC[1] + rng.gauss(0, 0.025)}}).encode()
        for _ in range(n)]


def _drive(port: int, tokens: list[str], rate: float, duration: float,
           rng: random.Random, queues: redis.Redis) -> tuple[list[Sent], dict[str, list[int]]]:
    """Open-loop Poisson arrivals for ``duration`` seconds; queue depths sampled meanwhile."""
    gaps, t = [], 0.0
    while True:
        t += rng.expovariate(rate)
        if t >= duration:
            break
        gaps.append(t)
    bodies = _bodies(rng, len(gaps))
    depths: dict[str, list[int]] = {q: [] for q in QUEUES}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            with queues.pipeline(transaction=False) as pipe:
                for q in QUEUES:
                    pipe.llen(q)
                for q, n in zip(QUEUES, pipe.execute(), strict=True):
                    depths[q].append(int(n))
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.time() + 0.2
    futures = []
    # Enough threads that a slow server never holds back an arrival (open loop).
    with ThreadPoolExecutor(max_workers=min(256, max(16, int(rate)))) as pool:
        for i, offset in enumerate(gaps):
            at = start + offset
            delay = at - time.time()
            if delay > 0:
                time.sleep(delay)
            futures.append(pool.submit(_post, port, tokens[i % len(tokens)], bodies[i], at))
        results = [f.result() for f in futures]
    done.set()
    sampler.join()
    return results, depths


def _wait_idle(queues: redis.Redis, timeout: float = 60) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if not any(queues.llen(q) for q in QUEUES) and not queues.hlen("unacked"):
            return
        time.sleep(0.2)


def _measure(rate: float, duration: float, sent: list[Sent], depths: dict[str, list[int]],
             pushed: dict[str, float], stored: dict[str, float], load: float,
             cpu: dict[str, float] | None = None) -> RateResult:
    ok = [s for s in sent if s.order_id]
    errors = [s for s in sent if s.error]
    kinds: dict[str, int] = {}
    for s in errors:
        kinds[str(s.error)] = kinds.get(str(s.error), 0) + 1
    push_ms = [(pushed[s.order_id] - s.responded) * 1000 for s in ok if s.order_id in pushed]
    store_ms = [(stored[s.order_id] - s.responded) * 1000 for s in ok if s.order_id in stored]
    post_ms = [s.post_ms for s in sent]
    span = max(s.responded for s in sent) - min(s.responded - s.post_ms / 1000 for s in sent)

    def pct(values: list[float], q: float) -> float:
        return round(_percentile(values, q), 1) if values else float("nan")

    not_pushed = len(ok) - len(push_ms)
    result = RateResult(
        offered_per_s=rate, achieved_per_s=round(len(ok) / max(span, duration), 1),
        orders=len(sent), errors=len(errors), not_pushed=not_pushed,
        post_p50_ms=pct(post_ms, 50), post_p99_ms=pct(post_ms, 99),
        stored_p50_ms=pct(store_ms, 50), stored_p99_ms=pct(store_ms, 99),
        pushed_p50_ms=pct(push_ms, 50), pushed_p99_ms=pct(push_ms, 99),
        queue_max={q: max(v, default=0) for q, v in depths.items()},
        queue_mean={q: round(sum(v) / len(v), 1) if v else 0.0 for q, v in depths.items()},
        client_lag_p99_ms=pct([s.lag_ms for s in sent], 99),
        load_avg_1m=round(load, 2), saturated=False, error_kinds=kinds,
        cpu_ms_per_order=cpu or {})
    failed = len(errors) + not_pushed
    result.saturated = bool(not push_ms or result.pushed_p99_ms > 1000
                            or failed > 0.01 * len(sent)
                            or result.achieved_per_s < 0.9 * rate)
    return result


# ---------------------------------------------------------------------------------- setup
def _creators(url: str, n: int) -> list[uuid.UUID]:
    """Extra creators, so that no single account carries every order."""
    from sqlalchemy import insert

    from core.enums import UserRole, VerificationStatus
    from db.models import User

    now = datetime.now(UTC)
    ids = [uuid.uuid4() for _ in range(n)]
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(insert(User.__table__), [
            {"id": uid, "username": f"bench_c{i}", "email": f"c{i}@bench.test",
             "password_hash": "x", "role": UserRole.CREATOR, "profile": {},
             "verification_status": VerificationStatus.PENDING, "created_at": now,
             "updated_at": now} for i, uid in enumerate(ids)])
    engine.dispose()
    return ids


def _main_code(rev: str = "main") -> Path:
    """``rev``'s tree, exported (no worktree, no checkout): the code measured by --before."""
    target = Path(tempfile.mkdtemp(prefix="taplive-intake-before-"))
    archive = subprocess.run(["git", "archive", rev], cwd=ROOT, check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(target)], input=archive, check=True)
    return target


def _start(code: Path, env: dict[str, str], port: int) -> tuple[subprocess.Popen[bytes], ...]:
    env = env | {"PYTHONPATH": str(code), "RATE_LIMIT_ENABLED": "false"}
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "api.wsgi:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "4", "--log-level", "warning", "--backlog", "2048"],
        cwd=code, env=env, start_new_session=True)
    level = os.environ.get("BENCH_WORKER_LOGLEVEL", "WARNING")
    worker = subprocess.Popen(  # BENCH_WORKER_LOGLEVEL=INFO shows each pass (orders, pass_ms)
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool", "prefork",
         "--concurrency", "2", "--queues", ",".join((*QUEUES, "payments", "maintenance")),
         "--loglevel", level, "--without-mingle", "--without-gossip"],
        cwd=code, env=env | {"LOG_LEVEL": level}, start_new_session=True,
        stdout=open(VAR / "intake_bench-worker.log", "ab") if level != "WARNING"  # noqa: SIM115
        else subprocess.DEVNULL)
    return server, worker


def _warm_up(port: int, tokens: list[str], rng: random.Random, engine: Any) -> None:
    """A few orders one by one until one is invited: server up, worker up, index built."""
    deadline = time.time() + 120
    while time.time() < deadline:
        sent = _post(port, tokens[0], _bodies(rng, 1)[0], time.time())
        if sent.order_id:
            for _ in range(100):
                with engine.connect() as conn:
                    if conn.execute(RANK_1, {"ids": [uuid.UUID(sent.order_id)]}).first():
                        return
                time.sleep(0.1)
        time.sleep(0.5)
    raise RuntimeError("the app or the worker did not come up")


def run(args: argparse.Namespace) -> list[RateResult]:
    rng = random.Random(20261202)
    code = _main_code(args.before_rev) if args.before else Path(args.code or ROOT)
    name, url = create_database()
    store = redis.Redis.from_url(REDIS_URL)
    store.flushdb()
    server = worker = None
    ctx = multiprocessing.get_context("spawn")
    stop = ctx.Event()
    helpers: list[Any] = []
    results: list[RateResult] = []
    try:
        _seed(url, args.providers, rng)
        engine = create_engine(url)
        with engine.connect() as conn:
            provider_ids = [str(r[0]) for r in conn.execute(text(
                "SELECT id FROM users WHERE role = 'provider'"))]
        creators = _creators(url, 8)
        env = _env(url) | {"SERVICE_NAME": "bench-intake"}
        tokens = list(_tokens(env | {"PYTHONPATH": str(ROOT)}, creators[0],
                              creators[1]).values())
        tokens += list(_tokens(env | {"PYTHONPATH": str(ROOT)}, creators[2],
                               creators[3]).values())
        port = _free_port()
        server, worker = _start(code, env, port)
        _warm_up(port, tokens, rng, engine)
        mover = ctx.Process(target=_mover, args=(provider_ids, args.move_period, stop))
        ready, (receive, send) = ctx.Event(), ctx.Pipe(duplex=False)
        listener = ctx.Process(target=_listener, args=(ready, stop, send))
        helpers = [mover, listener]
        for helper in helpers:
            helper.start()
        ready.wait(10)
        roots = {"api": server.pid, "worker": worker.pid, "client": os.getpid(),
                 "mover": mover.pid or 0, "listener": listener.pid or 0}
        phases = []
        for rate in [float(r) for r in args.rates.split(",")]:
            print(f"rate {rate:g}/s for {args.duration} s ...", flush=True)
            cpu_before = _cpu_groups(roots)
            sent, depths = _drive(port, tokens, rate, args.duration, rng, store)
            _wait_idle(store)
            time.sleep(1.0)  # the last pushes
            load = os.getloadavg()[0]  # the phase's own (1-minute average at its end)
            cpu = _cpu_per_order(cpu_before, _cpu_groups(roots), len(sent))
            print(f"  CPU ms per order: {cpu}", flush=True)
            phases.append((rate, sent, depths, load, cpu))
            # Saturation is judged on what is stored (the listener reports at the end).
            ids = [uuid.UUID(s.order_id) for s in sent if s.order_id]
            with engine.connect() as conn:
                stored = {str(o): c.timestamp() for o, c in conn.execute(RANK_1, {"ids": ids})}
            provisional = _measure(rate, args.duration, sent, depths,
                                   {o: 0.0 for o in stored}, stored, load)
            print(f"  achieved {provisional.achieved_per_s}/s, stored p50 "
                  f"{provisional.stored_p50_ms} ms p99 {provisional.stored_p99_ms} ms, "
                  f"errors {provisional.errors}, queue max {provisional.queue_max}, "
                  f"load {provisional.load_avg_1m}", flush=True)
            if (provisional.stored_p99_ms > 1000 or len(stored) < 0.99 * len(sent)
                    or provisional.achieved_per_s < 0.9 * rate):
                break
        stop.set()
        pushed: dict[str, float] = receive.recv() if receive.poll(30) else {}
        for rate, sent, depths, load, cpu in phases:
            ids = [uuid.UUID(s.order_id) for s in sent if s.order_id]
            with engine.connect() as conn:
                stored = {str(o): c.timestamp() for o, c in conn.execute(RANK_1, {"ids": ids})}
            results.append(_measure(rate, args.duration, sent, depths, pushed, stored, load,
                                    cpu))
        engine.dispose()
    finally:
        stop.set()
        for helper in helpers:
            helper.join(10)
            if helper.is_alive():
                helper.kill()
        for proc in (server, worker):
            if proc is not None:
                _stop_worker(proc)
        store.flushdb()
        drop_database(name)
        if args.before:
            shutil.rmtree(code, ignore_errors=True)
    return results


# --------------------------------------------------------------------------------- report
def report(args: argparse.Namespace, results: list[RateResult], wall: float) -> str:
    import numpy
    import scipy

    lines = [
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {numpy.__version__}, scipy {scipy.__version__}; "
        f"code: {args.label}; {args.providers:,} providers online around New York, each moving "
        f"every {args.move_period:g} s; gunicorn 4 sync workers, Celery prefork x2 (every "
        f"queue); {args.duration} s of Poisson arrivals per rate; wall {wall:.0f} s", "",
        "| offered /s | achieved /s | orders | errors | not pushed | POST p50/p99 ms | "
        "stored p50/p99 ms | pushed p50/p99 ms | queue max (matching/notif/default) | "
        "client lag p99 ms | load 1m |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|---:|"]
    for r in results:
        q = r.queue_max
        lines.append(
            f"| {r.offered_per_s:g} | {r.achieved_per_s:g} | {r.orders} | {r.errors} | "
            f"{r.not_pushed} | {r.post_p50_ms} / {r.post_p99_ms} | {r.stored_p50_ms} / "
            f"{r.stored_p99_ms} | {r.pushed_p50_ms} / {r.pushed_p99_ms} | "
            f"{q['matching']} / {q['notifications']} / {q['default']} | "
            f"{r.client_lag_p99_ms} | {r.load_avg_1m} |"
            + (" saturated" if r.saturated else ""))
    groups = sorted({k for r in results for k in r.cpu_ms_per_order})
    if groups:
        lines += ["", "CPU milliseconds per order, by process group (arrivals and drain):", "",
                  "| offered /s | " + " | ".join(groups) + " |",
                  "|---:|" + "---:|" * len(groups)]
        for r in results:
            lines.append(f"| {r.offered_per_s:g} | " + " | ".join(
                str(r.cpu_ms_per_order.get(g, "")) for g in groups) + " |")
    errors = {k: v for r in results for k, v in r.error_kinds.items()}
    if errors:
        lines.append(f"\nerrors by kind: {errors}")
    return "\n".join(lines)


def plot() -> Path | None:
    """Latency against offered rate for every run in var/ (one curve per label)."""
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot")
        return None
    fig, ax = plt.subplots(figsize=(8, 5))
    for path in sorted(VAR.glob("intake_bench-*.json")):
        label = path.stem.removeprefix("intake_bench-")
        runs = json.loads(path.read_text())["results"]
        rates = [r["offered_per_s"] for r in runs]
        for key, style in (("pushed_p99_ms", "-o"), ("pushed_p50_ms", "--o")):
            ax.plot(rates, [r[key] for r in runs], style, label=f"{label}: {key[7:10]}")
    ax.axhline(250, color="grey", linestyle=":", label="goal p99 250 ms")
    ax.set_xlabel("offered orders per second (Poisson)")
    ax.set_ylabel("POST response -> rank-1 invitation pushed (ms)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    out = VAR / "intake_bench.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="25,50,100,200,300")
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--providers", type=int, default=5000)
    parser.add_argument("--move-period", type=float, default=20.0,
                        help="each provider reports a position every this many seconds")
    parser.add_argument("--label", default=None, help="names the output files")
    parser.add_argument("--code", help="run the app and worker from this source tree")
    parser.add_argument("--before", action="store_true",
                        help="measure another revision's code (--before-rev, default main)")
    parser.add_argument("--before-rev", default="main")
    parser.add_argument("--quick", action="store_true", help="500 providers, 25,50/s, 5 s")
    args = parser.parse_args()
    if args.quick:
        args.providers, args.rates, args.duration = 500, "25,50", 5.0
    args.label = args.label or ("before" if args.before else "after")
    started = time.perf_counter()
    results = run(args)
    text_out = report(args, results, time.perf_counter() - started)
    print("\n" + text_out)
    VAR.mkdir(exist_ok=True)
    (VAR / f"intake_bench-{args.label}.md").write_text(text_out + "\n")
    (VAR / f"intake_bench-{args.label}.json").write_text(json.dumps(
        {"label": args.label, "args": vars(args), "results": [asdict(r) for r in results]},
        indent=2))
    out = plot()
    if out:
        print(f"\nplot: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
