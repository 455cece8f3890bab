"""Read-only units of work (GET requests) run in autocommit on PostgreSQL: no BEGIN, no
ROLLBACK round trips. Writes, tasks, SQLite and tests' bound sessions keep transactions."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask
from sqlalchemy import Connection, event, text

from db.session import Database, make_engine, read_only_var
from tests.auth_helpers import auth_headers


@pytest.fixture
def database(pg_url: str) -> Iterator[Database]:
    db = Database(make_engine(pg_url, pool_size=2))
    yield db
    db.session.remove()
    db.engine.dispose()


def _autocommits(db: Database, *, read_only: bool) -> bool:
    """Whether a session opened in this state runs its statements in autocommit."""
    token = read_only_var.set(read_only)
    try:
        connection = db.session().connection()
        if connection.dialect.name == "sqlite":
            return connection.get_isolation_level() == "AUTOCOMMIT"
        return bool(connection.connection.dbapi_connection.autocommit)  # type: ignore[union-attr]
    finally:
        db.session.remove()
        read_only_var.reset(token)


def test_read_only_sessions_autocommit_and_others_do_not(database: Database) -> None:
    assert _autocommits(database, read_only=True)
    # The pooled connection went back with its transactions restored.
    assert not _autocommits(database, read_only=False)
    assert _autocommits(database, read_only=True)


def test_sqlite_never_routes(sqlite_url: str) -> None:
    db = Database(make_engine(sqlite_url))
    try:
        assert not _autocommits(db, read_only=True)
    finally:
        db.engine.dispose()


def test_a_session_bound_to_one_connection_never_routes(database: Database) -> None:
    with database.engine.connect() as connection:
        outer = connection.begin()
        database.bind_to_connection(connection)
        try:
            token = read_only_var.set(True)
            try:
                assert database.session().connection() is connection
            finally:
                read_only_var.reset(token)
        finally:
            database.unbind()
            outer.rollback()


def test_get_requests_run_in_autocommit_and_writes_in_transactions(
        live_app: Flask, live_users: dict[str, object]) -> None:
    """On the real pool (committed data): every statement of a GET runs on a connection in
    autocommit (psycopg sends no BEGIN), every statement of a POST inside a transaction."""
    from db.models import User

    creator = live_users["creator"]
    assert isinstance(creator, User)
    engine = live_app.extensions["taplive"].db.engine
    autocommit: list[bool] = []

    def record(conn: Connection, *_args: object) -> None:
        autocommit.append(bool(conn.connection.dbapi_connection.autocommit))  # type: ignore[union-attr]

    event.listen(engine, "before_cursor_execute", record)
    try:
        headers = auth_headers(creator, live_app)
        client = live_app.test_client()
        body = {"title": "Fireworks", "location": {"latitude": 40.7, "longitude": -74.0},
                "serviceRadius": 500, "baseAmount": "25.00", "currency": "USD"}
        created = client.post("/api/v1/orders", json=body, headers=headers)
        assert created.status_code == 201
        assert autocommit and not any(autocommit)
        autocommit.clear()

        order_id = created.json["data"]["order"]["id"]
        read = client.get(f"/api/v1/orders/{order_id}", headers=headers)
        assert read.status_code == 200 and read.json["data"]["order"]["title"] == "Fireworks"
        listed = client.get("/api/v1/orders", headers=headers)
        assert [o["id"] for o in listed.json["data"]["items"]] == [order_id]
        assert autocommit and all(autocommit)
    finally:
        event.remove(engine, "before_cursor_execute", record)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM live_stream_orders")).scalar() == 1


def test_dbapi_read_lends_a_pooled_connection_in_autocommit(database: Database) -> None:
    with database.dbapi_read() as connection:
        assert connection.autocommit is True
        assert connection.execute("SELECT 1").fetchone() == (1,)
        lent = connection
    assert lent.autocommit is False and not lent.closed  # back in the pool, as it was
    with database.engine.connect() as again:  # the pool hands the same connection out again
        assert again.connection.dbapi_connection is lent


def test_dbapi_read_never_lends_a_bound_connection(database: Database) -> None:
    # Production's read path, whatever sessions are bound to: it reads what is committed, so
    # tests that go through it commit their data (tests/conftest.py ``committed_client``).
    with database.engine.connect() as connection:
        outer = connection.begin()
        database.bind_to_connection(connection)
        try:
            connection.execute(text("CREATE TEMP TABLE only_in_the_bound_one (x int)"))
            with database.dbapi_read() as lent:
                assert lent is not connection.connection.dbapi_connection
                assert lent.execute(
                    "SELECT to_regclass('pg_temp.only_in_the_bound_one')").fetchone() == (None,)
        finally:
            database.unbind()
            outer.rollback()
