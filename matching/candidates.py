"""Result containers for candidate search.

Two shapes, because the two callers want different things:

* :class:`Candidates` - one order, a handful of providers, nearest first; what
  the "new order" path ranks and shows to a creator.
* :class:`CandidateEdges` - many orders at once as a flat edge list in CSR
  order (sorted by order, then distance); what batch assignment consumes
  without ever materialising one Python object per edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .geo import FloatArray

__all__ = ["CandidateEdges", "Candidates", "IntArray"]

IntArray = npt.NDArray[np.intp]


@dataclass(frozen=True)
class Candidates:
    """Providers eligible for one order, sorted nearest first.

    ``indices`` are positions in the :class:`~matching.index.ProviderIndex`
    (use them to look up signals), ``ids`` are the caller's provider ids and
    ``distances_m`` great-circle distances in metres.  Ties on distance are
    broken by position so results are deterministic.
    """

    indices: IntArray
    ids: npt.NDArray[Any]
    distances_m: FloatArray

    def __len__(self) -> int:
        return int(self.indices.shape[0])

    @classmethod
    def empty(cls, ids_dtype: npt.DTypeLike = np.int64) -> Candidates:
        """No candidates (zero providers, or nobody in range)."""
        return cls(
            indices=np.empty(0, dtype=np.intp),
            ids=np.empty(0, dtype=ids_dtype),
            distances_m=np.empty(0, dtype=np.float64),
        )


def _empty_int() -> IntArray:
    return np.empty(0, dtype=np.intp)


@dataclass(frozen=True)
class CandidateEdges:
    """Order -> provider candidate edges for a batch of orders.

    Sorted by ``order_idx`` then ``distance_m`` (then provider position), so
    ``indptr`` gives each order's slice, CSR-style: order ``i`` owns edges
    ``indptr[i]:indptr[i + 1]``.  ``n_orders``/``n_providers`` are the full
    problem sizes, including orders and providers that have no edge at all.
    """

    order_idx: IntArray
    provider_idx: IntArray
    distance_m: FloatArray
    n_orders: int
    n_providers: int
    indptr: IntArray = field(default_factory=_empty_int)

    def __post_init__(self) -> None:
        if not (self.order_idx.shape == self.provider_idx.shape == self.distance_m.shape):
            raise ValueError("edge arrays must have the same length")
        if self.indptr.shape[0] != self.n_orders + 1:
            counts = np.bincount(self.order_idx, minlength=self.n_orders)
            indptr = np.zeros(self.n_orders + 1, dtype=np.intp)
            np.cumsum(counts, out=indptr[1:])
            object.__setattr__(self, "indptr", indptr)

    def __len__(self) -> int:
        return int(self.order_idx.shape[0])

    def for_order(self, i: int) -> tuple[IntArray, FloatArray]:
        """(provider positions, distances) of order ``i``, nearest first."""
        s = slice(int(self.indptr[i]), int(self.indptr[i + 1]))
        return self.provider_idx[s], self.distance_m[s]

    @classmethod
    def from_unsorted(
        cls,
        order_idx: IntArray,
        provider_idx: IntArray,
        distance_m: FloatArray,
        n_orders: int,
        n_providers: int,
    ) -> CandidateEdges:
        """Sort raw edges into canonical (order, distance, provider) order."""
        perm = np.lexsort((provider_idx, distance_m, order_idx))
        return cls(
            order_idx=np.ascontiguousarray(order_idx[perm], dtype=np.intp),
            provider_idx=np.ascontiguousarray(provider_idx[perm], dtype=np.intp),
            distance_m=np.ascontiguousarray(distance_m[perm], dtype=np.float64),
            n_orders=n_orders,
            n_providers=n_providers,
        )

    @classmethod
    def empty(cls, n_orders: int, n_providers: int) -> CandidateEdges:
        """No edges (no providers, no orders, or nobody in range)."""
        e = _empty_int()
        return cls(e, e.copy(), np.empty(0, dtype=np.float64), n_orders, n_providers)
