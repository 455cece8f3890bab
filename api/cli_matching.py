"""``taplive rematch``: re-match every pending order against current positions, now.

The same command the beat job runs every minute (``matching.rematch_all``), for operators:
``--dry-run`` to see what would change, ``--region lat,lon,radius_km`` to limit it to an area.
"""

from __future__ import annotations

import json
import math
import sys
import time
from datetime import UTC, datetime
from typing import Any

import click
from flask.cli import with_appcontext

from api.services import services
from domain import matching_service
from domain.matching_service import MatchingRules, RematchReport
from domain.provider_index import ProviderIndexHolder


def parse_region(_ctx: click.Context | None, _param: click.Parameter | None,
                 value: str | None) -> tuple[float, float, float] | None:
    """``lat,lon,radius_km`` -> (lat, lon, metres)."""
    if value is None:
        return None
    try:
        lat, lon, km = (float(part) for part in value.split(","))
    except ValueError as exc:
        raise click.BadParameter("expected LAT,LON,RADIUS_KM, e.g. 51.5,-0.12,25") from exc
    if not all(math.isfinite(v) for v in (lat, lon, km)):
        raise click.BadParameter("coordinates and radius must be finite numbers")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise click.BadParameter("latitude must be in [-90, 90] and longitude in [-180, 180]")
    if not 0 < km <= 20_038:
        raise click.BadParameter("radius_km must be in (0, 20038]")
    return lat, lon, km * 1000.0


def format_report(report: RematchReport) -> str:
    def metres(value: float | None) -> str:
        return "-" if value is None else f"{value:,.0f} m"

    rate = f"{100 * report.matched / report.orders:.1f}%" if report.orders else "-"
    lines = [
        f"re-match{' (dry run: nothing written)' if report.dry_run else ''}"
        f" at index version {report.index_version}",
        f"  orders      {report.orders:>8,}",
        f"  providers   {report.providers:>8,}",
        f"  matched     {report.matched:>8,}  ({rate})",
        f"  distance    mean {metres(report.mean_distance_m)}, p95 "
        f"{metres(report.p95_distance_m)}, total {metres(report.total_distance_m)}",
        f"  vs previous unchanged {report.unchanged:,}, changed {report.changed:,}, "
        f"new {report.new:,}, dropped {report.dropped:,}",
        f"  invitations {report.invitations:>8,} new",
        "  time        " + ", ".join(f"{k} {v * 1000:.1f} ms"
                                      for k, v in report.timings_s.items()),
    ]
    return "\n".join(lines)


@click.command("rematch")
@click.option("--dry-run", is_flag=True, help="Compute and report; write nothing.")
@click.option("--region", callback=parse_region, metavar="LAT,LON,RADIUS_KM",
              help="Only pending orders within this circle.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@with_appcontext
def rematch_command(dry_run: bool, region: tuple[float, float, float] | None,
                    as_json: bool) -> dict[str, Any]:
    """Re-match all pending orders against current provider positions (batch assignment)."""
    svc = services()
    registry = svc.presence
    rules = MatchingRules.from_settings(svc.settings)
    started = time.perf_counter()
    bar_cm: Any = click.progressbar(length=5, label="index", show_eta=False,
                                    file=sys.stderr)
    with bar_cm as bar:
        index = ProviderIndexHolder(
            registry, max_staleness_s=0, max_changes=svc.settings.matching_index_max_changes,
            offline_after_s=rules.offline_after_s).get()
        index_s = time.perf_counter() - started
        bar.update(1)

        def progress(phase: str, _done: int, _total: int) -> None:
            bar.label = phase
            bar.update(1)

        with svc.db.transaction() as session:
            report = matching_service.rematch(session, index, registry,
                                              datetime.now(UTC), rules, region=region,
                                              dry_run=dry_run, progress=progress)
    report.timings_s = {"index": round(index_s, 4)} | report.timings_s
    click.echo(json.dumps(report.as_dict(), default=str) if as_json else format_report(report))
    return report.as_dict()
