"""Matching against the peers: the engine's index vs Redis GEOSEARCH vs PostGIS, one run.

Run:  .venv/bin/python -m bench.peers_bench --providers 1000000 --queries 2000

Same providers (``--metros`` metros of gaussian clusters, per-provider max travel drawn
from matching_bench's choices), same order points, same radius, for every store:

* the engine (``matching.ProviderIndex``: ``nearest()`` and ``within()``);
* Redis: a private redis-server started here on a free port, GEOADD in pipelined batches,
  ``GEOSEARCH ... BYRADIUS ... ASC [COUNT] WITHDIST`` + max travel from a hash (bench/peers.py);
* PostGIS: a throwaway database on 127.0.0.1:5432, COPY-loaded geography + GiST,
  ``ST_DWithin`` + KNN ``<->``, prepared statements over psycopg 3.

Reports build/load time, memory, p50/p99 per query kind and how many result sets differ
from a brute-force numpy scan; writes ``peers.md``, ``peers.json`` and ``peers.png`` to
``--out`` (default var/peers).  ``--stores`` picks a subset (e.g. ``engine`` for a quick
before/after of the engine alone).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import redis

from bench.matching_bench import TRAVEL_CHOICES_M, latencies, rss_bytes, synthetic_points
from bench.peers import (
    Array,
    BruteForce,
    Engine,
    PostGIS,
    Providers,
    RedisGeo,
    compare,
)
from core.embedded_redis import start_redis_server
from matching import ProviderIndex

ADMIN_URL = os.environ.get("PEERS_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
KINDS = ("nearest", "within")


@contextmanager
def private_redis() -> Iterator[redis.Redis]:
    directory = Path(tempfile.mkdtemp(prefix="taplive-peers-redis-"))
    proc, url = start_redis_server(directory, persist=False)
    try:
        yield redis.Redis.from_url(url)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def throwaway_database() -> Iterator[psycopg.Connection[Any]]:
    name = f"taplive_peers_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(ADMIN_URL, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            url = psycopg.conninfo.make_conninfo(ADMIN_URL, dbname=name)
            with psycopg.connect(url) as conn:
                yield conn
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def index_at(rev: str) -> type[ProviderIndex]:
    """``ProviderIndex`` as it was at git revision ``rev`` (the before side of a same-run
    before/after): its source is loaded as a sibling module of today's package."""
    src = subprocess.run(
        ["git", "show", f"{rev}:matching/index.py"], check=True, capture_output=True, text=True
    ).stdout
    spec = importlib.util.spec_from_loader("matching._index_before", loader=None)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    module.__package__ = "matching"
    exec(compile(src, f"{rev}:matching/index.py", "exec"), module.__dict__)
    cls: type[ProviderIndex] = module.ProviderIndex
    return cls


def timed_build(fn: Callable[[], Any]) -> tuple[Any, float]:
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def measure(
    store: Any, queries: Array, k: int, radius: float
) -> tuple[dict[str, Array], dict[str, list[Array]]]:
    """Per-query seconds and answers, for both kinds; a few warm-up queries first."""
    qlat, qlon = queries[:, 0], queries[:, 1]
    fns: dict[str, Callable[[float, float], Array]] = {
        "nearest": lambda la, lo: store.nearest(la, lo, k, radius),
        "within": lambda la, lo: store.within(la, lo, radius),
    }
    times, answers = {}, {}
    for kind, fn in fns.items():
        for i in range(min(20, qlat.shape[0])):
            fn(float(qlat[i]), float(qlon[i]))
        ts, out = latencies(fn, qlat, qlon)
        times[kind], answers[kind] = ts, out
    return times, answers


def run(args: argparse.Namespace) -> dict[str, Any]:
    rng = np.random.default_rng(args.seed)
    n = args.providers
    lat, lon = synthetic_points(n, rng, city_frac=1.0, cities=args.metros)
    providers = Providers(lat, lon, rng.choice(TRAVEL_CHOICES_M, n))
    qlat, qlon = synthetic_points(args.queries, rng, city_frac=1.0, cities=args.metros)
    queries = np.column_stack([qlat, qlon])
    stores = args.stores.split(",")
    report: dict[str, Any] = {
        "providers": n, "queries": args.queries, "metros": args.metros, "k": args.k,
        "radius_m": args.radius, "seed": args.seed, "stores": {},
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}",
        "load_average_start": os.getloadavg(),
    }
    answers: dict[str, dict[str, list[Array]]] = {}

    def record(name: str, build_s: float, mem: int, mem_kind: str, store: Any) -> None:
        times, answers[name] = measure(store, queries, args.k, args.radius)
        report["stores"][name] = {
            "build_s": build_s, "memory_bytes": mem, "memory_kind": mem_kind,
            **{
                f"{kind}_{p}_ms": float(np.percentile(times[kind], q) * 1e3)
                for kind in KINDS for p, q in (("p50", 50), ("p99", 99))
            },
            "mean_hits": {kind: float(np.mean([len(a) for a in answers[name][kind]]))
                          for kind in KINDS},
            "latencies_ms": {kind: (times[kind] * 1e3).tolist() for kind in KINDS},
        }
        print(f"  {name}: built in {build_s:.2f} s, "
              + ", ".join(f"{kind} p50 {report['stores'][name][f'{kind}_p50_ms']:.3f} ms"
                          for kind in KINDS), flush=True)

    if "engine" in stores:
        rss0 = rss_bytes()
        engine, t = timed_build(lambda: Engine(providers))
        record("engine", t, rss_bytes() - rss0, "RSS delta", engine)
        del engine
    if args.before:
        old_cls = index_at(args.before)
        rss0 = rss_bytes()
        old, t = timed_build(lambda: Engine(providers, old_cls))
        record(f"engine at {args.before}", t, rss_bytes() - rss0, "RSS delta", old)
        del old
    if "redis" in stores:
        with private_redis() as client:
            geo = RedisGeo(client)
            m0 = geo.used_memory()
            _, t = timed_build(lambda: geo.load(providers))
            record("Redis GEOSEARCH", t, geo.used_memory() - m0, "INFO used_memory delta", geo)
    if "postgis" in stores:
        with throwaway_database() as conn:
            pg = PostGIS(conn)
            _, t = timed_build(lambda: pg.load(providers))
            record("PostGIS", t, pg.size_bytes(), "pg_total_relation_size", pg)

    ref = BruteForce(providers)
    qs = [(float(a), float(b)) for a, b in queries]
    t0 = time.perf_counter()
    flat = {(name, kind): by_kind[kind] for name, by_kind in answers.items() for kind in KINDS}
    for (name, kind), d in compare(ref, qs, flat, args.radius, args.k).items():
        report["stores"][name][f"{kind}_differ"] = d.exact
        report["stores"][name][f"{kind}_differ_beyond_tolerance"] = d.beyond_tolerance
    report["compare_s"] = time.perf_counter() - t0
    report["load_average_end"] = os.getloadavg()
    return report


def markdown(report: dict[str, Any]) -> str:
    st = report["stores"]
    lines = [
        f"{report['providers']:,} providers in {report['metros']} metros, "
        f"{report['queries']:,} queries, radius {report['radius_m']:.0f} m, k = {report['k']}; "
        f"{report['machine']}; load average {report['load_average_start'][0]:.1f} at the start, "
        f"{report['load_average_end'][0]:.1f} at the end",
        "",
        "| store | build/load (s) | memory (MiB) | 16 nearest p50 (ms) | p99 (ms) "
        "| all within p50 (ms) | p99 (ms) | mean hits (all within) "
        "| sets differing from brute force: nearest / within (beyond tolerance) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, s in st.items():
        lines.append(
            f"| {name} | {s['build_s']:.2f} | {s['memory_bytes'] / 2**20:.0f} "
            f"({s['memory_kind']}) | {s['nearest_p50_ms']:.3f} | {s['nearest_p99_ms']:.3f} | "
            f"{s['within_p50_ms']:.3f} | {s['within_p99_ms']:.3f} | "
            f"{s['mean_hits']['within']:.0f} | {s.get('nearest_differ', '-')} / "
            f"{s.get('within_differ', '-')} ({s.get('nearest_differ_beyond_tolerance', '-')} / "
            f"{s.get('within_differ_beyond_tolerance', '-')}) |"
        )
    if "engine" in st and any(not n.startswith("engine") for n in st):
        lines.append("")
        for kind in KINDS:
            peers = {n: s[f"{kind}_p50_ms"] for n, s in st.items() if not n.startswith("engine")}
            best = min(peers, key=lambda n: peers[n])
            lines.append(
                f"- {kind}: engine p50 is {peers[best] / st['engine'][f'{kind}_p50_ms']:.1f}x "
                f"faster than the best peer ({best})"
            )
    return "\n".join(lines)


def plot(report: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    titles = {"nearest": f"{report['k']} nearest within the radius", "within": "all within"}
    for ax, kind in zip(axes, KINDS, strict=True):
        names = list(report["stores"])
        data = [report["stores"][n]["latencies_ms"][kind] for n in names]
        ax.boxplot(data, whis=(1, 99), showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), [n.replace(" ", "\n", 1) for n in names])
        ax.set_yscale("log")
        ax.set_title(f"{titles[kind]} ({report['radius_m']:.0f} m)")
        ax.grid(axis="y", which="both", alpha=0.3)
    axes[0].set_ylabel("ms per query (log)")
    fig.suptitle(
        f"{report['providers']:,} providers, {report['queries']:,} queries, one run "
        "(box p25-p75, line p50, whiskers p1-p99)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--providers", type=int, default=1_000_000)
    ap.add_argument("--queries", type=int, default=2000)
    ap.add_argument("--metros", type=int, default=5)
    ap.add_argument("--radius", type=float, default=2000.0)
    ap.add_argument("--k", type=int, default=16)
    ap.add_argument("--stores", default="engine,redis,postgis")
    ap.add_argument("--seed", type=int, default=20261202)
    ap.add_argument("--out", type=Path, default=Path("var/peers"))
    ap.add_argument("--before", metavar="REV", default="",
                    help="also measure the engine's index as of this git revision")
    args = ap.parse_args()
    t0 = time.perf_counter()
    report = run(args)
    report["wall_s"] = time.perf_counter() - t0
    args.out.mkdir(parents=True, exist_ok=True)
    md = markdown(report)
    (args.out / "peers.md").write_text(md + "\n")
    (args.out / "peers.json").write_text(json.dumps(report, indent=1))
    plot(report, args.out / "peers.png")
    print(md)
    print(f"\nwrote {args.out}/peers.md, peers.json, peers.png; wall {report['wall_s']:.0f} s")


if __name__ == "__main__":
    main()
