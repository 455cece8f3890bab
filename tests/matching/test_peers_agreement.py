"""The peers benchmark's comparison, tested: on a small instance the engine, Redis GEOSEARCH
(real redis-server) and PostGIS (the test database) agree with a brute-force scan for both
query kinds, and the comparison notices an answer that does not."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import psycopg
import pytest
import redis

from bench.matching_bench import TRAVEL_CHOICES_M, synthetic_points
from bench.peers import (
    Answers,
    BruteForce,
    Engine,
    PostGIS,
    Providers,
    RedisGeo,
    compare,
    run_queries,
)
from matching import EARTH_RADIUS_M
from tests.conftest import redis_db

K = 16
RADIUS_M = 2000.0
# A query point ringed by 3 * K close providers that may not travel that far: the k-nearest
# query must look past them (Redis: COUNT has to grow; the engine: k doubles).
BLOCKED_AT = (48.8566, 2.3522)
BLOCKED = 3 * K


def _instance() -> tuple[Providers, list[tuple[float, float]]]:
    rng = np.random.default_rng(16)
    lat, lon = synthetic_points(20_000, rng, city_frac=1.0, cities=2)
    travel = rng.choice(TRAVEL_CHOICES_M, lat.shape[0])
    # the blocked ring (10-60 m away, max travel 5 m) and two co-located providers
    ang = rng.uniform(0, 2 * np.pi, BLOCKED)
    r = rng.uniform(10.0, 60.0, BLOCKED) / EARTH_RADIUS_M
    blat = BLOCKED_AT[0] + np.degrees(r * np.sin(ang))
    blon = BLOCKED_AT[1] + np.degrees(r * np.cos(ang) / np.cos(np.radians(BLOCKED_AT[0])))
    lat = np.concatenate([lat, blat, [BLOCKED_AT[0] + 0.001] * 2])
    lon = np.concatenate([lon, blon, [BLOCKED_AT[1]] * 2])
    travel = np.concatenate([travel, np.full(BLOCKED, 5.0), [3000.0, 3000.0]])
    qlat, qlon = synthetic_points(60, rng, city_frac=1.0, cities=2)
    queries = [BLOCKED_AT, *zip(qlat.tolist(), qlon.tolist(), strict=True)]
    return Providers(lat, lon, travel), queries


@pytest.fixture(scope="module")
def instance() -> tuple[Providers, list[tuple[float, float]]]:
    return _instance()


@pytest.fixture
def redis_geo(instance: tuple[Providers, list[tuple[float, float]]]) -> Iterator[RedisGeo]:
    client = redis.Redis.from_url(redis_db(10))
    geo = RedisGeo(client, key=f"peers-test:{uuid.uuid4().hex}")
    geo.load(instance[0], batch=1000)
    yield geo
    client.delete(geo.key, geo.travel_key)


@pytest.fixture
def postgis(
    pg_url: str, instance: tuple[Providers, list[tuple[float, float]]]
) -> Iterator[PostGIS]:
    url = pg_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(url) as conn:
        pg = PostGIS(conn, table=f"peers_test_{uuid.uuid4().hex[:8]}")
        pg.load(instance[0])
        yield pg
        conn.rollback()
        conn.execute(f"DROP TABLE {pg.table}")
        conn.commit()


def _answers(store: Any, queries: list[tuple[float, float]]) -> Answers:
    def nearest(a: float, b: float) -> Any:
        return store.nearest(a, b, K, RADIUS_M)

    def within(a: float, b: float) -> Any:
        return store.within(a, b, RADIUS_M)

    return {
        (store.name, "nearest"): run_queries(nearest, queries),
        (store.name, "within"): run_queries(within, queries),
    }


def _reference(p: Providers, queries: list[tuple[float, float]]) -> tuple[BruteForce, Answers]:
    ref = BruteForce(p)
    return ref, _answers(ref, queries)


def _ring(p: Providers) -> set[int]:
    return set(range(len(p) - BLOCKED - 2, len(p) - 2))


def test_engine_and_postgis_agree_exactly_nearest_first(
    instance: tuple[Providers, list[tuple[float, float]]], postgis: PostGIS
) -> None:
    p, queries = instance
    ref, want = _reference(p, queries)
    # the instance exercises what it should: mostly full k-nearest answers, hundreds within, and
    # the blocked query's nearest all lie past its ring
    assert sum(len(a) == K for a in want[(ref.name, "nearest")]) > len(queries) // 2
    assert max(len(a) for a in want[(ref.name, "within")]) > 200
    assert not set(want[(ref.name, "nearest")][0].tolist()) & _ring(p)
    engine = Engine(p)
    for store in (engine, postgis):
        got = _answers(store, queries)
        result = compare(ref, queries, got, RADIUS_M, K)
        assert all(d.exact == 0 for d in result.values()), (store.name, result)
        for kind in ("nearest", "within"):
            for (lat, lon), g in zip(queries, got[(store.name, kind)], strict=True):
                assert np.all(np.diff(ref.distances(lat, lon)[g]) >= 0), (store.name, kind)
    # the engine breaks distance ties by position, as the reference does: same lists
    got = _answers(engine, queries)
    for key, answers in want.items():
        for g, w in zip(got[(engine.name, key[1])], answers, strict=True):
            assert g.tolist() == w.tolist()


def test_redis_agrees_within_its_precision(
    instance: tuple[Providers, list[tuple[float, float]]], redis_geo: RedisGeo
) -> None:
    p, queries = instance
    ref, _ = _reference(p, queries)
    got = _answers(redis_geo, queries)
    result = compare(ref, queries, got, RADIUS_M, K)
    assert all(d.beyond_tolerance == 0 for d in result.values()), result
    # over-fetching went past the blocked ring to k eligible providers
    first = got[(redis_geo.name, "nearest")][0]
    assert len(first) == K and not set(first.tolist()) & _ring(p)


def test_comparison_catches_a_wrong_answer(
    instance: tuple[Providers, list[tuple[float, float]]],
) -> None:
    p, queries = instance
    ref, want = _reference(p, queries)
    wrong = {key: list(answers) for key, answers in want.items()}
    wrong[(ref.name, "within")][1] = wrong[(ref.name, "within")][1][1:]  # its nearest dropped
    wrong[(ref.name, "nearest")][0] = np.array(sorted(_ring(p))[:K])  # may not travel there
    result = compare(ref, queries, wrong, RADIUS_M, K)
    for kind in ("within", "nearest"):
        assert result[(ref.name, kind)].exact == 1
        assert result[(ref.name, kind)].beyond_tolerance == 1
