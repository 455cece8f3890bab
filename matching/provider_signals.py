"""Per-provider data carried next to the spatial index.

Kept apart from :mod:`matching.index` so scoring can use signals without
importing the KD-tree code, and so the column layout (one numpy array per
signal, aligned with provider positions) is defined in exactly one place.
Missing values are NaN rather than ``None`` so every column stays a dense
float array that numpy can score without Python loops.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from .geo import FloatArray, as_float_array

__all__ = ["SIGNAL_FIELDS", "ProviderRecord", "ProviderSignals"]

SIGNAL_FIELDS: tuple[str, ...] = (
    "verified",
    "seconds_since_active",
    "acceptance_rate",
    "completion_rate",
    "proposed_price",
)
"""Column names of :class:`ProviderSignals`, in a stable order."""


@dataclass(frozen=True)
class ProviderRecord:
    """One provider row of a snapshot (what ``from_snapshot`` consumes).

    ``max_travel_m`` is how far the provider is willing to go; ``inf`` means
    no limit.  Optional signals default to NaN = unknown, which scoring maps
    to a neutral prior instead of penalising new providers.
    """

    lat: float
    lon: float
    max_travel_m: float = float("inf")
    verified: bool = False
    seconds_since_active: float = float("nan")
    acceptance_rate: float = float("nan")
    completion_rate: float = float("nan")
    proposed_price: float = float("nan")


def _column(values: npt.ArrayLike | None, n: int, name: str, default: float) -> FloatArray:
    """Return a float column of length ``n`` (``default`` everywhere if absent).

    An absent column is a read-only zero-stride view: no memory, no fill
    time, which matters when a million providers are indexed without signals.
    """
    if values is None:
        return np.broadcast_to(np.float64(default), (n,))
    arr = as_float_array(values, name)
    if arr.shape[0] != n:
        raise ValueError(f"signal {name!r} has length {arr.shape[0]}, expected {n}")
    return arr


@dataclass(frozen=True)
class ProviderSignals:
    """Explainable ranking signals, one float64 array per signal.

    All arrays have the same length as the provider index they belong to and
    are indexed by provider *position* (not id).  ``verified`` is stored as
    0.0/1.0 so it scores with the same vectorised code as the others.
    """

    verified: FloatArray
    seconds_since_active: FloatArray
    acceptance_rate: FloatArray
    completion_rate: FloatArray
    proposed_price: FloatArray
    size: int = field(init=False)

    def __post_init__(self) -> None:
        lengths = {getattr(self, f).shape[0] for f in SIGNAL_FIELDS}
        if len(lengths) != 1:
            raise ValueError(f"signal arrays have different lengths: {sorted(lengths)}")
        object.__setattr__(self, "size", lengths.pop())

    @classmethod
    def from_arrays(
        cls,
        n: int,
        *,
        verified: npt.ArrayLike | None = None,
        seconds_since_active: npt.ArrayLike | None = None,
        acceptance_rate: npt.ArrayLike | None = None,
        completion_rate: npt.ArrayLike | None = None,
        proposed_price: npt.ArrayLike | None = None,
    ) -> ProviderSignals:
        """Build signals for ``n`` providers; omitted signals are unknown (NaN).

        ``verified`` defaults to 0 (not verified) rather than NaN: an absent
        verification is a fact, not missing data.
        """
        return cls(
            verified=_column(verified, n, "verified", 0.0),
            seconds_since_active=_column(seconds_since_active, n, "seconds_since_active", np.nan),
            acceptance_rate=_column(acceptance_rate, n, "acceptance_rate", np.nan),
            completion_rate=_column(completion_rate, n, "completion_rate", np.nan),
            proposed_price=_column(proposed_price, n, "proposed_price", np.nan),
        )

    @classmethod
    def empty(cls, n: int) -> ProviderSignals:
        """All-unknown signals for ``n`` providers (used when none are given)."""
        return cls.from_arrays(n)

    @classmethod
    def from_records(cls, records: Sequence[ProviderRecord]) -> ProviderSignals:
        """Column-ise a sequence of records (one pass per column, no per-row numpy)."""
        n = len(records)
        cols: dict[str, FloatArray] = {
            name: np.fromiter((float(getattr(r, name)) for r in records), dtype=np.float64, count=n)
            for name in SIGNAL_FIELDS
        }
        return cls(**cols)
