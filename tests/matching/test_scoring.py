"""Scoring: ordering, explainability and weight validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import (
    COMPONENTS,
    DEFAULT_WEIGHTS,
    Candidates,
    ProviderIndex,
    ProviderSignals,
    ScoringWeights,
    edge_scores,
    rank,
    scores_to_costs,
)


def cands(dist: list[float], ids: list[int] | None = None) -> Candidates:
    n = len(dist)
    idx = np.arange(n, dtype=np.intp)
    return Candidates(idx, np.array(ids if ids is not None else idx), np.array(dist, dtype=float))


def test_default_weights_documented_values() -> None:
    w = DEFAULT_WEIGHTS
    assert w.max_score == pytest.approx(1.0)
    assert w.distance == max(getattr(w, c) for c in COMPONENTS)


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.floats(0, 5e4), min_size=1, max_size=20),
    st.booleans(),
    st.floats(0, 1e5) | st.just(float("nan")),
    st.floats(0, 1) | st.just(float("nan")),
    st.floats(0, 1) | st.just(float("nan")),
    st.floats(0, 10) | st.just(float("nan")),
)
def test_closer_ranks_first_when_signals_equal(
    dist: list[float], verified: bool, idle: float, acc: float, comp: float, price: float
) -> None:
    n = len(dist)
    signals = ProviderSignals.from_arrays(
        n,
        verified=[float(verified)] * n,
        seconds_since_active=[idle] * n,
        acceptance_rate=[acc] * n,
        completion_rate=[comp] * n,
        proposed_price=[price] * n,
    )
    ranked = rank(cands(dist), signals, asked_price=5.0)
    got = [r.distance_m for r in ranked]
    assert got == sorted(dist)
    for r in ranked:
        assert r.score == sum(r.breakdown.values())
        assert list(r.breakdown) == list(COMPONENTS)
        assert 0.0 <= r.score <= DEFAULT_WEIGHTS.max_score + 1e-12


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.floats(0, 1e4),
            st.booleans(),
            st.floats(0, 1e5) | st.just(float("nan")),
            st.floats(-1, 2) | st.just(float("nan")),
            st.floats(0, 1) | st.just(float("nan")),
            st.floats(0, 1e3) | st.just(float("nan")),
        ),
        min_size=1,
        max_size=15,
    )
)
def test_breakdown_sums_to_score_and_sorted(rows: list[tuple[float, ...]]) -> None:
    n = len(rows)
    cols = list(zip(*rows, strict=True))
    signals = ProviderSignals.from_arrays(
        n,
        verified=cols[1],
        seconds_since_active=cols[2],
        acceptance_rate=cols[3],
        completion_rate=cols[4],
        proposed_price=cols[5],
    )
    ranked = rank(cands(list(cols[0])), signals, asked_price=100.0)
    scores = [r.score for r in ranked]
    assert scores == sorted(scores, reverse=True)
    for r in ranked:
        assert r.score == sum(r.breakdown.values())
        assert all(0.0 <= v <= getattr(DEFAULT_WEIGHTS, k) for k, v in r.breakdown.items())


def test_signal_semantics() -> None:
    w = DEFAULT_WEIGHTS
    signals = ProviderSignals.from_arrays(
        4,
        verified=[1, 0, 0, 0],
        seconds_since_active=[0.0, w.recency_half_life_s, float("nan"), 0.0],
        acceptance_rate=[1.0, float("nan"), 0.0, 0.5],
        completion_rate=[1.0, 0.2, float("nan"), 0.5],
        proposed_price=[80.0, 100.0, 125.0, 200.0],
    )
    ranked = {
        r.provider_index: r
        for r in rank(cands([0.0, 1000.0, 0.0, 0.0]), signals, w, asked_price=100.0)
    }
    b0, b1, b2, b3 = (ranked[i].breakdown for i in range(4))
    assert b0 == pytest.approx({c: getattr(w, c) for c in COMPONENTS})  # perfect provider
    assert b1["distance"] == pytest.approx(w.distance / 2)  # one half-life away
    assert b1["recency"] == pytest.approx(w.recency / 2)
    assert b1["acceptance"] == pytest.approx(w.acceptance * w.unknown_prior)
    assert b1["price"] == pytest.approx(w.price)  # at the ask
    assert b2["recency"] == 0.0  # never active
    assert b2["price"] == pytest.approx(w.price * 0.5)  # 25 % over, tolerance 50 %
    assert b3["price"] == 0.0  # way over budget
    assert ranked[0].score == pytest.approx(w.max_score)
    no_price = rank(cands([0.0]), signals)[0]
    assert no_price.breakdown["price"] == pytest.approx(w.price * w.unknown_prior)


def test_verified_breaks_distance_tie_and_ids_carried() -> None:
    signals = ProviderSignals.from_arrays(2, verified=[0, 1])
    ranked = rank(cands([500.0, 500.0], ids=[101, 202]), signals)
    assert [r.provider_id for r in ranked] == [202, 101]
    assert isinstance(ranked[0].provider_id, int)
    index = ProviderIndex(np.array(["p-1", "p-2"]), [0.0, 0.0], [0.0, 0.001], signals=signals)
    by_str = rank(index.within(0.0, 0.0, 1e3), index.signals)
    assert [r.provider_id for r in by_str] == ["p-2", "p-1"]  # verified beats 111 m
    assert type(by_str[0].provider_id) is str
    objs = Candidates(np.arange(2), np.array([("a", 1), ("b", 2)], dtype=object)[:, 0], np.zeros(2))
    assert [r.provider_id for r in rank(objs, signals)] == ["b", "a"]


def test_limit_and_empty() -> None:
    signals = ProviderSignals.empty(3)
    assert len(rank(cands([3.0, 1.0, 2.0]), signals, limit=2)) == 2
    assert rank(Candidates.empty(), signals) == []


def test_custom_weights_change_order() -> None:
    signals = ProviderSignals.from_arrays(2, acceptance_rate=[0.0, 1.0])
    near_first = rank(cands([100.0, 900.0]), signals)
    assert near_first[0].provider_index == 0
    reliability = ScoringWeights(distance=0.05, acceptance=0.9)
    assert rank(cands([100.0, 900.0]), signals, reliability)[0].provider_index == 1


@pytest.mark.parametrize(
    "kwargs",
    [
        {"distance": -0.1},
        {"verified": float("nan")},
        {"distance_half_life_m": 0.0},
        {"recency_half_life_s": float("inf")},
        {"unknown_prior": 1.5},
    ],
)
def test_invalid_weights(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        ScoringWeights(**kwargs)


def test_weights_are_frozen() -> None:
    with pytest.raises(AttributeError):
        DEFAULT_WEIGHTS.distance = 1.0  # type: ignore[misc]


def test_edge_scores_match_rank() -> None:
    index = ProviderIndex(
        np.arange(3),
        [0.0, 0.0, 0.0],
        [0.001, 0.002, 0.003],
        signals=ProviderSignals.from_arrays(3, verified=[0, 1, 0], proposed_price=[5, 20, 10]),
    )
    edges = index.within_many([0.0, 0.0], [0.0, 0.0025], 1e4)
    scores = edge_scores(edges, index.signals, asked_price=[10.0, 10.0])
    for i in range(2):
        c = index.within([0.0, 0.0][i], [0.0, 0.0025][i], 1e4)
        by_idx = {r.provider_index: r.score for r in rank(c, index.signals, asked_price=10.0)}
        s = slice(int(edges.indptr[i]), int(edges.indptr[i + 1]))
        for p, sc in zip(edges.provider_idx[s], scores[s], strict=True):
            assert math.isclose(by_idx[int(p)], float(sc), rel_tol=0, abs_tol=1e-15)
    costs = scores_to_costs(scores)
    assert np.all(costs >= 0) and np.allclose(costs + scores, DEFAULT_WEIGHTS.max_score)
