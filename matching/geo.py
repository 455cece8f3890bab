"""Spherical geometry primitives for the matching engine.

Everything here works on a sphere of radius :data:`EARTH_RADIUS_M`, the same
sphere PostGIS uses for ``ST_Distance(..., use_spheroid => false)``, so the
distances the engine reports agree with what the database would compute.

Why unit vectors: a great-circle distance ``d`` on the sphere maps one-to-one
(monotonically, for ``0 <= d <= pi R``) onto the straight-line *chord* between
the two points' 3-D unit vectors, ``chord = 2 sin(d / 2R)``.  A Euclidean
radius query in 3-D is therefore an *exact* great-circle radius query, with no
special cases at the antimeridian (lon +-180 are the same vector) or at the
poles (all longitudes collapse to one vector), unlike a planar lat/lon index.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

__all__ = [
    "EARTH_RADIUS_M",
    "HALF_CIRCUMFERENCE_M",
    "FloatArray",
    "InvalidCoordinates",
    "as_float_array",
    "chord_to_distance",
    "distance_to_chord",
    "haversine_m",
    "to_unit_vectors",
    "validate_coordinates",
    "validate_distance",
]

EARTH_RADIUS_M: float = 6371008.7714
"""Mean Earth radius (IUGG R1) in metres; PostGIS' sphere for use_spheroid=false."""

HALF_CIRCUMFERENCE_M: float = float(np.pi * EARTH_RADIUS_M)
"""Largest possible great-circle distance (antipodal points)."""

FloatArray = npt.NDArray[np.float64]


class InvalidCoordinates(ValueError):
    """Raised when coordinates are NaN, infinite, out of range or mis-shaped.

    Raised *before* anything reaches a KD-tree: cKDTree silently accepts NaN
    and then returns garbage (NaN compares false to every radius), which would
    turn bad upstream data into "no provider nearby" instead of an error.
    """


def as_float_array(values: npt.ArrayLike, name: str) -> FloatArray:
    """Return ``values`` as a 1-D float64 array (scalars become length 1).

    Raises :class:`InvalidCoordinates` for anything that is not numeric or is
    more than one-dimensional, so callers get one exception type for bad input.
    """
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidCoordinates(f"{name} is not numeric: {exc}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InvalidCoordinates(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def validate_coordinates(lat: npt.ArrayLike, lon: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    """Validate and normalise latitude/longitude in degrees.

    Returns two 1-D float64 arrays of equal length.  Rejects NaN/inf, latitude
    outside [-90, 90], longitude outside [-180, 180] and length mismatches with
    :class:`InvalidCoordinates`; the message names the first offending row so
    the bad record can be found upstream.
    """
    lat_a = as_float_array(lat, "lat")
    lon_a = as_float_array(lon, "lon")
    if lat_a.shape != lon_a.shape:
        raise InvalidCoordinates(
            f"lat and lon lengths differ: {lat_a.shape[0]} != {lon_a.shape[0]}"
        )
    for name, arr, bound in (("lat", lat_a, 90.0), ("lon", lon_a, 180.0)):
        # ~(|x| <= bound) is True for NaN as well as for out-of-range values.
        bad = ~(np.abs(arr) <= bound)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            kind = "non-finite" if not np.isfinite(arr[i]) else "out of range"
            raise InvalidCoordinates(
                f"{name}[{i}] = {arr[i]!r} is {kind} (must be within +-{bound:g}); "
                f"{int(bad.sum())} invalid value(s) in total"
            )
    return lat_a, lon_a


def validate_distance(values: npt.ArrayLike, name: str) -> FloatArray:
    """Validate non-negative distances in metres (``inf`` means unlimited).

    NaN and negative values are rejected with :class:`InvalidCoordinates`
    because a NaN radius would silently match nothing.
    """
    arr = as_float_array(values, name)
    bad = np.isnan(arr) | (arr < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InvalidCoordinates(f"{name}[{i}] = {arr[i]!r} must be >= 0 (inf allowed)")
    return arr


def to_unit_vectors(lat: FloatArray, lon: FloatArray) -> FloatArray:
    """Convert validated degrees to an ``(n, 3)`` array of unit vectors.

    Written with ``out=`` buffers because this runs on a million providers at
    every index rebuild and temporaries would double the memory traffic.
    """
    n = lat.shape[0]
    lat_r = np.radians(lat)
    lon_r = np.radians(lon)
    cos_lat = np.cos(lat_r)
    xyz = np.empty((n, 3), dtype=np.float64)
    np.multiply(cos_lat, np.cos(lon_r), out=xyz[:, 0])
    np.multiply(cos_lat, np.sin(lon_r), out=xyz[:, 1])
    np.sin(lat_r, out=xyz[:, 2])
    return xyz


def distance_to_chord(distance_m: npt.ArrayLike) -> FloatArray:
    """Great-circle distance (m) -> chord length on the unit sphere.

    Distances beyond half the circumference are clamped to the antipode
    (chord 2), so ``inf`` means "the whole sphere".
    """
    d = np.minimum(np.asarray(distance_m, dtype=np.float64), HALF_CIRCUMFERENCE_M)
    return np.asarray(2.0 * np.sin(d / (2.0 * EARTH_RADIUS_M)), dtype=np.float64)


def chord_to_distance(chord: npt.ArrayLike) -> FloatArray:
    """Chord length on the unit sphere -> great-circle distance (m).

    The argument of arcsin is clipped to [0, 1] because a chord computed in
    floating point can exceed 2 by an ulp for antipodal points.
    """
    c = np.clip(np.asarray(chord, dtype=np.float64) / 2.0, 0.0, 1.0)
    return np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(c), dtype=np.float64)


def haversine_m(
    lat1: npt.ArrayLike, lon1: npt.ArrayLike, lat2: npt.ArrayLike, lon2: npt.ArrayLike
) -> FloatArray:
    """Vectorised haversine great-circle distance in metres (broadcasting).

    Used by the brute-force baseline; the index works on unit vectors, which
    is equivalent and cheaper once vectors are precomputed.
    """
    p1 = np.radians(np.asarray(lat1, dtype=np.float64))
    p2 = np.radians(np.asarray(lat2, dtype=np.float64))
    dphi = p2 - p1
    dlmb = np.radians(np.asarray(lon2, dtype=np.float64) - np.asarray(lon1, dtype=np.float64))
    a = np.sin(dphi / 2.0) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dlmb / 2.0) ** 2
    # atleast_1d: scalar inputs give a length-1 array, like every other helper here.
    return np.atleast_1d(
        np.asarray(2.0 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0.0, 1.0))), np.float64)
    )
