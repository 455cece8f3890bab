"""Explainable ranking of candidate providers.

A score is a weighted sum of per-signal values, each normalised to [0, 1]:

    score = sum_s  weight_s * value_s        (so 0 <= score <= sum of weights)

Why a plain weighted sum: every ranking shown to a creator or disputed by a
provider can be explained line by line ("distance 0.31 + verified 0.10 ...")
and the ``breakdown`` returned with each result adds up to the score exactly.
Distance carries the largest default weight, so among otherwise equal
providers the closest always wins, and other signals only reorder providers
at comparable distances.  Unknown signals (NaN) score a neutral prior rather
than zero so new providers are not buried.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from .candidates import CandidateEdges, Candidates, IntArray
from .geo import FloatArray, as_float_array
from .provider_signals import ProviderSignals

__all__ = [
    "COMPONENTS",
    "DEFAULT_WEIGHTS",
    "RankedCandidate",
    "ScoringWeights",
    "edge_scores",
    "rank",
    "score_components",
    "scores_to_costs",
]

COMPONENTS: tuple[str, ...] = (
    "distance",
    "verified",
    "recency",
    "acceptance",
    "completion",
    "price",
)
"""Breakdown keys, in the order the score adds them up."""


@dataclass(frozen=True)
class ScoringWeights:
    """All ranking knobs in one place (frozen: pass a new one to change them).

    Weights (default sum 1.0, so a score reads as a fraction of a perfect one):

    * ``distance`` 0.40 - ``0.5 ** (d / distance_half_life_m)``: every
      ``distance_half_life_m`` (1 km) halves the value.  Largest weight:
      distance decides first.
    * ``verified`` 0.10 - 1 if the provider passed verification.
    * ``recency`` 0.10 - ``0.5 ** (seconds_since_active / recency_half_life_s)``
      (30 min half-life; a live stream needs someone who is around now).
      Never active (NaN) scores 0.
    * ``acceptance`` 0.15 / ``completion`` 0.15 - historical rates in [0, 1];
      unknown -> ``unknown_prior`` (0.5).  A provider's no-shows (accepted,
      never started: ``domain.overdue``) count as assignments not completed,
      so each one lowers ``completion`` (``db.queries.matching.track_record``).
    * ``price`` 0.10 - fit of proposed/asked price: 1 at or under the ask,
      falling linearly to 0 at ``price_tolerance`` (50 %) over it; unknown ->
      ``unknown_prior``.
    """

    distance: float = 0.40
    verified: float = 0.10
    recency: float = 0.10
    acceptance: float = 0.15
    completion: float = 0.15
    price: float = 0.10
    distance_half_life_m: float = 1000.0
    recency_half_life_s: float = 1800.0
    price_tolerance: float = 0.5
    unknown_prior: float = 0.5

    def __post_init__(self) -> None:
        for f in fields(self):
            v = getattr(self, f.name)
            if not np.isfinite(v) or v < 0:
                raise ValueError(f"ScoringWeights.{f.name} must be finite and >= 0, got {v!r}")
        for name in ("distance_half_life_m", "recency_half_life_s", "price_tolerance"):
            if getattr(self, name) <= 0:
                raise ValueError(f"ScoringWeights.{name} must be > 0")
        if self.unknown_prior > 1:
            raise ValueError("ScoringWeights.unknown_prior must be in [0, 1]")

    @property
    def weight_vector(self) -> FloatArray:
        """Weights in :data:`COMPONENTS` order."""
        return np.array([getattr(self, c) for c in COMPONENTS], dtype=np.float64)

    @property
    def max_score(self) -> float:
        """Best possible score (sum of the weights)."""
        return float(self.weight_vector.sum())


DEFAULT_WEIGHTS = ScoringWeights()


@dataclass(frozen=True)
class RankedCandidate:
    """One ranked provider with its score and per-signal contributions.

    ``breakdown[c]`` is ``weight_c * value_c``; ``score`` is their sum, added
    in :data:`COMPONENTS` order, so the explanation matches the score exactly.
    """

    provider_index: int
    provider_id: Any
    distance_m: float
    score: float
    breakdown: Mapping[str, float]


def _rate(x: FloatArray, prior: float) -> FloatArray:
    return np.where(np.isnan(x), prior, np.clip(x, 0.0, 1.0))


def score_components(
    distance_m: FloatArray,
    provider_idx: IntArray,
    signals: ProviderSignals,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    asked_price: npt.ArrayLike | None = None,
) -> FloatArray:
    """Weighted contributions, shape ``(len(distance_m), len(COMPONENTS))``.

    Vectorised so the same code ranks one order's candidates and prices a
    million assignment edges.  ``asked_price`` is a scalar or one value per
    row (the order's budget); ``None`` means price fit is unknown.
    """
    w = weights
    n = distance_m.shape[0]
    out = np.empty((n, len(COMPONENTS)), dtype=np.float64)
    out[:, 0] = 0.5 ** (distance_m / w.distance_half_life_m)
    out[:, 1] = np.clip(np.nan_to_num(signals.verified[provider_idx], nan=0.0), 0.0, 1.0)
    idle = np.maximum(signals.seconds_since_active[provider_idx], 0.0)
    out[:, 2] = np.where(np.isnan(idle), 0.0, 0.5 ** (idle / w.recency_half_life_s))
    out[:, 3] = _rate(signals.acceptance_rate[provider_idx], w.unknown_prior)
    out[:, 4] = _rate(signals.completion_rate[provider_idx], w.unknown_prior)
    if asked_price is None:
        out[:, 5] = w.unknown_prior
    else:
        asked = as_float_array(asked_price, "asked_price")
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = signals.proposed_price[provider_idx] / asked
        fit = np.clip(1.0 - (ratio - 1.0) / w.price_tolerance, 0.0, 1.0)
        out[:, 5] = np.where(np.isfinite(ratio), fit, w.unknown_prior)
    out *= w.weight_vector
    return out


def _row_sums(parts: FloatArray) -> FloatArray:
    """Left-to-right sums, identical to Python's ``sum`` over a breakdown."""
    total = np.zeros(parts.shape[0], dtype=np.float64)
    for j in range(parts.shape[1]):
        total = total + parts[:, j]
    return total


def edge_scores(
    edges: CandidateEdges,
    signals: ProviderSignals,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    asked_price: npt.ArrayLike | None = None,
) -> FloatArray:
    """Score of every (order, provider) edge; ``asked_price`` is per order."""
    ask = None
    if asked_price is not None:
        a = as_float_array(asked_price, "asked_price")
        ask = a if a.shape[0] == 1 else a[edges.order_idx]
    parts = score_components(edges.distance_m, edges.provider_idx, signals, weights, ask)
    return _row_sums(parts)


def scores_to_costs(scores: FloatArray, weights: ScoringWeights = DEFAULT_WEIGHTS) -> FloatArray:
    """Turn scores into non-negative assignment costs (``max_score - score``).

    Lets :func:`matching.assignment.assign` maximise total score instead of
    minimising metres, with the same unmatched-order handling.
    """
    return np.maximum(weights.max_score - scores, 0.0)


def rank(
    candidates: Candidates,
    signals: ProviderSignals,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    *,
    asked_price: float | None = None,
    limit: int | None = None,
) -> list[RankedCandidate]:
    """Rank one order's candidates best first, with explanations.

    Ties are broken by distance, then provider position, so equal scores
    never shuffle between calls.  ``limit`` keeps only the top results.
    """
    if len(candidates) == 0:
        return []
    parts, order = _ranked(candidates, signals, weights, asked_price, limit)
    # Only the kept rows become Python objects (a shortlist keeps 30 of hundreds).
    ids = candidates.ids[order].tolist()  # plain Python ids (str/int/object alike)
    positions = candidates.indices[order].tolist()
    distances = candidates.distances_m[order].tolist()
    out: list[RankedCandidate] = []
    for row, provider_id, position, distance in zip(
        parts[order].tolist(), ids, positions, distances, strict=True
    ):
        breakdown = dict(zip(COMPONENTS, row, strict=True))
        out.append(
            RankedCandidate(
                provider_index=int(position),
                provider_id=provider_id,
                distance_m=float(distance),
                score=float(sum(breakdown.values())),
                breakdown=breakdown,
            )
        )
    return out


def rank_ids(
    candidates: Candidates,
    signals: ProviderSignals,
    weights: ScoringWeights = DEFAULT_WEIGHTS,
    *,
    limit: int | None = None,
) -> list[Any]:
    """The ids :func:`rank` would return, in its order, without the explanations."""
    if len(candidates) == 0:
        return []
    _, order = _ranked(candidates, signals, weights, None, limit)
    return list(candidates.ids[order].tolist())


def _ranked(
    candidates: Candidates,
    signals: ProviderSignals,
    weights: ScoringWeights,
    asked_price: float | None,
    limit: int | None,
) -> tuple[FloatArray, IntArray]:
    """Each candidate's contributions, and the rows best first (``limit`` of them)."""
    parts = score_components(
        candidates.distances_m, candidates.indices, signals, weights, asked_price
    )
    scores = _row_sums(parts)
    order = np.lexsort((candidates.indices, candidates.distances_m, -scores))
    if limit is not None:
        order = order[: max(limit, 0)]
    return parts, order
