"""Geometry primitives: conversions, haversine and input validation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from matching import (
    EARTH_RADIUS_M,
    InvalidCoordinates,
    chord_to_distance,
    distance_to_chord,
    haversine_m,
    to_unit_vectors,
    validate_coordinates,
)
from matching.geo import HALF_CIRCUMFERENCE_M, validate_distance


def test_radius_is_postgis_mean_sphere() -> None:
    assert EARTH_RADIUS_M == 6371008.7714


def test_known_distances() -> None:
    quarter = math.pi * EARTH_RADIUS_M / 2
    assert haversine_m(0, 0, 0, 90)[0] == pytest.approx(quarter, rel=1e-12)
    assert haversine_m(0, 0, 90, 0)[0] == pytest.approx(quarter, rel=1e-12)
    assert haversine_m(0, 0, 0, 180)[0] == pytest.approx(HALF_CIRCUMFERENCE_M, rel=1e-9)
    # across the antimeridian: 0.2 degrees of equator, not 359.8
    assert haversine_m(0, 179.9, 0, -179.9)[0] == pytest.approx(
        math.radians(0.2) * EARTH_RADIUS_M, rel=1e-9
    )
    # all longitudes are the same point at a pole
    assert haversine_m(90, 0, 90, 123)[0] == pytest.approx(0.0, abs=1e-6)


def test_haversine_broadcasts() -> None:
    d = haversine_m(0.0, 0.0, np.array([0.0, 1.0, 2.0]), np.zeros(3))
    assert d.shape == (3,)
    assert np.all(np.diff(d) > 0)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, HALF_CIRCUMFERENCE_M))
def test_chord_roundtrip(d: float) -> None:
    c = distance_to_chord(d)
    assert 0.0 <= c <= 2.0
    assert chord_to_distance(c) == pytest.approx(d, rel=1e-9, abs=1e-3)


def test_chord_clamps_beyond_antipode() -> None:
    assert distance_to_chord(float("inf")) == pytest.approx(2.0)
    assert distance_to_chord(1e9) == pytest.approx(2.0)
    assert chord_to_distance(2.0 + 1e-15) == pytest.approx(HALF_CIRCUMFERENCE_M)


@settings(max_examples=200, deadline=None)
@given(st.floats(-90, 90), st.floats(-180, 180), st.floats(-90, 90), st.floats(-180, 180))
def test_chord_matches_haversine(la1: float, lo1: float, la2: float, lo2: float) -> None:
    a, b = to_unit_vectors(np.array([la1, la2]), np.array([lo1, lo2]))
    d = haversine_m(la1, lo1, la2, lo2)[0]
    assert chord_to_distance(np.linalg.norm(a - b)) == pytest.approx(d, rel=1e-7, abs=1.0)


def test_unit_vectors_are_unit_and_poles_collapse() -> None:
    xyz = to_unit_vectors(np.array([90.0, 90.0, -90.0, 0.0]), np.array([0.0, 77.0, 5.0, 180.0]))
    assert np.allclose(np.linalg.norm(xyz, axis=1), 1.0)
    assert np.allclose(xyz[0], xyz[1])
    lon_p = to_unit_vectors(np.array([0.0]), np.array([180.0]))
    lon_m = to_unit_vectors(np.array([0.0]), np.array([-180.0]))
    assert np.allclose(lon_p, lon_m)


@pytest.mark.parametrize(
    ("lat", "lon"),
    [
        (float("nan"), 0.0),
        (0.0, float("nan")),
        (float("inf"), 0.0),
        (0.0, float("-inf")),
        (90.0001, 0.0),
        (-91.0, 0.0),
        (0.0, 180.5),
        (0.0, -181.0),
    ],
)
def test_invalid_coordinates_rejected(lat: float, lon: float) -> None:
    with pytest.raises(InvalidCoordinates):
        validate_coordinates([1.0, lat], [1.0, lon])


def test_invalid_coordinates_is_value_error_and_names_row() -> None:
    with pytest.raises(ValueError, match=r"lat\[2\]"):
        validate_coordinates([0, 0, 95], [0, 0, 0])


def test_shape_and_type_errors() -> None:
    with pytest.raises(InvalidCoordinates):
        validate_coordinates([0.0, 1.0], [0.0])
    with pytest.raises(InvalidCoordinates):
        validate_coordinates([[0.0]], [[0.0]])
    with pytest.raises(InvalidCoordinates):
        validate_coordinates(["north"], [0.0])


def test_boundaries_accepted() -> None:
    lat, lon = validate_coordinates([90, -90, 0, 0], [180, -180, 180, -180])
    assert lat.dtype == np.float64 and lon.shape == (4,)
    lat, lon = validate_coordinates([], [])
    assert lat.shape == (0,)


def test_validate_distance() -> None:
    assert validate_distance([0.0, float("inf")], "r").tolist() == [0.0, float("inf")]
    with pytest.raises(InvalidCoordinates):
        validate_distance(-1.0, "r")
    with pytest.raises(InvalidCoordinates):
        validate_distance(float("nan"), "r")
