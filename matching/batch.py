"""End-to-end batch re-match: candidate search + optimal assignment.

The one call a dispatcher job needs; kept separate from
:mod:`matching.assignment` so the solver stays independent of the index.
"""

from __future__ import annotations

import numpy.typing as npt

from .assignment import Assignment, Method, assign
from .candidates import CandidateEdges
from .index import ProviderIndex
from .scoring import ScoringWeights, edge_scores, scores_to_costs

__all__ = ["candidate_edges", "match_orders"]


def candidate_edges(
    index: ProviderIndex,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    radius_m: npt.ArrayLike,
    *,
    max_candidates: int | None = None,
) -> CandidateEdges:
    """Eligible edges for a batch: all within radius, or the nearest ``max_candidates``.

    Capping the fan-out bounds the graph at ``max_candidates x orders`` edges
    in dense city centres; the assignment is then optimal over that graph.
    """
    if max_candidates is None:
        return index.within_many(lat, lon, radius_m)
    return index.nearest_many(lat, lon, max_candidates, radius_m)


def match_orders(
    index: ProviderIndex,
    lat: npt.ArrayLike,
    lon: npt.ArrayLike,
    radius_m: npt.ArrayLike,
    *,
    max_candidates: int | None = None,
    weights: ScoringWeights | None = None,
    asked_price: npt.ArrayLike | None = None,
    method: Method = "components",
) -> Assignment:
    """Match many pending orders to providers in one optimal assignment.

    With ``weights`` the objective is total score (``max_score - score`` per
    edge); without, total distance.  Either way the matched count is
    maximised first.
    """
    edges = candidate_edges(index, lat, lon, radius_m, max_candidates=max_candidates)
    costs = None
    if weights is not None:
        costs = scores_to_costs(edge_scores(edges, index.signals, weights, asked_price), weights)
    return assign(edges, costs, method=method)
