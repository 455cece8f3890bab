"""Great-circle provider index over a KD-tree of 3-D unit vectors.

Why this shape:

* ``scipy.spatial.cKDTree`` over unit vectors turns a great-circle radius into
  a Euclidean chord radius (see :mod:`matching.geo`), so queries are exact at
  the antimeridian and the poles without tiling or special cases.
* The tree is immutable and cheap to rebuild (~0.45 s per million providers
  on the 2-core reference machine), so "incremental" means: keep column
  arrays, apply a diff, rebuild, bump :attr:`ProviderIndex.version`.  Readers
  holding the old object are unaffected (copy-on-write by construction).
* The tree is queried with a radius inflated by a relative 1e-9 and the
  exact filter ``distance <= min(order radius, provider max travel)`` is
  applied afterwards on great-circle metres, so reported distances never
  exceed either limit and the per-provider limit (which the tree knows
  nothing about) is honoured exactly.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Iterable, Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from scipy.spatial import cKDTree

from .candidates import CandidateEdges, Candidates, IntArray
from .geo import (
    EARTH_RADIUS_M,
    HALF_CIRCUMFERENCE_M,
    FloatArray,
    InvalidCoordinates,
    chord_to_distance,
    distance_to_chord,
    to_unit_vectors,
    validate_coordinates,
    validate_distance,
)
from .provider_signals import SIGNAL_FIELDS, ProviderRecord, ProviderSignals

__all__ = ["ProviderIndex"]

_INFLATE_REL = 1e-9  # tree radius slack; the exact filter runs afterwards
_INFLATE_ABS = 1e-12  # chord units (~6 micrometres) so radius 0 still finds duplicates
_ANTIPODAL_CHORD = 1.9  # above this (> ~12,700 km) distances are recomputed via atan2


def _arc_m(a: FloatArray, b: FloatArray) -> FloatArray:
    """Great-circle distance between rows of unit vectors ``a`` and ``b``.

    ``atan2(|a x b|, a . b)`` is well conditioned at every separation; used
    only where ``arcsin(chord / 2)`` is not (near-antipodal pairs).
    """
    cross = np.cross(a, b)
    sin_t = np.sqrt(np.einsum("ij,ij->i", cross, cross))
    cos_t = np.einsum("ij,ij->i", a, b)
    return np.asarray(EARTH_RADIUS_M * np.arctan2(sin_t, cos_t), dtype=np.float64)


def _z_order(xyz: FloatArray) -> IntArray:
    """Morton (Z-order) permutation of unit vectors, 10 bits per axis."""
    q = ((xyz + 1.0) * 511.99).astype(np.uint32)

    def spread(v: npt.NDArray[np.uint32]) -> npt.NDArray[np.uint32]:
        # classic bit interleave: 10 bits -> every third bit of 30
        for shift, mask in ((16, 0x030000FF), (8, 0x0300F00F), (4, 0x030C30C3), (2, 0x09249249)):
            v = np.bitwise_and(np.bitwise_or(v, np.left_shift(v, shift)), np.uint32(mask))
        return v

    key = spread(q[:, 0]) | (spread(q[:, 1]) << 1) | (spread(q[:, 2]) << 2)
    return np.argsort(key).astype(np.intp, copy=False)


def _search_chord(limit_m: npt.ArrayLike) -> FloatArray:
    """Tree search radius (chord) for a great-circle limit, slightly inflated."""
    return distance_to_chord(limit_m) * (1.0 + _INFLATE_REL) + _INFLATE_ABS


def _radius_buckets(limit: FloatArray) -> list[tuple[float, IntArray]]:
    """Group orders by search radius: (bucket radius, order positions).

    One dual-tree pass per bucket.  Few distinct radii (the product offers a
    handful) get one exact bucket each; otherwise orders are bucketed by
    power of two, so no order searches more than 2x its own radius before
    the exact filter.
    """
    values, inverse = np.unique(limit, return_inverse=True)
    if values.shape[0] > 8:
        exp = np.ceil(np.log2(np.maximum(limit, 1.0)))
        exp[~np.isfinite(limit)] = np.inf
        values, inverse = np.unique(exp, return_inverse=True)
        values = np.where(np.isfinite(values), 2.0**values, np.inf)
    members = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=values.shape[0]))[:-1]
    return [
        (float(v), g.astype(np.intp))
        for v, g in zip(values.tolist(), np.split(members, bounds), strict=True)
    ]


class ProviderIndex:
    """Immutable spatial index of providers with per-provider travel limits.

    Build it from column arrays (``ids``, ``lat``, ``lon``, ``max_travel_m``)
    or from a snapshot mapping via :meth:`from_snapshot`.  Positions (0..n-1)
    are the currency of every query result; ``ids[pos]`` maps back to the
    caller's ids.  ``version`` lets callers tell which snapshot produced a
    result (e.g. to discard a stale batch match).
    """

    def __init__(
        self,
        ids: npt.ArrayLike,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        max_travel_m: npt.ArrayLike | None = None,
        signals: ProviderSignals | None = None,
        *,
        version: int = 0,
        check_ids: bool = True,
    ) -> None:
        lat_a, lon_a = validate_coordinates(lat, lon)
        n = lat_a.shape[0]
        ids_a = np.asarray(ids)
        if ids_a.ndim != 1 or ids_a.shape[0] != n:
            raise ValueError(f"ids must be 1-D of length {n}, got shape {ids_a.shape}")
        if check_ids and n > 1:
            s = np.sort(ids_a)
            dup = s[1:] == s[:-1]
            if dup.any():
                raise ValueError(f"duplicate provider id {s[1:][dup][0]!r}")
        if max_travel_m is None:
            travel = np.full(n, np.inf)
        else:
            travel = validate_distance(max_travel_m, "max_travel_m")
            if travel.shape[0] == 1 and n != 1:
                travel = np.full(n, travel[0])
            if travel.shape[0] != n:
                raise ValueError(f"max_travel_m has length {travel.shape[0]}, expected {n}")
        if signals is None:
            signals = ProviderSignals.empty(n)
        elif signals.size != n:
            raise ValueError(f"signals cover {signals.size} providers, expected {n}")

        self.ids: npt.NDArray[Any] = ids_a
        self.lat: FloatArray = lat_a
        self.lon: FloatArray = lon_a
        self.max_travel_m: FloatArray = travel
        self.signals: ProviderSignals = signals
        self.version: int = version
        self._max_travel_max: float = float(travel.max()) if n else 0.0
        self._id_to_pos: dict[Hashable, int] | None = None
        # The tree stores points in Z-order ("slots"); _slot_pos maps a slot
        # back to the caller's position.  Spatially sorted data builds ~40%
        # faster (the build partitions an index array over the data, which is
        # cache-hostile in random order) and keeps each leaf's points
        # adjacent in memory for queries; the sort costs ~0.1 s per million.
        xyz = to_unit_vectors(lat_a, lon_a)
        self._slot_pos: IntArray = _z_order(xyz)
        self._xyz: FloatArray = np.ascontiguousarray(xyz[self._slot_pos])
        # Travel limits and ids in slot order too (16 B/provider): a single-order query
        # touches a few thousand neighbouring slots, and reading their limits/ids by caller
        # position instead is one cache miss each (measured ~40 % of a 2 km within()).
        self._slot_travel: FloatArray = travel[self._slot_pos]
        self._slot_ids: npt.NDArray[Any] = ids_a[self._slot_pos]
        # balanced_tree/compact_nodes off: measured faster to build (compact
        # nodes ~2x slower) and no slower to query on clustered city data.
        self._tree: cKDTree | None = (
            cKDTree(self._xyz, leafsize=16, balanced_tree=False, compact_nodes=False) if n else None
        )

    # ------------------------------------------------------------------ build
    @classmethod
    def from_snapshot(
        cls,
        snapshot: Mapping[Hashable, ProviderRecord | Mapping[str, Any]],
        *,
        version: int = 0,
    ) -> ProviderIndex:
        """Build from ``{provider_id: ProviderRecord | dict}``.

        Dicts need ``lat`` and ``lon`` and may carry ``max_travel_m`` and any
        of the signal fields; unknown keys are rejected (typos would otherwise
        silently become "unknown signal").
        """
        records = [
            r if isinstance(r, ProviderRecord) else ProviderRecord(**dict(r))
            for r in snapshot.values()
        ]
        n = len(records)
        ids = np.array(list(snapshot.keys())) if n else np.empty(0, dtype=np.int64)

        def col(name: str) -> FloatArray:
            return np.fromiter((float(getattr(r, name)) for r in records), np.float64, n)

        return cls(
            ids,
            col("lat"),
            col("lon"),
            col("max_travel_m"),
            ProviderSignals.from_records(records),
            version=version,
            check_ids=False,  # mapping keys are unique by construction
        )

    def with_changes(
        self,
        upserts: Mapping[Hashable, ProviderRecord | Mapping[str, Any]] | None = None,
        removals: Iterable[Hashable] = (),
    ) -> ProviderIndex:
        """Return a new index with providers upserted/removed and ``version + 1``.

        Unchanged providers are carried over as array slices (no Python work
        per row); only the changed rows go through record parsing.  Unknown
        ids in ``removals`` are ignored so replaying an event twice is safe.
        """
        upserts = upserts or {}
        pos = self.id_to_index
        drop = {pos[i] for i in itertools.chain(removals, upserts.keys()) if i in pos}
        keep = np.setdiff1d(np.arange(len(self)), np.fromiter(drop, np.intp, len(drop)))
        new = ProviderIndex.from_snapshot(upserts)
        ids = np.concatenate([self.ids[keep], new.ids]) if len(new) else self.ids[keep]
        signals = ProviderSignals(
            **{
                f: np.concatenate([getattr(self.signals, f)[keep], getattr(new.signals, f)])
                for f in SIGNAL_FIELDS
            }
        )
        return ProviderIndex(
            ids,
            np.concatenate([self.lat[keep], new.lat]),
            np.concatenate([self.lon[keep], new.lon]),
            np.concatenate([self.max_travel_m[keep], new.max_travel_m]),
            signals,
            version=self.version + 1,
            check_ids=False,  # old ids minus upserted ones, plus unique keys
        )

    # ---------------------------------------------------------------- lookups
    def __len__(self) -> int:
        return int(self.lat.shape[0])

    def __repr__(self) -> str:
        return f"ProviderIndex(n={len(self)}, version={self.version})"

    @property
    def xyz(self) -> FloatArray:
        """Unit vectors in position order (a copy; the index keeps them Z-ordered)."""
        out = np.empty_like(self._xyz)
        out[self._slot_pos] = self._xyz
        return out

    @property
    def id_to_index(self) -> Mapping[Hashable, int]:
        """Provider id -> position (built lazily, cached)."""
        if self._id_to_pos is None:
            self._id_to_pos = {k: i for i, k in enumerate(self.ids.tolist())}
        return self._id_to_pos

    def _candidates(self, slots: IntArray, dist: FloatArray) -> Candidates:
        """One order's hits (tree slots) nearest first, ties by position.

        A plain argsort of the distances is enough unless two are equal (co-located
        providers); only then the (distance, position) lexsort runs, which costs ~2x.
        """
        order = np.argsort(dist)
        if dist.shape[0] > 1:
            d = dist[order]
            if bool((d[1:] == d[:-1]).any()):
                order = np.lexsort((self._slot_pos[slots], dist))
        slots = slots[order]
        return Candidates(
            indices=self._slot_pos[slots], ids=self._slot_ids[slots], distances_m=dist[order]
        )

    @staticmethod
    def _point(lat: float, lon: float) -> FloatArray:
        # Fast path for plain numbers (every caller on the hot path): the array validator
        # costs more than the tree query.  NaN fails the comparisons and takes the slow path,
        # which raises with its usual message.
        if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
            la, lo = float(lat), float(lon)
            if -90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0:
                return to_unit_vectors(np.array([la]), np.array([lo]))
        la_a, lo_a = validate_coordinates(lat, lon)
        if la_a.shape[0] != 1:
            raise InvalidCoordinates("expected a single coordinate; use the *_many methods")
        return to_unit_vectors(la_a, lo_a)

    @staticmethod
    def _radius(radius_m: float | None) -> float:
        if radius_m is None:
            return math.inf
        if isinstance(radius_m, (int, float)) and float(radius_m) >= 0.0:
            return float(radius_m)
        return float(validate_distance(radius_m, "radius_m")[0])

    @staticmethod
    def _chord_bound(limit_m: float) -> float:
        """Scalar :func:`_search_chord` (math, not numpy: this runs once per query)."""
        d = min(limit_m, HALF_CIRCUMFERENCE_M)
        return 2.0 * math.sin(d / (2.0 * EARTH_RADIUS_M)) * (1.0 + _INFLATE_REL) + _INFLATE_ABS

    def _distances(
        self, chord: FloatArray, q: FloatArray, rows: IntArray | None, slots: IntArray
    ) -> FloatArray:
        """Great-circle metres from chords; near-antipodal pairs via atan2.

        ``arcsin(chord / 2)`` is exact to ~1e-9 m up to ~13,000 km but loses
        precision as the chord approaches 2, so those (rare) pairs are redone
        from the vectors ``q[rows]`` (``rows=None``: one query point) and the
        tree's points at ``slots``.
        """
        dist = chord_to_distance(chord)
        far = chord > _ANTIPODAL_CHORD
        if far.any():
            qf = q[np.zeros(int(far.sum()), np.intp) if rows is None else rows[far]]
            dist[far] = _arc_m(qf, self._xyz[slots[far]])
        return dist

    # ---------------------------------------------------------- single order
    # One order at a time is what the new-order path asks, so these two avoid the batch
    # machinery (CSR edges, per-row bounds): ~5 numpy calls around one tree query.
    def within(self, lat: float, lon: float, radius_m: float) -> Candidates:
        """Providers within ``radius_m`` of the order AND within their own max travel.

        Sorted nearest first.  Empty when there are no providers or nobody is
        in range.
        """
        q = self._point(lat, lon)
        radius = self._radius(radius_m)
        if self._tree is None:
            return Candidates.empty(self.ids.dtype)
        bound = self._chord_bound(min(radius, self._max_travel_max))
        hits = self._tree.query_ball_point(q[0], bound, return_sorted=False)
        slots = np.fromiter(hits, np.intp, len(hits))
        diff = self._xyz.take(slots, axis=0)  # ~1/3 cheaper than fancy indexing
        diff -= q
        chord = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        dist = self._distances(chord, q, None, slots)
        ok = dist <= np.minimum(radius, self._slot_travel[slots])
        return self._candidates(slots[ok], dist[ok])

    def nearest(self, lat: float, lon: float, k: int, radius_m: float | None = None) -> Candidates:
        """Up to ``k`` nearest eligible providers (max travel respected).

        ``radius_m=None`` means only the providers' own max travel limits.
        Same rule as :meth:`nearest_many`: the tree's ``k`` nearest are
        filtered; while fewer than ``k`` survive and the tree's last hit was
        still inside the bound, ``k`` doubles and the tree is asked again.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        q = self._point(lat, lon)
        radius = self._radius(radius_m)
        n = len(self)
        if self._tree is None:
            return Candidates.empty(self.ids.dtype)
        bound = self._chord_bound(min(radius, self._max_travel_max))
        kk = min(k, n)
        while True:
            dd, nb = self._tree.query(q, k=kk, distance_upper_bound=bound)
            dd, nb = dd.reshape(-1), nb.reshape(-1)
            found = int(np.count_nonzero(nb < n))  # misses (inf, n) come last
            slots = nb[:found].astype(np.intp, copy=False)
            dist = self._distances(dd[:found], q, None, slots)
            ok = dist <= np.minimum(radius, self._slot_travel[slots])
            if int(np.count_nonzero(ok)) >= k or not dd[-1] <= bound or kk >= n:
                break
            kk = min(2 * kk, n)
        return self._candidates(slots[ok][:k], dist[ok][:k])

    # ----------------------------------------------------------------- batch
    def within_many(
        self, lat: npt.ArrayLike, lon: npt.ArrayLike, radius_m: npt.ArrayLike
    ) -> CandidateEdges:
        """All eligible (order, provider) pairs for many orders at once.

        ``radius_m`` is a scalar or one radius per order.  Orders are put in a
        KD-tree of their own and joined with the provider tree by
        ``sparse_distance_matrix`` (a dual-tree walk that returns flat
        i/j/chord arrays: ~3x faster than per-order ``query_ball_point`` lists
        at 10k orders), one pass per radius bucket, then filtered exactly.
        """
        la, lo = validate_coordinates(lat, lon)
        m = la.shape[0]
        radius = self._order_radii(radius_m, m)
        if self._tree is None or m == 0:
            return CandidateEdges.empty(m, len(self))
        q = to_unit_vectors(la, lo)
        limit = np.minimum(radius, self._max_travel_max)
        parts: list[tuple[IntArray, IntArray, FloatArray]] = []
        for bucket_radius, members in _radius_buckets(limit):
            otree = cKDTree(q[members], balanced_tree=False, compact_nodes=False)
            res = otree.sparse_distance_matrix(
                self._tree, float(_search_chord(bucket_radius)), output_type="ndarray"
            )
            parts.append((members[res["i"]], res["j"].astype(np.intp), res["v"]))
        order = np.concatenate([p[0] for p in parts])
        slots = np.concatenate([p[1] for p in parts])
        chord = np.concatenate([p[2] for p in parts])
        dist = self._distances(chord, q, order, slots)
        prov = self._slot_pos[slots]
        ok = dist <= np.minimum(radius[order], self.max_travel_m[prov])
        return CandidateEdges.build(order[ok], prov[ok], dist[ok], m, len(self))

    def nearest_many(
        self,
        lat: npt.ArrayLike,
        lon: npt.ArrayLike,
        k: int,
        radius_m: npt.ArrayLike | None = None,
    ) -> CandidateEdges:
        """Up to ``k`` nearest eligible providers for each of many orders.

        This is the candidate generator for large batch re-matches: capping
        each order's fan-out keeps the assignment graph at ``k * orders``
        edges even in dense city centres.  Each order's edges come nearest
        first.
        """
        la, lo = validate_coordinates(lat, lon)
        r = None if radius_m is None else self._order_radii(radius_m, la.shape[0])
        return self._nearest_xyz(to_unit_vectors(la, lo), k, r)

    # --------------------------------------------------------------- helpers
    @staticmethod
    def _order_radii(radius_m: npt.ArrayLike, m: int) -> FloatArray:
        radius = validate_distance(radius_m, "radius_m")
        if radius.shape[0] == 1:
            return np.full(m, radius[0])
        if radius.shape[0] != m:
            raise ValueError(f"radius_m has length {radius.shape[0]}, expected 1 or {m}")
        return radius

    def _nearest_xyz(self, q: FloatArray, k: int, radius: FloatArray | None) -> CandidateEdges:
        """k-nearest eligible providers for unit-vector queries ``q``.

        The tree does not know per-provider max travel, so some of its k
        nearest may be filtered out.  Orders that end up short while the
        tree's k-th hit was still inside their own bound are re-queried with
        doubled k until they have ``k`` eligible providers or the search is
        exhausted.
        """
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        m, n = q.shape[0], len(self)
        if self._tree is None or m == 0:
            return CandidateEdges.empty(m, n)
        radius = np.full(m, np.inf) if radius is None else radius
        # Queries in Z-order: neighbours walk the same tree nodes while they are in cache
        # (100k orders at 1M providers: tree query 2.7 s -> 1.3 s).  Rows are mapped back
        # to the caller's order when the edges are built.
        zo = _z_order(q)
        q, radius = q[zo], radius[zo]
        bound = _search_chord(np.minimum(radius, self._max_travel_max))
        todo = np.arange(m, dtype=np.intp)
        again_mask = np.zeros(m, dtype=bool)
        kk = min(k, n)
        parts: list[tuple[IntArray, IntArray, FloatArray]] = []
        while todo.shape[0]:
            # cKDTree takes one scalar bound, so query with the max and filter.
            dd, nb = self._tree.query(q[todo], k=kk, distance_upper_bound=float(bound[todo].max()))
            nb = np.asarray(nb, dtype=np.intp).reshape(todo.shape[0], kk)
            dd = np.asarray(dd, dtype=np.float64).reshape(todo.shape[0], kk)
            found = nb < n
            rows = np.repeat(todo, kk)[found.ravel()]
            slots = nb[found]
            dist = self._distances(dd[found], q, rows, slots)
            ok = dist <= np.minimum(radius[rows], self._slot_travel[slots])
            rows, slots, dist = rows[ok], slots[ok], dist[ok]
            got = np.bincount(rows, minlength=m)[todo]
            again = (got < k) & (dd[:, -1] <= bound[todo]) & (kk < n)
            again_mask[:] = False
            again_mask[todo[again]] = True
            done = ~again_mask[rows]
            parts.append((rows[done], self._slot_pos[slots[done]], dist[done]))
            todo = todo[again]
            kk = min(2 * kk, n)
        edges = CandidateEdges.build(
            zo[np.concatenate([p[0] for p in parts])],
            np.concatenate([p[1] for p in parts]),
            np.concatenate([p[2] for p in parts]),
            m,
            n,
        )
        # Rows arrive nearest first and grouping is stable: keep the first k.
        rank = np.arange(len(edges)) - edges.indptr[edges.order_idx]
        keep = rank < k
        return CandidateEdges(
            edges.order_idx[keep], edges.provider_idx[keep], edges.distance_m[keep], m, n
        )
