"""``taplive areas``: manage the operating areas orders must fall inside (an operator's job,
done rarely, so a CLI rather than an API)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy.orm import Session

from api.services import services
from core.errors import DomainError
from domain import areas

areas_cli = AppGroup("areas", help="Operating areas (GeoJSON polygons) where orders are accepted.")


def _run(action: str, fn: Callable[[Session], str]) -> None:
    try:
        with services().db.transaction() as session:
            message = fn(session)
    except DomainError as exc:
        raise click.ClickException(f"{action}: {exc.message}") from exc
    click.echo(message)


@areas_cli.command("add")
@click.argument("name")
@click.argument("geojson_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def add(name: str, geojson_file: Path) -> None:
    """Add an active area from a GeoJSON Polygon file (a Feature's geometry also works)."""
    data = json.loads(geojson_file.read_text())
    geometry = data.get("geometry", data) if isinstance(data, dict) else data
    _run("add", lambda s: f"added {areas.add_area(s, name, geometry).name}")


@areas_cli.command("disable")
@click.argument("name")
def disable(name: str) -> None:
    """Stop accepting orders in an area (existing orders are unaffected)."""
    _run("disable", lambda s: f"disabled {areas.set_active(s, name, False).name}")


@areas_cli.command("enable")
@click.argument("name")
def enable(name: str) -> None:
    """Accept orders in an area again."""
    _run("enable", lambda s: f"enabled {areas.set_active(s, name, True).name}")


@areas_cli.command("list")
def list_command() -> None:
    """List areas; with no active area, orders are accepted everywhere."""
    def show(session: Session) -> str:
        rows = areas.list_areas(session)
        if not rows:
            return "no operating areas: orders are accepted everywhere"
        return "\n".join(f"{'active  ' if a.active else 'disabled'} {a.name}" for a in rows)

    _run("list", show)
