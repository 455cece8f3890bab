"""The ``taplive`` command: Flask's CLI (``routes``, ``shell``) plus our operational commands."""

from __future__ import annotations

import secrets

import click
from flask import Flask
from flask.cli import FlaskGroup

from api import create_app
from api.cli_areas import areas_cli
from api.cli_matching import rematch_command
from api.cli_rtmp import rtmp_command
from api.cli_streams import stream_cli
from api.services import services
from db import migrate as migrations
from domain.admins import ensure_admin


def _app() -> Flask:
    return create_app()


@click.group(cls=FlaskGroup, create_app=_app, add_default_commands=True)
def cli() -> None:
    """TapLive engine: operational commands."""


@cli.command("migrate")
def migrate_command() -> None:
    """Upgrade the database schema to the newest migration."""
    migrations.upgrade(services().db.engine)
    click.echo("database is up to date")


@cli.command("create-admin")
@click.option("--email", default="admin@taplive.local", show_default=True)
@click.option("--username", default="admin", show_default=True)
@click.option("--password", envvar="ADMIN_PASSWORD", default=None,
              help="Defaults to $ADMIN_PASSWORD, else a random one that is printed once.")
def create_admin_command(email: str, username: str, password: str | None) -> None:
    """Create the first admin account unless one exists."""
    password = password or secrets.token_urlsafe(12)
    with services().db.transaction() as session:
        admin, created = ensure_admin(session, email=email, username=username, password=password)
        if created:
            click.echo(f"admin created: {admin.email} / {password}")
        else:
            click.echo(f"an admin already exists: {admin.email} (password unchanged)")


@cli.command("standalone", with_appcontext=False)
@click.option("--port", default=8000, envvar="PORT", show_default=True)
@click.option("--check", is_flag=True,
              help="Start everything, prove API, worker and beat work, then stop (smoke test).")
def standalone_command(port: int, check: bool) -> None:
    """Run API, worker, beat (and Flower) on embedded SQLite and Redis: no servers needed."""
    from workers.standalone import run_standalone

    raise SystemExit(run_standalone(port=port, check=check))


cli.add_command(rematch_command)  # taplive rematch [--dry-run] [--region lat,lon,km]
cli.add_command(areas_cli)  # taplive areas add|list|enable|disable
cli.add_command(stream_cli)  # taplive stream publish|stop ORDER (no nginx: drives the callbacks)
cli.add_command(rtmp_command)  # taplive rtmp: nginx-rtmp in the foreground
