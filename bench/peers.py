"""The stores a team would pick instead of the engine, behind one small interface.

Shared by ``bench.peers_bench`` (timings at 1M providers) and
``tests/matching/test_peers_agreement.py`` (correctness on a small instance),
so the comparison the benchmark reports is itself tested.

Every store answers the two questions matching asks, for one order at a time:

* ``nearest(lat, lon, k, radius_m)``: up to ``k`` providers nearest first that
  are within ``radius_m`` of the order AND within their own max travel;
* ``within(lat, lon, radius_m)``: all such providers.

Both return provider ids (int64) nearest first.  :class:`BruteForce` is the
reference: a full numpy haversine scan on the engine's sphere.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import psycopg
import redis

from matching import EARTH_RADIUS_M, ProviderIndex

Array = np.ndarray[Any, Any]

# Redis measures on its own sphere (6372797.560856 m, src/geohash_helper.c) and stores
# positions as 52-bit geohashes (~0.6 m cells): its distances run ~0.028 % long plus up to
# ~0.6 m.  A provider this close to its limit may legitimately fall on the other side.
REDIS_EARTH_RADIUS_M = 6372797.560856
TOLERANCE_REL = 4e-4
TOLERANCE_ABS_M = 1.0


@dataclass(frozen=True)
class Providers:
    """Column arrays of one provider set (ids are 0..n-1 positions)."""

    lat: Array
    lon: Array
    max_travel_m: Array

    @property
    def ids(self) -> Array:
        return np.arange(self.lat.shape[0], dtype=np.int64)

    def __len__(self) -> int:
        return int(self.lat.shape[0])


class Store(Protocol):
    name: str

    def nearest(self, lat: float, lon: float, k: int, radius_m: float) -> Array: ...

    def within(self, lat: float, lon: float, radius_m: float) -> Array: ...


class BruteForce:
    """Full haversine scan over precomputed radians: the reference answer."""

    name = "brute force"

    def __init__(self, p: Providers) -> None:
        self.phi = np.radians(p.lat)
        self.lmb = np.radians(p.lon)
        self.cos_phi = np.cos(self.phi)
        self.travel = p.max_travel_m

    def distances(self, lat: float, lon: float) -> Array:
        """Great-circle metres from the point to every provider."""
        p1, l1 = np.radians(lat), np.radians(lon)
        a = (
            np.sin((self.phi - p1) / 2) ** 2
            + np.cos(p1) * self.cos_phi * np.sin((self.lmb - l1) / 2) ** 2
        )
        return np.asarray(2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.minimum(a, 1.0))))

    def eligible(self, d: Array, radius_m: float) -> Array:
        """Ids within both limits, nearest first (ties by id)."""
        idx = np.flatnonzero(d <= np.minimum(radius_m, self.travel))
        return idx[np.argsort(d[idx], kind="stable")]

    def within(self, lat: float, lon: float, radius_m: float) -> Array:
        return self.eligible(self.distances(lat, lon), radius_m)

    def nearest(self, lat: float, lon: float, k: int, radius_m: float) -> Array:
        return self.within(lat, lon, radius_m)[:k]


class Engine:
    """The in-memory index a matching worker holds."""

    name = "engine"

    def __init__(self, p: Providers, cls: type[ProviderIndex] = ProviderIndex) -> None:
        self.index = cls(p.ids, p.lat, p.lon, p.max_travel_m)

    def nearest(self, lat: float, lon: float, k: int, radius_m: float) -> Array:
        return self.index.nearest(lat, lon, k, radius_m).ids

    def within(self, lat: float, lon: float, radius_m: float) -> Array:
        return self.index.within(lat, lon, radius_m).ids


class RedisGeo:
    """``GEOSEARCH ... BYRADIUS ... ASC`` with max travel in a hash, filtered client-side.

    Redis knows one radius per query, not one per member, so the max-travel filter runs in
    the client on ``HMGET`` of the hits.  For the k-nearest query that means over-fetching:
    ``COUNT`` starts at 2k and doubles until k hits survive the filter or the search returns
    fewer than ``COUNT`` (the radius is exhausted).  Distances are Redis's own (``WITHDIST``).
    """

    name = "Redis GEOSEARCH"

    def __init__(self, client: redis.Redis, key: str = "peers:geo") -> None:
        self.r = client
        self.key = key
        self.travel_key = f"{key}:travel"

    def load(self, p: Providers, batch: int = 10_000) -> None:
        """GEOADD + HSET in pipelined batches (what a bulk load from a snapshot does)."""
        self.r.delete(self.key, self.travel_key)
        ids = p.ids.tolist()
        lon, lat, travel = p.lon.tolist(), p.lat.tolist(), p.max_travel_m.tolist()
        for s in range(0, len(ids), batch):
            e = min(s + batch, len(ids))
            geo: list[Any] = []
            for i in range(s, e):
                geo += (lon[i], lat[i], ids[i])
            pipe = self.r.pipeline(transaction=False)
            pipe.execute_command("GEOADD", self.key, *geo)
            pipe.hset(self.travel_key, mapping=dict(zip(ids[s:e], travel[s:e], strict=True)))
            pipe.execute()

    def _search(self, lat: float, lon: float, radius_m: float, count: int | None) -> list[Any]:
        args: list[Any] = ["FROMLONLAT", lon, lat, "BYRADIUS", radius_m, "m", "ASC"]
        if count is not None:
            args += ["COUNT", count]
        # Raw command: redis-py's geosearch() builds a tuple per hit in Python, which would
        # charge Redis for the client's parsing.
        return list(self.r.execute_command("GEOSEARCH", self.key, *args, "WITHDIST"))

    def _filter(self, hits: list[Any], radius_m: float) -> Array:
        if not hits:
            return np.empty(0, dtype=np.int64)
        members = [h[0] for h in hits]
        dist = np.array([float(h[1]) for h in hits])
        travel = np.array(self.r.hmget(self.travel_key, members), dtype=np.float64)
        ok = dist <= np.minimum(radius_m, travel)
        return np.array(members, dtype=np.int64)[ok]

    def within(self, lat: float, lon: float, radius_m: float) -> Array:
        return self._filter(self._search(lat, lon, radius_m, None), radius_m)

    def nearest(self, lat: float, lon: float, k: int, radius_m: float) -> Array:
        count = 2 * k
        while True:
            hits = self._search(lat, lon, radius_m, count)
            got = self._filter(hits, radius_m)
            if got.shape[0] >= k or len(hits) < count:
                return got[:k]
            count *= 2

    def used_memory(self) -> int:
        return int(self.r.info("memory")["used_memory"])


class PostGIS:
    """``ST_DWithin`` on a GiST-indexed geography column, KNN ``<->`` ordering.

    ``use_spheroid => false`` puts the database on the engine's sphere (PostGIS's sphere
    for WGS84 is the IUGG mean radius, 6371008.7714 m); the default spheroid differs by up
    to ~0.5 % and would be a different question, not a slower answer.
    """

    name = "PostGIS"

    _POINT = "ST_SetSRID(ST_MakePoint(%(lon)s, %(lat)s), 4326)::geography"
    _WHERE = (
        f"ST_DWithin(geog, {_POINT}, %(r)s, false)"
        f" AND ST_DWithin(geog, {_POINT}, max_travel_m, false)"
    )
    NEAREST_SQL = (
        f"SELECT id FROM {{t}} WHERE {_WHERE} ORDER BY geog <-> {_POINT} LIMIT %(k)s"
    )
    WITHIN_SQL = (
        f"SELECT id FROM {{t}} WHERE {_WHERE}"
        f" ORDER BY geog <-> {_POINT}"
    )

    def __init__(self, conn: psycopg.Connection[Any], table: str = "peers_providers") -> None:
        self.conn = conn
        self.table = table
        self.nearest_sql = self.NEAREST_SQL.format(t=table)
        self.within_sql = self.WITHIN_SQL.format(t=table)

    def load(self, p: Providers) -> None:
        """CREATE, COPY the rows (EWKT text; repr() keeps every bit), then the GiST index."""
        t = self.table
        with self.conn.cursor() as cur:
            cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            cur.execute(f"DROP TABLE IF EXISTS {t}")
            cur.execute(
                f"CREATE TABLE {t} (id bigint PRIMARY KEY,"
                " geog geography(Point, 4326) NOT NULL, max_travel_m double precision NOT NULL)"
            )
            buf = io.StringIO()
            for i, la, lo, tr in zip(
                p.ids.tolist(), p.lat.tolist(), p.lon.tolist(), p.max_travel_m.tolist(),
                strict=True,
            ):
                buf.write(f"{i}\tSRID=4326;POINT({lo!r} {la!r})\t{tr!r}\n")
            with cur.copy(f"COPY {t} (id, geog, max_travel_m) FROM STDIN") as copy:
                copy.write(buf.getvalue())
            cur.execute(f"CREATE INDEX {t}_geog ON {t} USING gist (geog)")
            cur.execute(f"ANALYZE {t}")
        self.conn.commit()

    def _ids(self, sql: str, params: dict[str, Any]) -> Array:
        rows = self.conn.execute(sql, params, prepare=True).fetchall()
        return np.array([r[0] for r in rows], dtype=np.int64)

    def nearest(self, lat: float, lon: float, k: int, radius_m: float) -> Array:
        return self._ids(self.nearest_sql, {"lat": lat, "lon": lon, "r": radius_m, "k": k})

    def within(self, lat: float, lon: float, radius_m: float) -> Array:
        return self._ids(self.within_sql, {"lat": lat, "lon": lon, "r": radius_m})

    def size_bytes(self) -> int:
        row = self.conn.execute("SELECT pg_total_relation_size(%s)", (self.table,)).fetchone()
        return int(row[0]) if row else 0


@dataclass(frozen=True)
class Disagreement:
    """How many result sets differ from brute force: at all, and beyond the tolerance band."""

    exact: int
    beyond_tolerance: int


def tolerance_m(limit_m: Array) -> Array:
    return TOLERANCE_ABS_M + TOLERANCE_REL * limit_m


Answers = dict[tuple[str, str], list[Array]]  # (store, "nearest" | "within") -> per query


def compare(
    ref: BruteForce,
    queries: list[tuple[float, float]],
    answers: Answers,
    radius_m: float,
    k: int,
) -> dict[tuple[str, str], Disagreement]:
    """Count answers that differ from brute force, as sets (order is checked by the tests).

    One brute-force scan per query serves every store and both kinds.  A difference is
    "within tolerance" when every provider in the symmetric difference lies within
    :func:`tolerance_m` of its own limit (``min(radius, max travel)``) or, for k-nearest, of
    the k-th reference distance: a boundary call that another sphere or a quantised position
    may make either way.
    """
    exact = dict.fromkeys(answers, 0)
    beyond = dict.fromkeys(answers, 0)
    for qi, (lat, lon) in enumerate(queries):
        d = ref.distances(lat, lon)
        within = ref.eligible(d, radius_m)
        for key, per_query in answers.items():
            want = within[:k] if key[1] == "nearest" else within
            diff = np.setxor1d(np.asarray(per_query[qi], dtype=np.int64), want)
            if diff.shape[0] == 0:
                continue
            exact[key] += 1
            limit = np.minimum(radius_m, ref.travel[diff])
            edge = np.abs(d[diff] - limit) <= tolerance_m(limit)
            if key[1] == "nearest" and want.shape[0] == k:
                kth = d[want[-1]]
                edge |= np.abs(d[diff] - kth) <= tolerance_m(np.asarray(kth))
            beyond[key] += int(not edge.all())
    return {key: Disagreement(exact[key], beyond[key]) for key in answers}


def run_queries(
    fn: Callable[[float, float], Array], queries: list[tuple[float, float]]
) -> list[Array]:
    return [fn(la, lo) for la, lo in queries]
