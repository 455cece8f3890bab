"""TapLive matching engine: pure numpy/scipy, no web or database imports.

Public API:

* geometry - :data:`EARTH_RADIUS_M`, :func:`haversine_m`,
  :func:`validate_coordinates`, :class:`InvalidCoordinates`, ...
* :class:`ProviderIndex` - great-circle radius / k-nearest search with
  per-provider max travel, single and batch.
* :func:`rank` with :class:`ScoringWeights` - explainable ranking.
* :func:`assign` (optimal) and :func:`greedy_assign` (baseline) - batch
  assignment; :func:`match_orders` does search + assignment in one call.
"""

from .assignment import Assignment, Method, assign, greedy_assign
from .batch import candidate_edges, match_orders
from .candidates import CandidateEdges, Candidates
from .geo import (
    EARTH_RADIUS_M,
    InvalidCoordinates,
    chord_to_distance,
    distance_to_chord,
    haversine_m,
    to_unit_vectors,
    validate_coordinates,
)
from .index import ProviderIndex
from .provider_signals import ProviderRecord, ProviderSignals
from .scoring import (
    COMPONENTS,
    DEFAULT_WEIGHTS,
    RankedCandidate,
    ScoringWeights,
    edge_scores,
    rank,
    rank_ids,
    score_components,
    scores_to_costs,
)

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "EARTH_RADIUS_M",
    "Assignment",
    "CandidateEdges",
    "Candidates",
    "InvalidCoordinates",
    "Method",
    "ProviderIndex",
    "ProviderRecord",
    "ProviderSignals",
    "RankedCandidate",
    "ScoringWeights",
    "assign",
    "candidate_edges",
    "chord_to_distance",
    "distance_to_chord",
    "edge_scores",
    "greedy_assign",
    "haversine_m",
    "match_orders",
    "rank",
    "rank_ids",
    "score_components",
    "scores_to_costs",
    "to_unit_vectors",
    "validate_coordinates",
]
