"""`taplive areas`: operators define where orders are accepted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from api.cli import cli
from db.models import OperatingArea

RING = [[2.2, 48.8], [2.5, 48.8], [2.5, 48.95], [2.2, 48.95], [2.2, 48.8]]


@pytest.fixture
def runner(app: Flask, db_session: Session) -> object:
    return app.test_cli_runner()


def _write(tmp_path: Path, data: object) -> str:
    path = tmp_path / "area.geojson"
    path.write_text(json.dumps(data))
    return str(path)


def test_add_list_disable(runner: object, tmp_path: Path, db_session: Session) -> None:
    invoke = runner.invoke  # type: ignore[attr-defined]
    assert "everywhere" in invoke(cli, ["areas", "list"]).output
    feature = {"type": "Feature", "geometry": {"type": "Polygon", "coordinates": [RING]}}
    result = invoke(cli, ["areas", "add", "Paris", _write(tmp_path, feature)])
    assert result.exit_code == 0, result.output
    assert "active   Paris" in invoke(cli, ["areas", "list"]).output
    again = invoke(cli, ["areas", "add", "Paris", _write(tmp_path, feature)])
    assert again.exit_code != 0 and "exists" in again.output
    assert invoke(cli, ["areas", "disable", "Paris"]).exit_code == 0
    assert "disabled Paris" in invoke(cli, ["areas", "list"]).output
    assert db_session.query(OperatingArea).count() == 1


@pytest.mark.parametrize("geometry", [
    {"type": "Point", "coordinates": [2.3, 48.8]},
    {"type": "Polygon", "coordinates": [RING[:-1]]},  # not closed
    {"type": "Polygon", "coordinates": [[[200, 0], [1, 0], [1, 1], [200, 0]]]},
    {"type": "Polygon", "coordinates": []},
])
def test_bad_polygons_are_refused(runner: object, tmp_path: Path, geometry: object,
                                  db_session: Session) -> None:
    result = runner.invoke(cli, ["areas", "add", "Bad", _write(tmp_path, geometry)])  # type: ignore[attr-defined]
    assert result.exit_code != 0 and "GeoJSON" in result.output
    assert db_session.query(OperatingArea).count() == 0
