"""Batch assignment of pending orders to providers.

Objective (lexicographic): first match as many orders as possible, then
minimise the total cost (metres by default, or a score-derived cost).  Each
provider takes at most one order, each order at most one provider, and only
candidate edges produced by :class:`~matching.index.ProviderIndex` (which
already enforce order radius and provider max travel) may be used.

Unmatched orders: every order gets a private dummy "unmatched" column whose
cost ``D`` exceeds (rows x largest real cost).  Leaving one more order
unmatched then costs more than any saving in metres, so a min-cost *full*
matching maximises the matched count first and minimises distance second.

Solver choice (measured at 10k orders x 100k providers on 2 cores, see
docs/matching.md): the default ``method="components"`` splits the candidate
graph into connected components (``scipy.sparse.csgraph.connected_components``),
settles single-order / single-provider components in one vectorised pass,
solves small components with dense ``linear_sum_assignment`` and large ones
with sparse ``min_weight_full_bipartite_matching`` (LAPJVsp).  One global
LAPJVsp call (``method="sparse"``) finds the same optimum but was 2.6x slower
with all candidates in radius (1.9M edges) and ~7x slower with 16 candidates
per order: each shortest-augmenting-path search does bookkeeping over *all*
columns, so its cost grows with rows x every reachable provider, while per
component it only pays for the providers that component can reach.  A dense
LSA over whole components is no option either: city centres form components
of ~1k orders x ~10k providers, where dense O(rows x cols) memory and
O(rows^2 x cols) time lose to LAPJVsp; hence the size switch
(:data:`DENSE_CELL_LIMIT`).  When everything is one dense metro component
(the tight-supply benchmarks) there is nothing to split and the global call
is a few tens of milliseconds faster at 2k orders; not worth a second path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_array, csr_array
from scipy.sparse.csgraph import connected_components, min_weight_full_bipartite_matching

from .candidates import CandidateEdges, IntArray
from .geo import FloatArray

__all__ = ["DENSE_CELL_LIMIT", "Assignment", "Method", "assign", "greedy_assign"]

Method = Literal["components", "sparse"]

DENSE_CELL_LIMIT = 1_000_000  # 1e5..1e6 measured equally good; 5e6 is slower
"""Components with rows x (cols + rows) above this use LAPJVsp, below dense LSA."""


@dataclass(frozen=True)
class Assignment:
    """Result of a batch match.

    ``order_idx[i] -> provider_idx[i]`` at ``distance_m[i]`` metres, sorted by
    order.  Summary statistics are precomputed because they are what the
    dispatcher logs and the benchmark compares; ``mean``/``p95`` are NaN when
    nothing matched.
    """

    order_idx: IntArray
    provider_idx: IntArray
    distance_m: FloatArray
    n_orders: int
    n_providers: int
    matched: int
    total_distance_m: float
    mean_distance_m: float
    p95_distance_m: float
    total_cost: float
    method: str

    @property
    def match_rate(self) -> float:
        """Fraction of orders matched (1.0 for an empty batch)."""
        return self.matched / self.n_orders if self.n_orders else 1.0

    @property
    def unmatched_orders(self) -> IntArray:
        """Orders left without a provider."""
        mask = np.ones(self.n_orders, dtype=bool)
        mask[self.order_idx] = False
        return np.flatnonzero(mask)

    def as_dict(self) -> dict[int, int]:
        """``{order position: provider position}``."""
        return dict(zip(self.order_idx.tolist(), self.provider_idx.tolist(), strict=True))


def _result(edges: CandidateEdges, sel: IntArray, cost: FloatArray, method: str) -> Assignment:
    """Build an :class:`Assignment` from selected edge positions."""
    sel = np.sort(sel)  # edges are grouped by order, so this sorts by order
    dist = edges.distance_m[sel]
    m = int(sel.shape[0])
    return Assignment(
        order_idx=edges.order_idx[sel],
        provider_idx=edges.provider_idx[sel],
        distance_m=dist,
        n_orders=edges.n_orders,
        n_providers=edges.n_providers,
        matched=m,
        total_distance_m=float(dist.sum()),
        mean_distance_m=float(dist.mean()) if m else float("nan"),
        p95_distance_m=float(np.percentile(dist, 95)) if m else float("nan"),
        total_cost=float(cost[sel].sum()),
        method=method,
    )


def _edge_costs(edges: CandidateEdges, costs: npt.ArrayLike | None) -> FloatArray:
    if costs is None:
        return edges.distance_m
    c = np.asarray(costs, dtype=np.float64)
    if c.shape != edges.distance_m.shape:
        raise ValueError(f"costs shape {c.shape} != edges {edges.distance_m.shape}")
    if not np.all(np.isfinite(c)) or (c < 0).any():
        raise ValueError("costs must be finite and >= 0")
    return c


def greedy_assign(edges: CandidateEdges, costs: npt.ArrayLike | None = None) -> Assignment:
    """Nearest-first greedy baseline.

    Walks all edges by ascending cost (ties: edge order, i.e. by order) and
    takes an edge when both ends are still free.  This is what a naive
    dispatcher does; it can strand orders whose only provider was taken by
    an order that had alternatives, which the optimal solver avoids.
    """
    cost = _edge_costs(edges, costs)
    perm = np.argsort(cost, kind="stable")
    order_free = np.ones(edges.n_orders, dtype=bool)
    prov_free = np.ones(edges.n_providers, dtype=bool)
    chosen: list[int] = []
    left = min(edges.n_orders, edges.n_providers)
    o_list = edges.order_idx[perm].tolist()
    p_list = edges.provider_idx[perm].tolist()
    for e, o, p in zip(perm.tolist(), o_list, p_list, strict=True):
        if order_free[o] and prov_free[p]:
            order_free[o] = False
            prov_free[p] = False
            chosen.append(e)
            left -= 1
            if left == 0:
                break
    return _result(edges, np.asarray(chosen, dtype=np.intp), cost, "greedy")


# ----------------------------------------------------------------- solvers
# Each solver takes compressed edges (rows 0..n_r-1 grouped ascending, cols
# 0..n_c-1, weights > 0, no duplicate pairs) and returns, per row, the
# matched column or -1.


def _dummy_cost(w: FloatArray, n_rows: int) -> float:
    """Cost of leaving one order unmatched: more than any all-real matching."""
    return float(n_rows * float(w.max()) * (1.0 + 1e-9) + 1.0)


def _lapjvsp(r: IntArray, c: IntArray, w: FloatArray, n_r: int, n_c: int) -> IntArray:
    """Sparse LAPJVsp with one private dummy column per row."""
    ar = np.arange(n_r, dtype=np.intp)
    data = np.concatenate([w, np.full(n_r, _dummy_cost(w, n_r))])
    ij = (np.concatenate([r, ar]), np.concatenate([c, n_c + ar]))
    ri, ci = min_weight_full_bipartite_matching(csr_array((data, ij), shape=(n_r, n_c + n_r)))
    match = np.full(n_r, -1, dtype=np.intp)
    real = ci < n_c
    match[ri[real]] = ci[real]
    return match


def _dense_lsa(r: IntArray, c: IntArray, w: FloatArray, n_r: int, n_c: int) -> IntArray:
    """Dense ``linear_sum_assignment`` on rows x (cols + dummies); inf = no edge."""
    mat = np.full((n_r, n_c + n_r), np.inf)
    mat[r, c] = w
    ar = np.arange(n_r)
    mat[ar, n_c + ar] = _dummy_cost(w, n_r)
    ri, ci = linear_sum_assignment(mat)
    match = np.full(n_r, -1, dtype=np.intp)
    real = ci < n_c
    match[ri[real]] = ci[real]
    return match


def _first_min_per_group(w: FloatArray, starts: IntArray, group: IntArray) -> IntArray:
    """Position of the first minimum of ``w`` in each contiguous group."""
    seg_min = np.minimum.reduceat(w, starts)
    pos = np.flatnonzero(w == seg_min[group])
    first = np.ones(pos.shape[0], dtype=bool)
    first[1:] = group[pos[1:]] != group[pos[:-1]]
    return pos[first]


def _reduce(
    r: IntArray, c: IntArray, w: FloatArray, n_r: int, n_c: int
) -> tuple[IntArray, IntArray]:
    """Exact reductions before solving: (rows settled -> col or -1, edge positions kept).

    A provider with one candidate order ("exclusive") can only ever serve that order, so:

    * an order whose cheapest edge goes to an exclusive provider takes it: in any optimal
      matching it could swap to that (free) provider without losing count or cost;
    * of an order's exclusive providers only the cheapest is kept, for the same reason.

    Settling orders lowers other providers' degrees, so this repeats while a round still
    removes more than 1 % of the edges (three or four rounds).  With plentiful supply it
    settles ~20 % of a metro's orders and cuts the rest into hundreds of small components:
    at 100k orders x 1M
    providers the metro-sized components (~10k orders x ~80k providers, LAPJVsp ~3 s each,
    its cost grows with rows x columns) become components of a few hundred orders.
    """
    # By order, cheapest first, so an order's first alive edge is its best.  Candidate
    # edges by distance arrive that way already (checking is ~100x cheaper than sorting).
    if bool(np.all((r[1:] > r[:-1]) | ((r[1:] == r[:-1]) & (w[1:] >= w[:-1])))):
        perm = np.arange(r.shape[0], dtype=np.intp)
    else:  # two passes: ~2x faster than np.lexsort here
        perm = np.argsort(w)
        perm = perm[np.argsort(r[perm], kind="stable")]
    rs, cs = r[perm], c[perm]
    alive = np.ones(rs.shape[0], dtype=bool)
    match = np.full(n_r, -1, dtype=np.intp)
    before = np.inf  # the first round always runs
    while True:
        idx = np.flatnonzero(alive)
        # Each round removes far less than the one before (100k x 1M: 26 %, 6 %, 0.7 %,
        # 0.1 % of the edges); stopping early is safe, every round is optional.
        if idx.shape[0] == 0 or idx.shape[0] > 0.99 * before:
            return match, perm[idx]
        before = idx.shape[0]
        ra, ca = rs[idx], cs[idx]
        exclusive = np.bincount(ca, minlength=n_c)[ca] == 1
        first = np.ones(idx.shape[0], dtype=bool)
        first[1:] = ra[1:] != ra[:-1]
        settle = first & exclusive
        ex = np.flatnonzero(exclusive)
        ex_first = np.ones(ex.shape[0], dtype=bool)
        ex_first[1:] = ra[ex[1:]] != ra[ex[:-1]]
        prune = ex[~ex_first]
        match[ra[settle]] = ca[settle]
        settled = np.zeros(n_r, dtype=bool)
        settled[ra[settle]] = True
        alive[idx[settled[ra]]] = False
        alive[idx[prune]] = False


def _components(r: IntArray, c: IntArray, w: FloatArray, n_r: int, n_c: int) -> IntArray:
    """Exact reductions (:func:`_reduce`), then the rest component by component."""
    match, kept = _reduce(r, c, w, n_r, n_c)
    if kept.shape[0]:
        rows, row_ids = _compress(r[kept], n_r)
        cols, col_ids = _compress(c[kept], n_c)
        local = _solve_components(
            rows, cols, w[kept], row_ids.shape[0], col_ids.shape[0]
        )
        hit = np.flatnonzero(local >= 0)
        match[row_ids[hit]] = col_ids[local[hit]]
    return match


def _solve_components(
    r: IntArray, c: IntArray, w: FloatArray, n_r: int, n_c: int
) -> IntArray:
    """Per connected component: vectorised trivial cases, dense LSA or LAPJVsp."""
    n = n_r + n_c
    adj = coo_array((np.ones(r.shape[0], dtype=np.int8), (r, n_r + c)), shape=(n, n))
    n_comp, label = connected_components(adj, directed=False)
    row_lab, col_lab = label[:n_r], label[n_r:]
    row_cnt = np.bincount(row_lab, minlength=n_comp)
    col_cnt = np.bincount(col_lab, minlength=n_comp)
    # rows/cols listed component by component; local index = rank inside it
    row_order = np.argsort(row_lab, kind="stable")
    col_order = np.argsort(col_lab, kind="stable")
    row_start = np.concatenate([[0], np.cumsum(row_cnt)[:-1]])
    col_start = np.concatenate([[0], np.cumsum(col_cnt)[:-1]])
    local_row = np.empty(n_r, dtype=np.intp)
    local_row[row_order] = np.arange(n_r) - row_start[row_lab[row_order]]
    local_col = np.empty(n_c, dtype=np.intp)
    local_col[col_order] = np.arange(n_c) - col_start[col_lab[col_order]]
    # edges component by component, without sorting them: concatenate the
    # (contiguous) edge ranges of the rows in row_order
    row_ptr = np.concatenate([[0], np.cumsum(np.bincount(r, minlength=n_r))])
    lens = row_ptr[row_order + 1] - row_ptr[row_order]
    offs = np.concatenate([[0], np.cumsum(lens)[:-1]])
    eperm = np.repeat(row_ptr[row_order] - offs, lens) + np.arange(r.shape[0])
    er, ec, ew = r[eperm], c[eperm], w[eperm]
    e_lab = row_lab[er]
    e_cnt = np.bincount(e_lab, minlength=n_comp)
    e_start = np.concatenate([[0], np.cumsum(e_cnt)[:-1]])

    match = np.full(n_r, -1, dtype=np.intp)
    # One order, or one provider: only one edge can be used; take the cheapest.
    trivial = (row_cnt == 1) | (col_cnt == 1)
    best = _first_min_per_group(ew, e_start, e_lab)
    best = best[trivial[e_lab[best]]]
    match[er[best]] = ec[best]
    for k in np.flatnonzero(~trivial).tolist():
        s, e = int(e_start[k]), int(e_start[k] + e_cnt[k])
        nr, nc = int(row_cnt[k]), int(col_cnt[k])
        solve = _dense_lsa if nr * (nc + nr) <= DENSE_CELL_LIMIT else _lapjvsp
        local = solve(local_row[er[s:e]], local_col[ec[s:e]], ew[s:e], nr, nc)
        hit = np.flatnonzero(local >= 0)
        rows = row_order[row_start[k] + hit]
        match[rows] = col_order[col_start[k] + local[hit]]
    return match


def _unique_pairs(edges: CandidateEdges, cost: FloatArray) -> IntArray:
    """Edge positions with one (cheapest) edge per (order, provider) pair.

    Sparse matrices would *sum* duplicates.  Index output never has any, so
    the common path is one integer sort to prove it.
    """
    key = edges.order_idx.astype(np.int64) * edges.n_providers + edges.provider_idx
    s = np.sort(key)
    if not bool(np.any(s[1:] == s[:-1])):
        return np.arange(key.shape[0], dtype=np.intp)
    perm = np.lexsort((cost, key))
    first = np.ones(perm.shape[0], dtype=bool)
    first[1:] = key[perm[1:]] != key[perm[:-1]]
    return np.sort(perm[first]).astype(np.intp)  # back in order-grouped layout


def _compress(ids: IntArray, n: int) -> tuple[IntArray, IntArray]:
    """Relabel ids to 0..k-1 (monotonic) without sorting; returns (labels, originals)."""
    present = np.zeros(n, dtype=bool)
    present[ids] = True
    originals = np.flatnonzero(present)
    new = np.cumsum(present, dtype=np.intp) - 1
    return new[ids], originals


def assign(
    edges: CandidateEdges,
    costs: npt.ArrayLike | None = None,
    *,
    method: Method = "components",
) -> Assignment:
    """Optimal batch assignment over candidate ``edges``.

    ``costs`` (one non-negative value per edge) replaces distance as the
    objective, e.g. ``scores_to_costs(edge_scores(...))``; the reported
    distances are still metres.  Orders without edges stay unmatched.
    """
    if method not in ("components", "sparse"):
        raise ValueError(f"unknown method {method!r}")
    cost = _edge_costs(edges, costs)
    if len(edges) == 0:
        return _result(edges, np.empty(0, dtype=np.intp), cost, method)
    keep = _unique_pairs(edges, cost)
    r, _ = _compress(edges.order_idx[keep], edges.n_orders)
    c, _ = _compress(edges.provider_idx[keep], edges.n_providers)
    n_r, n_c = int(r.max()) + 1, int(c.max()) + 1
    # +1 keeps every weight non-zero (LAPJVsp drops explicit zeros); it adds
    # the same constant to every full matching, so the optimum is unchanged.
    w = cost[keep] + 1.0
    solve = _lapjvsp if method == "sparse" else _components
    match = solve(r, c, w, n_r, n_c)
    chosen = np.flatnonzero(c == match[r])  # pairs are unique: one edge per row
    return _result(edges, keep[chosen], cost, method)
