"""Batch assignment: optimality against exhaustive search, and versus greedy."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import matching.assignment as assignment_mod
from matching import (
    Assignment,
    CandidateEdges,
    ProviderIndex,
    ScoringWeights,
    assign,
    greedy_assign,
    match_orders,
)


@contextmanager
def dense_limit(cells: int) -> Iterator[None]:
    """Temporarily change the dense/sparse switch inside ``method="components"``."""
    old = assignment_mod.DENSE_CELL_LIMIT
    assignment_mod.DENSE_CELL_LIMIT = cells
    try:
        yield
    finally:
        assignment_mod.DENSE_CELL_LIMIT = old


def solve_all(edges: CandidateEdges) -> dict[str, Assignment]:
    """Every solver path: dense LSA and LAPJVsp per component, one global LAPJVsp."""
    out = {"components/dense": assign(edges), "sparse": assign(edges, method="sparse")}
    with dense_limit(0):
        out["components/lapjvsp"] = assign(edges)
    return out


def make_edges(n_o: int, n_p: int, triples: list[tuple[int, int, float]]) -> CandidateEdges:
    o = np.array([t[0] for t in triples], dtype=np.intp)
    p = np.array([t[1] for t in triples], dtype=np.intp)
    d = np.array([t[2] for t in triples], dtype=float)
    return CandidateEdges.build(o, p, d, n_o, n_p)


def exhaustive(n_o: int, n_p: int, cost: dict[tuple[int, int], float]) -> tuple[int, float]:
    """Best (matched, total) by trying every injection of the smaller side.

    Extending any optimal partial matching to a full injection cannot add
    edges (that would match more), so the best permutation is the optimum.
    """
    best = (0, 0.0)
    if n_o <= n_p:
        perms = (
            list(zip(range(n_o), perm, strict=True))
            for perm in itertools.permutations(range(n_p), n_o)
        )
    else:
        perms = (
            list(zip(perm, range(n_p), strict=True))
            for perm in itertools.permutations(range(n_o), n_p)
        )
    for pairs in perms:
        used = [cost[pr] for pr in pairs if pr in cost]
        cand = (len(used), sum(used))
        if cand[0] > best[0] or (cand[0] == best[0] and cand[1] < best[1]):
            best = cand
    return best


def check_valid(a: Assignment, edges: CandidateEdges) -> None:
    assert len(set(a.order_idx.tolist())) == a.matched
    assert len(set(a.provider_idx.tolist())) == a.matched
    allowed = {
        (o, p): d
        for o, p, d in zip(
            edges.order_idx.tolist(),
            edges.provider_idx.tolist(),
            edges.distance_m.tolist(),
            strict=True,
        )
    }
    for o, p, d in zip(
        a.order_idx.tolist(), a.provider_idx.tolist(), a.distance_m.tolist(), strict=True
    ):
        assert allowed[(o, p)] == d
    assert a.total_distance_m == pytest.approx(float(a.distance_m.sum()))
    assert a.unmatched_orders.shape[0] == a.n_orders - a.matched


@st.composite
def instances(draw: st.DrawFn) -> tuple[int, int, list[tuple[int, int, float]]]:
    n_o = draw(st.integers(0, 6))
    n_p = draw(st.integers(0, 7))
    density = draw(st.floats(0.1, 1.0))
    dist = st.one_of(st.integers(0, 20).map(float), st.floats(0, 5000))  # ints force ties
    triples = []
    for o in range(n_o):
        for p in range(n_p):
            if draw(st.floats(0, 1)) < density:
                triples.append((o, p, draw(dist)))
    return n_o, n_p, triples


@settings(max_examples=150, deadline=None)
@given(instances())
def test_optimal_vs_exhaustive_and_greedy(
    inst: tuple[int, int, list[tuple[int, int, float]]],
) -> None:
    n_o, n_p, triples = inst
    edges = make_edges(n_o, n_p, triples)
    best_matched, best_total = exhaustive(n_o, n_p, {(o, p): d for o, p, d in triples})
    greedy = greedy_assign(edges)
    check_valid(greedy, edges)
    for a in solve_all(edges).values():
        check_valid(a, edges)
        assert a.matched == best_matched
        assert a.total_distance_m == pytest.approx(best_total, abs=1e-6)
        assert a.matched >= greedy.matched
        if a.matched == greedy.matched:
            assert a.total_distance_m <= greedy.total_distance_m + 1e-6


def test_greedy_loses_on_count() -> None:
    # A-P is the globally nearest edge, but B can only use P.
    edges = make_edges(2, 2, [(0, 0, 1.0), (0, 1, 10.0), (1, 0, 2.0)])
    g = greedy_assign(edges)
    assert g.matched == 1 and g.as_dict() == {0: 0}
    for a in solve_all(edges).values():
        assert a.matched == 2 and a.as_dict() == {0: 1, 1: 0}
        assert a.total_distance_m == 12.0


def test_greedy_loses_on_distance() -> None:
    edges = make_edges(2, 2, [(0, 0, 1.0), (0, 1, 2.0), (1, 0, 2.0), (1, 1, 100.0)])
    g = greedy_assign(edges)
    assert g.matched == 2 and g.total_distance_m == 101.0
    a = assign(edges)
    assert a.matched == 2 and a.total_distance_m == 4.0
    assert a.mean_distance_m == 2.0 and a.p95_distance_m == 2.0


def test_matched_count_beats_distance() -> None:
    # Matching both costs far more metres than matching one, still preferred.
    edges = make_edges(2, 2, [(0, 0, 0.0), (0, 1, 1e6), (1, 0, 1e6)])
    for a in solve_all(edges).values():
        assert a.matched == 2 and a.total_distance_m == 2e6


def test_empty_and_degenerate() -> None:
    for n_o, n_p in [(0, 0), (3, 0), (0, 3), (4, 4)]:
        edges = make_edges(n_o, n_p, [])
        for a in (assign(edges), greedy_assign(edges)):
            assert a.matched == 0 and a.total_distance_m == 0.0
            assert np.isnan(a.mean_distance_m) and np.isnan(a.p95_distance_m)
            assert a.unmatched_orders.tolist() == list(range(n_o))
            assert a.match_rate == (1.0 if n_o == 0 else 0.0)
    # one provider wanted by everybody; zero-distance edges are fine
    edges = make_edges(3, 1, [(0, 0, 5.0), (1, 0, 0.0), (2, 0, 3.0)])
    assert assign(edges).as_dict() == {1: 0}
    # duplicate edges: the cheaper one is used
    edges = make_edges(1, 1, [(0, 0, 9.0), (0, 0, 4.0)])
    assert assign(edges).total_distance_m == 4.0


def test_costs_argument() -> None:
    edges = make_edges(1, 2, [(0, 0, 10.0), (0, 1, 20.0)])
    a = assign(edges, costs=[5.0, 1.0])
    assert a.as_dict() == {0: 1} and a.total_distance_m == 20.0 and a.total_cost == 1.0
    with pytest.raises(ValueError):
        assign(edges, costs=[1.0])
    with pytest.raises(ValueError):
        assign(edges, costs=[-1.0, 1.0])
    with pytest.raises(ValueError):
        assign(edges, method="nope")  # type: ignore[arg-type]


def test_end_to_end_with_index() -> None:
    rng = np.random.default_rng(3)
    n_p, n_o = 300, 200
    plat = 52.52 + rng.normal(0, 0.02, n_p)
    plon = 13.40 + rng.normal(0, 0.03, n_p)
    index = ProviderIndex(np.arange(n_p), plat, plon, rng.uniform(500, 3000, n_p))
    olat = 52.52 + rng.normal(0, 0.02, n_o)
    olon = 13.40 + rng.normal(0, 0.03, n_o)
    edges = index.within_many(olat, olon, 2000.0)
    results = solve_all(edges)
    opt = results["components/dense"]
    greedy = greedy_assign(edges)
    for a in results.values():
        check_valid(a, edges)
        assert a.matched == opt.matched >= greedy.matched
        assert a.total_distance_m == pytest.approx(opt.total_distance_m, rel=1e-9)
    if opt.matched == greedy.matched:
        assert opt.total_distance_m <= greedy.total_distance_m + 1e-6
    via = match_orders(index, olat, olon, 2000.0)
    assert via.matched == opt.matched
    capped = match_orders(index, olat, olon, 2000.0, max_candidates=8)
    assert capped.matched <= opt.matched
    scored = match_orders(index, olat, olon, 2000.0, weights=ScoringWeights())
    assert scored.matched == opt.matched  # count is maximised first whatever the cost
