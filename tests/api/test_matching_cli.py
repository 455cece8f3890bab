"""``taplive rematch``: the operator's batch re-match, with dry run, region and report."""

from __future__ import annotations

import json

import pytest
import redis
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.cli import cli
from api.cli_matching import rematch_command
from db.models import OrderAssignment
from domain.presence_store import PresenceRegistry
from tests.domain.test_matching_service import LONDON, go_online, north
from tests.factories import OrderFactory, UserFactory


@pytest.fixture
def market(db_session: Session, redis_client: redis.Redis) -> None:
    registry = PresenceRegistry(redis_client)
    OrderFactory(latitude=LONDON[0], longitude=LONDON[1], service_radius=1000)
    OrderFactory(latitude=48.85, longitude=2.35, service_radius=1000)
    go_online(registry, UserFactory(provider=True, verified=True), *north(250))


def test_dry_run_reports_and_writes_nothing(app: Flask, market: None,
                                            db_session: Session) -> None:
    result = app.test_cli_runner().invoke(rematch_command, ["--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run: nothing written" in result.output
    for line in ("orders             2", "providers          1", "matched            1  (50.0%)",
                 "mean 250 m", "new 1"):
        assert line in result.output
    assert "index" in result.output and "solve" in result.output
    assert db_session.scalars(select(OrderAssignment)).all() == []


def test_run_with_a_region_and_json_output(app: Flask, market: None,
                                           db_session: Session) -> None:
    result = app.test_cli_runner().invoke(rematch_command,
                                          ["--region", f"{LONDON[0]},{LONDON[1]},5", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output.strip().splitlines()[-1])
    assert (report["orders"], report["providers"], report["matched"]) == (1, 1, 1)
    assert report["dry_run"] is False and report["invitations"] == 1
    assert set(report["timings_s"]) == {"index", "load", "candidates", "solve", "write"}
    assert len(db_session.scalars(select(OrderAssignment)).all()) == 1
    second = app.test_cli_runner().invoke(rematch_command, ["--json"])
    again = json.loads(second.output.strip().splitlines()[-1])
    assert (again["unchanged"], again["changed"], again["invitations"]) == (1, 0, 0)


@pytest.mark.parametrize("region", ["1,2", "a,b,c", "91,0,5", "0,181,5", "0,0,0", "0,0,nan",
                                    "0,0,30000"])
def test_bad_region_is_refused(app: Flask, region: str) -> None:
    result = app.test_cli_runner().invoke(rematch_command, ["--region", region])
    assert result.exit_code == 2
    assert "Invalid value for '--region'" in result.output


def test_registered_on_the_taplive_command() -> None:
    assert cli.get_command(None, "rematch") is rematch_command  # type: ignore[arg-type]
