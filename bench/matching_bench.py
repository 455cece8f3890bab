"""Matching engine benchmark: one run, all contenders side by side, same data.

Run:  .venv/bin/python -m bench.matching_bench [--quick]
      .venv/bin/python -m bench.matching_bench --big-batch   # 100k orders x 1M providers only

* candidate search for one new order (radius 2 km): engine (cKDTree over
  unit vectors) vs brute-force numpy haversine scan vs scikit-learn
  ``BallTree(metric="haversine")`` (skipped with a note if not installed);
* batch re-match of pending orders: optimal assignment vs greedy, plus
  tight-supply scenarios (providers 1.05x and 1.5x the orders).

* ``--big-batch``: ten times the batch (100k orders x 1M providers, 16 candidates per
  order), in a child process so its peak memory is its own.

Synthetic data, fixed seed: a few cities made of gaussian clusters plus a
worldwide uniform share.  ``--quick`` is 10x smaller for CI.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import resource
import statistics
import time
import tracemalloc
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import scipy

from matching import (
    EARTH_RADIUS_M,
    Assignment,
    CandidateEdges,
    ProviderIndex,
    assign,
    greedy_assign,
)

Array = np.ndarray[Any, Any]

CITIES = [  # (name, lat, lon): includes one next to the antimeridian (Suva)
    ("Paris", 48.8566, 2.3522),
    ("New York", 40.7128, -74.0060),
    ("Tokyo", 35.6762, 139.6503),
    ("Sao Paulo", -23.5505, -46.6333),
    ("Lagos", 6.5244, 3.3792),
    ("Mumbai", 19.0760, 72.8777),
    ("Sydney", -33.8688, 151.2093),
    ("Suva", -18.1416, 178.4419),
]
CLUSTER_SIGMA_M = np.array([3000.0, 6000.0, 12000.0])  # 3 gaussian clusters per city
TRAVEL_CHOICES_M = np.array([1000.0, 2000.0, 3000.0, 5000.0, 10000.0])
RADIUS_M = 2000.0


def synthetic_points(
    n: int, rng: np.random.Generator, city_frac: float = 0.85, cities: int = len(CITIES)
) -> tuple[Array, Array]:
    """``n`` points: ``city_frac`` in gaussian city clusters, the rest uniform on the sphere."""
    nc = round(n * city_frac)
    centres = np.random.default_rng(7).normal(size=(len(CITIES), 3, 2)) * 5000.0  # fixed layout
    city = rng.integers(0, cities, nc)
    cl = rng.integers(0, 3, nc)
    off = rng.normal(size=(nc, 2)) * CLUSTER_SIGMA_M[cl, None] + centres[city, cl]
    clat = np.array([c[1] for c in CITIES])[city]
    clon = np.array([c[2] for c in CITIES])[city]
    lat = np.clip(clat + np.degrees(off[:, 1] / EARTH_RADIUS_M), -90, 90)
    lon = clon + np.degrees(off[:, 0] / (EARTH_RADIUS_M * np.cos(np.radians(clat))))
    lon = (lon + 180.0) % 360.0 - 180.0
    ulat = np.degrees(np.arcsin(rng.uniform(-1, 1, n - nc)))
    ulon = rng.uniform(-180, 180, n - nc)
    perm = rng.permutation(n)
    return np.concatenate([lat, ulat])[perm], np.concatenate([lon, ulon])[perm]


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def timed(fn: Callable[[], Any], repeat: int = 1) -> tuple[Any, float]:
    """(last result, median seconds over ``repeat`` runs)."""
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, statistics.median(times)


def latencies(fn: Callable[[float, float], Any], lat: Array, lon: Array) -> tuple[Array, list[Any]]:
    """Per-query wall time (s) and results."""
    out, ts = [], np.empty(lat.shape[0])
    for i in range(lat.shape[0]):
        t = time.perf_counter()
        out.append(fn(float(lat[i]), float(lon[i])))
        ts[i] = time.perf_counter() - t
    return ts, out


class BruteForce:
    """Full haversine scan over precomputed radians (the honest baseline)."""

    def __init__(self, lat: Array, lon: Array, travel: Array) -> None:
        self.phi = np.radians(lat)
        self.lmb = np.radians(lon)
        self.cos_phi = np.cos(self.phi)
        self.travel = travel

    def within(self, lat: float, lon: float) -> Array:
        p1, l1 = np.radians(lat), np.radians(lon)
        a = (
            np.sin((self.phi - p1) / 2) ** 2
            + np.cos(p1) * self.cos_phi * np.sin((self.lmb - l1) / 2) ** 2
        )
        d = 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0)))
        idx = np.flatnonzero(d <= np.minimum(RADIUS_M, self.travel))
        return idx[np.argsort(d[idx], kind="stable")]


def make_balltree(lat: Array, lon: Array, travel: Array) -> Callable[[float, float], Array] | None:
    try:
        from sklearn.neighbors import BallTree
    except ImportError:
        return None
    tree = BallTree(np.radians(np.column_stack([lat, lon])), metric="haversine")

    def within(la: float, lo: float) -> Array:
        q = np.radians([[la, lo]])
        ind, dist = tree.query_radius(q, RADIUS_M / EARTH_RADIUS_M, True, sort_results=True)
        i, d = ind[0], dist[0] * EARTH_RADIUS_M
        return np.asarray(i[d <= travel[i]])

    return within


def ms(x: float) -> str:
    return f"{x * 1e3:.3f}"


def _single_size(
    n: int, qlat: Array, qlon: Array, rng: np.random.Generator, first: bool
) -> tuple[list[str], list[str]]:
    """Rows and notes for one provider-set size."""
    rows: list[str] = []
    notes: list[str] = []
    lat, lon = synthetic_points(n, rng)
    travel = rng.choice(TRAVEL_CHOICES_M, n)
    ids = np.arange(n, dtype=np.int64)
    rss0 = rss_bytes()
    index = ProviderIndex(ids, lat, lon, travel)
    mem = rss_bytes() - rss0
    _, t_build = timed(lambda: ProviderIndex(ids, lat, lon, travel), repeat=3)
    arrays = index.xyz.nbytes + 3 * n * 8 + ids.nbytes + 5 * n * 8
    notes.append(
        f"- {n:,} providers: engine index RSS +{mem / 2**20:.0f} MiB"
        f" ({mem / n:.0f} B/provider; column arrays + unit vectors alone {arrays / n:.0f} B)"
    )
    brute, t_brute = timed(lambda: BruteForce(lat, lon, travel))
    contenders: list[tuple[str, float, Callable[[float, float], Any]]] = [
        ("brute-force numpy haversine", t_brute, brute.within),
        ("engine (cKDTree, unit vectors)", t_build, lambda a, b: index.within(a, b, RADIUS_M)),
    ]
    bt, t_bt = timed(lambda: make_balltree(lat, lon, travel))
    if bt is not None:
        contenders.append(("sklearn BallTree(haversine)", t_bt, bt))
    elif first:
        notes.append("- scikit-learn not installed: BallTree skipped (`pip install .[bench]`)")
    results: dict[str, list[Any]] = {}
    p50_brute = 0.0
    for name, t_b, fn in contenders:
        fn(float(qlat[0]), float(qlon[0]))  # warm-up
        ts, out = latencies(fn, qlat, qlon)
        results[name] = out
        p50, p99 = np.percentile(ts, [50, 99])
        p50_brute = p50_brute or float(p50)
        mean_c = np.mean([len(o) for o in out])
        rows.append(
            f"| {n:,} | {name} | {t_b:.3f} | {ms(p50)} | {ms(p99)} | "
            f"{p50_brute / p50:.0f}x | {mean_c:.1f} |"
        )
    ref = results.pop("brute-force numpy haversine")
    for name, out in results.items():
        got = [set(np.asarray(getattr(o, "indices", o)).tolist()) for o in out]
        bad = sum(g != set(r.tolist()) for g, r in zip(got, ref, strict=True))
        notes.append(f"- {n:,}: {name}: {bad}/{len(out)} result sets differ from brute force")
    return rows, notes


def bench_single(sizes: list[int], n_queries: int, rng: np.random.Generator) -> list[str]:
    rows = [
        "| providers | method | build (s) | p50 (ms) | p99 (ms) | p50 speed-up vs brute"
        " | mean candidates |",
        "|---:|---|---:|---:|---:|---:|---:|",
    ]
    notes: list[str] = []
    qlat, qlon = synthetic_points(n_queries, rng)
    for n in sizes:
        rows_n, notes_n = _single_size(n, qlat, qlon, rng, first=n == sizes[0])
        rows += rows_n
        notes += notes_n
    return [*rows, "", *notes]


@dataclass
class Row:
    scenario: str
    method: str
    cand_s: float
    solve_s: float
    a: Assignment
    edges: int


def batch_rows(
    scenario: str,
    index: ProviderIndex,
    olat: Array,
    olon: Array,
    repeat: int,
    with_sparse: bool,
    caps: tuple[int | None, ...] = (None, 16),
) -> list[Row]:
    out: list[Row] = []
    for cap in caps:
        label = "all in radius" if cap is None else f"{cap} nearest"

        def cands(cap: int | None = cap) -> CandidateEdges:
            if cap is None:
                return index.within_many(olat, olon, RADIUS_M)
            return index.nearest_many(olat, olon, cap, RADIUS_M)

        edges, t_c = timed(cands, repeat)
        solvers: list[tuple[str, Callable[[], Assignment]]] = [
            ("optimal (components)", lambda e=edges: assign(e)),
            ("greedy nearest-first", lambda e=edges: greedy_assign(e)),
        ]
        if with_sparse:
            solvers.insert(
                1, ("optimal (one global LAPJVsp)", lambda e=edges: assign(e, method="sparse"))
            )
        for name, fn in solvers:
            a, t_s = timed(fn, repeat)
            out.append(Row(scenario, f"{name}, {label}", t_c, t_s, a, len(edges)))
    return out


def format_batch(rows: list[Row]) -> list[str]:
    lines = [
        "| scenario | method | edges | candidates (s) | solve (s) | end to end (s) | matched"
        " | total km | mean m | p95 m |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        a = r.a
        lines.append(
            f"| {r.scenario} | {r.method} | {r.edges:,} | {r.cand_s:.3f} | {r.solve_s:.3f} | "
            f"{r.cand_s + r.solve_s:.3f} | {a.matched:,} ({100 * a.match_rate:.1f}%) | "
            f"{a.total_distance_m / 1e3:,.1f} | {a.mean_distance_m:.0f} | {a.p95_distance_m:.0f} |"
        )
    return lines


def bench_batch(quick: bool, rng: np.random.Generator) -> list[str]:
    scale = 10 if quick else 1
    n_o, n_p = 10_000 // scale, 100_000 // scale
    plat, plon = synthetic_points(n_p, rng)
    index = ProviderIndex(np.arange(n_p), plat, plon, rng.choice(TRAVEL_CHOICES_M, n_p))
    olat, olon = synthetic_points(n_o, rng)
    rows = batch_rows(f"{n_o:,} orders x {n_p:,} providers", index, olat, olon, 3, True)
    n_t = 2_000 // scale
    olat, olon = synthetic_points(n_t, rng, city_frac=1.0, cities=1)
    for ratio in (1.05, 1.5):
        n_pt = round(n_t * ratio)
        plat, plon = synthetic_points(n_pt, rng, city_frac=1.0, cities=1)
        index = ProviderIndex(np.arange(n_pt), plat, plon, rng.choice(TRAVEL_CHOICES_M, n_pt))
        name = f"tight {ratio}x: {n_t:,} orders x {n_pt:,} providers, one metro"
        rows += batch_rows(name, index, olat, olon, 3, True, caps=(None,))
    return format_batch(rows)


def _big_batch_child(n_o: int, n_p: int, cap: int, seed: int) -> dict[str, float]:
    """One 10x batch in a fresh process: timings, tracemalloc peak and ru_maxrss."""
    rng = np.random.default_rng(seed)
    plat, plon = synthetic_points(n_p, rng)
    travel = rng.choice(TRAVEL_CHOICES_M, n_p)
    t = time.perf_counter()
    index = ProviderIndex(np.arange(n_p), plat, plon, travel)
    build = time.perf_counter() - t
    olat, olon = synthetic_points(n_o, rng)
    rss_before = rss_bytes()
    # tracemalloc sees numpy's buffers (the edge arrays, the solver's inputs); scipy's C++
    # scratch is not traced, which the ru_maxrss figure covers.
    tracemalloc.start()
    t = time.perf_counter()
    edges = index.nearest_many(olat, olon, cap, RADIUS_M)
    t_cand = time.perf_counter() - t
    a = assign(edges)
    total = time.perf_counter() - t
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return {
        "build_s": build, "candidates_s": t_cand, "solve_s": total - t_cand, "total_s": total,
        "edges": len(edges), "matched": a.matched, "orders": n_o, "providers": n_p,
        "traced_peak_bytes": peak, "rss_before_bytes": rss_before, "maxrss_bytes": maxrss,
    }


def bench_big_batch(seed: int, n_o: int = 100_000, n_p: int = 1_000_000, cap: int = 16) -> str:
    """Ten times the batch re-match: under 5 s is the goal (issue 16)."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        r = pool.apply(_big_batch_child, (n_o, n_p, cap, seed))
    mib = 2**20
    return "\n".join([
        "| orders x providers | cap | edges | index build (s) | candidates (s) | solve (s) "
        "| candidates + solve (s) | matched | match peak (tracemalloc) | process RSS before "
        "-> peak |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {r['orders']:,} x {r['providers']:,} | {cap} | {r['edges']:,} | {r['build_s']:.2f} | "
        f"{r['candidates_s']:.2f} | {r['solve_s']:.2f} | **{r['total_s']:.2f}** | "
        f"{r['matched']:,} ({100 * r['matched'] / r['orders']:.1f}%) | "
        f"{r['traced_peak_bytes'] / mib:.0f} MiB | {r['rss_before_bytes'] / mib:.0f} -> "
        f"{r['maxrss_bytes'] / mib:.0f} MiB |",
    ])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10x smaller sizes (CI)")
    ap.add_argument("--seed", type=int, default=20240601)
    ap.add_argument("--big-batch", action="store_true",
                    help="only the 10x batch: 100k orders x 1M providers, 16 candidates each")
    args = ap.parse_args()
    if args.big_batch:
        t0 = time.perf_counter()
        print("## Batch re-match, ten times (one run, child process)\n")
        print(bench_big_batch(args.seed))
        print(f"\nload average {os.getloadavg()[0]:.1f}; wall {time.perf_counter() - t0:.0f} s")
        return
    rng = np.random.default_rng(args.seed)
    sizes = [10_000, 100_000] if args.quick else [100_000, 1_000_000]
    n_queries = 100 if args.quick else 300
    try:
        import sklearn

        skl = sklearn.__version__
    except ImportError:
        skl = "not installed"
    t0 = time.perf_counter()
    print("# TapLive matching benchmark" + (" (--quick)" if args.quick else ""))
    print()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, numpy {np.__version__}, scipy {scipy.__version__}, "
        f"scikit-learn {skl}; seed {args.seed}; radius {RADIUS_M:.0f} m; provider max travel "
        f"drawn from {TRAVEL_CHOICES_M.astype(int).tolist()} m"
    )
    print()
    print(f"## Candidate search for one new order ({n_queries} queries per row)")
    print()
    print("\n".join(bench_single(sizes, n_queries, rng)))
    print()
    print("## Batch re-match (timings: median of 3)")
    print()
    print("\n".join(bench_batch(args.quick, rng)))
    print()
    print(f"total benchmark wall time: {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
