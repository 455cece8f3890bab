"""Result containers for candidate search.

Two shapes, because the two callers want different things:

* :class:`Candidates` - one order, a handful of providers, nearest first; what
  the "new order" path ranks and shows to a creator.
* :class:`CandidateEdges` - many orders at once as a flat edge list grouped
  by order (CSR layout); what batch assignment consumes without ever
  materialising one Python object per edge.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .geo import FloatArray

__all__ = ["CandidateEdges", "Candidates", "IntArray", "group_by_order"]

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


def group_by_order(order_idx: IntArray, n_orders: int) -> IntArray:
    """Stable permutation that groups edges by order.

    A full (order, distance) lexsort costs ~0.7 s per million edges on the
    2-core reference machine; a stable sort of the order key alone is a
    radix sort when the key fits 16 bits (~25 ms), so that is all we do.
    """
    if order_idx.shape[0] < 2 or bool(np.all(order_idx[1:] >= order_idx[:-1])):
        return np.arange(order_idx.shape[0], dtype=np.intp)
    key = order_idx.astype(np.uint16) if n_orders <= 1 << 16 else order_idx
    return np.argsort(key, kind="stable").astype(np.intp, copy=False)


def _empty_int() -> IntArray:
    return np.empty(0, dtype=np.intp)


@dataclass(frozen=True)
class CandidateEdges:
    """Order -> provider candidate edges for a batch of orders.

    Edges are grouped by ``order_idx`` (ascending), so ``indptr`` gives each
    order's slice CSR-style: order ``i`` owns edges ``indptr[i]:indptr[i+1]``.
    Within an order the edge order is unspecified (sorting a million edges
    per batch would cost more than solving the assignment); :meth:`for_order`
    returns one order's edges nearest first.  Each (order, provider) pair
    appears at most once when produced by the index.  ``n_orders`` and
    ``n_providers`` are the full problem sizes, including orders and
    providers without edges.
    """

    order_idx: IntArray
    provider_idx: IntArray
    distance_m: FloatArray
    n_orders: int
    n_providers: int
    indptr: IntArray = field(default_factory=_empty_int)

    def __post_init__(self) -> None:
        o = self.order_idx
        if not (o.shape == self.provider_idx.shape == self.distance_m.shape):
            raise ValueError("edge arrays must have the same length")
        if o.shape[0]:
            if int(o.min()) < 0 or int(o.max()) >= self.n_orders:
                raise ValueError("order_idx out of range")
            p = self.provider_idx
            if int(p.min()) < 0 or int(p.max()) >= self.n_providers:
                raise ValueError("provider_idx out of range")
            if not bool(np.all(o[1:] >= o[:-1])):
                raise ValueError("edges must be grouped by order; use CandidateEdges.build")
        if self.indptr.shape[0] != self.n_orders + 1:
            indptr = np.zeros(self.n_orders + 1, dtype=np.intp)
            np.cumsum(np.bincount(o, minlength=self.n_orders), out=indptr[1:])
            object.__setattr__(self, "indptr", indptr)

    def __len__(self) -> int:
        return int(self.order_idx.shape[0])

    def for_order(self, i: int) -> tuple[IntArray, FloatArray]:
        """(provider positions, distances) of order ``i``, nearest first.

        Ties are broken by provider position, as in :class:`Candidates`.
        """
        s = slice(int(self.indptr[i]), int(self.indptr[i + 1]))
        p, d = self.provider_idx[s], self.distance_m[s]
        perm = np.lexsort((p, d))
        return p[perm], d[perm]

    @classmethod
    def build(
        cls,
        order_idx: npt.ArrayLike,
        provider_idx: npt.ArrayLike,
        distance_m: npt.ArrayLike,
        n_orders: int,
        n_providers: int,
    ) -> CandidateEdges:
        """Build from edges in any order (groups them by order, stably)."""
        o = np.asarray(order_idx, dtype=np.intp).reshape(-1)
        p = np.asarray(provider_idx, dtype=np.intp).reshape(-1)
        d = np.asarray(distance_m, dtype=np.float64).reshape(-1)
        if not (o.shape == p.shape == d.shape):
            raise ValueError("edge arrays must have the same length")
        perm = group_by_order(o, n_orders)
        return cls(o[perm], p[perm], d[perm], n_orders, n_providers)

    @classmethod
    def empty(cls, n_orders: int, n_providers: int) -> CandidateEdges:
        """No edges (no providers, no orders, or nobody in range)."""
        e = _empty_int()
        return cls(e, e.copy(), np.empty(0, dtype=np.float64), n_orders, n_providers)
