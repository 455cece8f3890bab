"""ProviderIndex: exactness against a brute-force scan, max travel, degenerate input."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, event, given, settings
from hypothesis import strategies as st

from matching import InvalidCoordinates, ProviderIndex, ProviderRecord

R = 6371008.7714  # duplicated on purpose: the oracle must not import the engine
INF = float("inf")


def brute_haversine(lat: float, lon: float, lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    """Independent haversine scan: the oracle."""
    p1, p2 = math.radians(lat), np.radians(lats)
    dlmb = np.radians(lons - lon)
    a = np.sin((p2 - p1) / 2) ** 2 + math.cos(p1) * np.cos(p2) * np.sin(dlmb / 2) ** 2
    return np.asarray(2 * R * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))))


def near_boundary(d: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Distances within ~1e-6 relative of their limit: floating point may go either way."""
    finite = np.isfinite(limit)
    lim = np.where(finite, limit, 0.0)
    return finite & (np.abs(d - lim) <= 1e-6 * lim + 1e-6)


lon_any = st.floats(-180, 180)
REGIONS: dict[str, st.SearchStrategy[tuple[float, float]]] = {
    "worldwide": st.tuples(st.floats(-90, 90), lon_any),
    "antimeridian": st.tuples(
        st.one_of(st.floats(-85, 85), st.floats(-2, 2)),
        st.one_of(
            st.floats(179.0, 180.0), st.floats(-180.0, -179.0), st.sampled_from([180.0, -180.0])
        ),
    ),
    "polar": st.tuples(
        st.one_of(st.floats(89.0, 90.0), st.floats(-90.0, -89.0), st.sampled_from([90.0, -90.0])),
        lon_any,
    ),
}
RADIUS = {
    "worldwide": st.one_of(st.floats(0, 2.1e7), st.sampled_from([0.0, INF, 2.1e7, 1e6])),
    "antimeridian": st.one_of(st.floats(0, 5e5), st.sampled_from([0.0, 1e3, 1e5, INF])),
    "polar": st.one_of(st.floats(0, 3e5), st.sampled_from([0.0, 1e3, 1e5, INF])),
}


def draw_scenario(data: st.DataObject, region: str) -> dict[str, Any]:
    pts = data.draw(st.lists(REGIONS[region], max_size=80), label="providers")
    if pts and data.draw(st.booleans(), label="duplicates"):
        pts += data.draw(st.lists(st.sampled_from(pts), max_size=10), label="dups")
    n = len(pts)
    travel = data.draw(
        st.lists(
            st.one_of(st.just(INF), st.floats(0, 2.1e7), st.floats(0, 5e5)), min_size=n, max_size=n
        ),
        label="max_travel",
    )
    q = data.draw(REGIONS[region], label="order")
    radius = data.draw(RADIUS[region], label="radius")
    lats = np.array([p[0] for p in pts], dtype=float)
    lons = np.array([p[1] for p in pts], dtype=float)
    index = ProviderIndex(np.arange(n), lats, lons, np.array(travel, dtype=float))
    d = brute_haversine(q[0], q[1], lats, lons)
    limit = np.minimum(radius, index.max_travel_m)
    return {"index": index, "q": q, "radius": radius, "d": d, "limit": limit}


@pytest.mark.parametrize("region", sorted(REGIONS))
@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_within_equals_brute_force(region: str, data: st.DataObject) -> None:
    s = draw_scenario(data, region)
    index, d, limit = s["index"], s["d"], s["limit"]
    got = index.within(s["q"][0], s["q"][1], s["radius"])
    expected = d <= limit
    event("some candidates" if len(got) else "no candidates")
    event("some excluded" if (~expected).any() else "none excluded")
    ambiguous = near_boundary(d, limit)
    got_set = set(got.indices.tolist())
    assert set(np.flatnonzero(expected & ~ambiguous).tolist()) <= got_set
    assert got_set <= set(np.flatnonzero(expected | ambiguous).tolist())
    # sorted nearest first, distances agree with the oracle, limits honoured exactly
    assert np.all(np.diff(got.distances_m) >= 0)
    np.testing.assert_allclose(got.distances_m, d[got.indices], rtol=1e-9, atol=1.0)
    assert np.all(got.distances_m <= limit[got.indices])
    assert got.ids.tolist() == got.indices.tolist()


@pytest.mark.parametrize("region", sorted(REGIONS))
@settings(max_examples=100, deadline=None)
@given(data=st.data())
def test_nearest_equals_brute_force(region: str, data: st.DataObject) -> None:
    s = draw_scenario(data, region)
    index, d, limit = s["index"], s["d"], s["limit"]
    k = data.draw(st.integers(1, 12), label="k")
    use_radius = data.draw(st.booleans(), label="use_radius")
    if not use_radius:
        limit = index.max_travel_m
    assume(not near_boundary(d, limit).any())
    got = index.nearest(s["q"][0], s["q"][1], k, s["radius"] if use_radius else None)
    eligible = d <= limit
    want = np.sort(d[eligible])[:k]
    assert len(got) == want.shape[0]
    assert eligible[got.indices].all()
    np.testing.assert_allclose(got.distances_m, want, rtol=1e-9, atol=1.0)


@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_batch_equals_single(data: st.DataObject) -> None:
    region = data.draw(st.sampled_from(sorted(REGIONS)), label="region")
    s = draw_scenario(data, region)
    index = s["index"]
    orders = data.draw(st.lists(REGIONS[region], max_size=8), label="orders")
    radii = data.draw(
        st.lists(RADIUS[region], min_size=len(orders), max_size=len(orders)), label="radii"
    )
    lat = [o[0] for o in orders]
    lon = [o[1] for o in orders]
    k = data.draw(st.integers(1, 6), label="k")
    edges = index.within_many(lat, lon, radii)
    knn = index.nearest_many(lat, lon, k, radii)
    assert edges.n_orders == len(orders) and edges.n_providers == len(index)
    for i, (la, lo) in enumerate(orders):
        single = index.within(la, lo, radii[i])
        p, dist = edges.for_order(i)
        # batch uses the tree's chords, single recomputes them: equal to ~1 ulp,
        # so only points on the boundary itself may differ
        d = brute_haversine(la, lo, index.lat, index.lon)
        limit = np.minimum(radii[i], index.max_travel_m)
        ambiguous = set(np.flatnonzero(near_boundary(d, limit)).tolist())
        assert set(p.tolist()) ^ set(single.indices.tolist()) <= ambiguous
        if p.tolist() == single.indices.tolist():
            np.testing.assert_allclose(dist, single.distances_m, rtol=1e-12, atol=1e-6)
        assert np.all(np.diff(dist) >= 0)
        near = index.nearest(la, lo, k, radii[i])
        _, knn_d = knn.for_order(i)  # tied providers may swap; compare distances
        np.testing.assert_allclose(knn_d, near.distances_m, rtol=1e-12, atol=1e-6)


def test_many_distinct_radii_use_power_of_two_buckets() -> None:
    rng = np.random.default_rng(11)
    n, m = 400, 40
    lat = rng.uniform(-1, 1, n)
    lon = rng.uniform(179, 181, n) % 360 - 180  # straddles the antimeridian
    index = ProviderIndex(np.arange(n), lat, lon, rng.uniform(5e3, 2e5, n))
    olat, olon = rng.uniform(-1, 1, m), rng.uniform(179, 181, m) % 360 - 180
    radii = rng.uniform(0, 1.5e5, m)  # > 8 distinct values
    edges = index.within_many(olat, olon, radii)
    assert len(edges) > 0
    for i in range(m):
        single = index.within(olat[i], olon[i], radii[i])
        assert edges.for_order(i)[0].tolist() == single.indices.tolist()


def test_max_travel_respected() -> None:
    # providers ~400 m north of the order, with different travel limits
    lat0, lon0 = 48.8566, 2.3522
    dlat = math.degrees(400.0 / R)
    index = ProviderIndex(
        ["short", "long", "free"],
        [lat0 + dlat] * 3,
        [lon0] * 3,
        [300.0, 500.0, INF],
    )
    got = index.within(lat0, lon0, 1000.0)
    assert sorted(got.ids.tolist()) == ["free", "long"]
    assert got.distances_m == pytest.approx([400.0, 400.0], abs=1e-6)
    assert index.within(lat0, lon0, 399.0).ids.tolist() == []
    assert index.nearest(lat0, lon0, 5).ids.tolist() == ["long", "free"]
    edges = index.within_many([lat0], [lon0], 1000.0)
    assert sorted(index.ids[edges.provider_idx].tolist()) == ["free", "long"]


def test_nearest_looks_past_ineligible_neighbours() -> None:
    # 40 providers right next to the order who won't travel, one far who will
    n = 40
    lat = np.full(n + 1, 10.0)
    lon = np.full(n + 1, 10.0)
    lat[:n] += np.linspace(1e-4, 2e-4, n)  # 11-22 m away
    lat[n] = 10.05
    travel = np.full(n + 1, 1.0)
    travel[n] = INF
    index = ProviderIndex(np.arange(n + 1), lat, lon, travel)
    got = index.nearest(10.0, 10.0, 3)
    assert got.indices.tolist() == [n]
    many = index.nearest_many([10.0, 10.0], [10.0, 10.0], 2, [INF, 100.0])
    assert many.for_order(0)[0].tolist() == [n]
    assert many.for_order(1)[0].tolist() == []


def test_antimeridian_and_pole_examples() -> None:
    index = ProviderIndex([1, 2, 3], [0.0, 89.999, 89.999], [179.999, 0.0, 180.0])
    east = index.within(0.0, -179.999, 300.0)
    assert east.ids.tolist() == [1]
    assert east.distances_m[0] == pytest.approx(math.radians(0.002) * R, rel=1e-9)
    pole = index.within(90.0, 45.0, 112.0)
    assert sorted(pole.ids.tolist()) == [2, 3]


def test_zero_providers() -> None:
    index = ProviderIndex(np.array([], dtype=np.int64), [], [], [])
    assert len(index) == 0
    assert len(index.within(0, 0, 1e9)) == 0
    assert len(index.nearest(0, 0, 3)) == 0
    e = index.within_many([1.0, 2.0], [1.0, 2.0], 1000.0)
    assert len(e) == 0 and e.n_orders == 2 and e.indptr.tolist() == [0, 0, 0]
    assert len(index.nearest_many([1.0], [1.0], 2)) == 0


def test_zero_orders() -> None:
    index = ProviderIndex([1], [0.0], [0.0])
    e = index.within_many([], [], 1000.0)
    assert len(e) == 0 and e.n_orders == 0
    assert len(index.nearest_many([], [], 3)) == 0


def test_duplicate_points() -> None:
    index = ProviderIndex(np.arange(5), [1.0] * 5, [2.0] * 5)
    got = index.within(1.0, 2.0, 0.0)
    assert got.indices.tolist() == [0, 1, 2, 3, 4]
    assert np.all(got.distances_m == 0.0)
    assert index.nearest(1.0, 2.0, 3).indices.tolist() == [0, 1, 2]


def test_all_out_of_range() -> None:
    index = ProviderIndex(np.arange(3), [10.0, 20.0, 30.0], [0.0, 0.0, 0.0], [1e9, 1e9, 1e9])
    assert len(index.within(-50.0, 100.0, 1000.0)) == 0
    assert len(index.nearest(-50.0, 100.0, 2, 1000.0)) == 0
    short = ProviderIndex(np.arange(2), [0.0, 0.0], [0.0, 0.01], [1.0, 1.0])
    assert len(short.within(0.0, 0.005, 1e7)) == 0


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf"), 91.0, -90.5])
def test_invalid_provider_coordinates_rejected(bad: float) -> None:
    with pytest.raises(InvalidCoordinates):
        ProviderIndex([1, 2], [0.0, bad], [0.0, 0.0])
    with pytest.raises(InvalidCoordinates):
        ProviderIndex([1, 2], [0.0, 0.0], [0.0, bad * 2])


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 90.5, -181.0])
def test_invalid_query_rejected(bad: float) -> None:
    index = ProviderIndex([1], [0.0], [0.0])
    with pytest.raises(InvalidCoordinates):
        index.within(bad, 0.0, 10.0)
    with pytest.raises(InvalidCoordinates):
        index.nearest(0.0, bad * 2, 1)
    with pytest.raises(InvalidCoordinates):
        index.within_many([0.0, bad], [0.0, 0.0], 10.0)


def test_invalid_parameters_rejected() -> None:
    index = ProviderIndex([1], [0.0], [0.0])
    with pytest.raises(InvalidCoordinates):
        index.within(0.0, 0.0, -1.0)
    with pytest.raises(InvalidCoordinates):
        index.within(0.0, 0.0, float("nan"))
    with pytest.raises(ValueError, match="k must be"):
        index.nearest(0.0, 0.0, 0)
    with pytest.raises(InvalidCoordinates):
        ProviderIndex([1], [0.0], [0.0], [float("nan")])
    with pytest.raises(InvalidCoordinates):
        ProviderIndex([1], [0.0], [0.0], [-5.0])
    with pytest.raises(ValueError, match="duplicate provider id"):
        ProviderIndex(["a", "a"], [0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="ids must be"):
        ProviderIndex([1, 2, 3], [0.0, 1.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="radius_m has length"):
        index.within_many([0.0, 1.0], [0.0, 1.0], [1.0, 2.0, 3.0])


def test_snapshot_and_changes() -> None:
    snap: dict[Any, ProviderRecord | dict[str, Any]] = {
        "a": ProviderRecord(lat=0.0, lon=0.0, max_travel_m=5000.0, verified=True),
        "b": {"lat": 0.0, "lon": 0.01, "acceptance_rate": 0.9},
        "c": {"lat": 0.0, "lon": 0.02},
    }
    index = ProviderIndex.from_snapshot(snap, version=7)
    assert index.version == 7 and len(index) == 3
    assert index.ids.tolist() == ["a", "b", "c"]
    assert index.signals.verified.tolist() == [1.0, 0.0, 0.0]
    assert index.max_travel_m[1] == INF
    assert sorted(index.within(0.0, 0.0, 1200.0).ids.tolist()) == ["a", "b"]

    moved = index.with_changes(
        upserts={"c": ProviderRecord(lat=0.0, lon=0.001), "d": {"lat": 1.0, "lon": 1.0}},
        removals=["a", "unknown-id"],
    )
    assert moved.version == 8 and index.version == 7  # old snapshot untouched
    assert sorted(moved.ids.tolist()) == ["b", "c", "d"]
    assert moved.within(0.0, 0.0, 200.0).ids.tolist() == ["c"]
    pos = moved.id_to_index["b"]
    assert moved.signals.acceptance_rate[pos] == 0.9
    with pytest.raises(TypeError):
        ProviderIndex.from_snapshot({"x": {"lat": 0.0, "lon": 0.0, "typo": 1}})
    empty = ProviderIndex.from_snapshot({})
    assert len(empty) == 0 and len(empty.within(0.0, 0.0, 10.0)) == 0
