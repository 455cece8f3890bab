"""Migrations run up from empty, down to nothing and up again, on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from db import migrate
from db.session import make_engine
from tests.conftest import ADMIN_DATABASE_URL

TABLES = {"users", "live_stream_orders", "order_applications", "payment_transactions"}


def _roundtrip(url: str) -> dict[str, object]:
    engine = make_engine(url)
    try:
        assert TABLES.isdisjoint(inspect(engine).get_table_names())
        migrate.upgrade(engine)
        inspector = inspect(engine)
        assert set(inspector.get_table_names()) >= TABLES
        order_columns = {c["name"] for c in inspector.get_columns("live_stream_orders")}
        order_indexes = {i["name"] for i in inspector.get_indexes("live_stream_orders")}
        migrate.downgrade(engine, "base")
        assert TABLES.isdisjoint(inspect(engine).get_table_names())
        migrate.upgrade(engine)
        return {"columns": order_columns, "indexes": order_indexes}
    finally:
        engine.dispose()


def test_sqlite_migrates_from_empty(tmp_path: Path) -> None:
    result = _roundtrip(f"sqlite:///{tmp_path / 'fresh.sqlite3'}")
    assert "location_point" not in result["columns"]
    assert "idx_orders_lat_lon" in result["indexes"]


@pytest.fixture
def empty_pg_url() -> object:
    import uuid

    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"taplive_mig_{uuid.uuid4().hex[:8]}"
    admin = create_engine(ADMIN_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    yield make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
    admin.dispose()


def test_postgresql_migrates_from_empty(empty_pg_url: str) -> None:
    result = _roundtrip(empty_pg_url)
    assert {"location_point", "latitude", "longitude"} <= result["columns"]  # type: ignore[operator]
    engine = make_engine(empty_pg_url)
    with engine.connect() as conn:
        udt = conn.execute(text(
            "SELECT udt_name FROM information_schema.columns "
            "WHERE table_name='live_stream_orders' AND column_name='location_point'"
        )).scalar_one()
        index_def = conn.execute(text(
            "SELECT indexdef FROM pg_indexes WHERE indexname='idx_orders_location'"
        )).scalar_one()
        enum_values = conn.execute(text(
            "SELECT array_agg(enumlabel ORDER BY enumsortorder) FROM pg_enum e "
            "JOIN pg_type t ON t.oid = e.enumtypid WHERE t.typname='order_status_enum'"
        )).scalar_one()
    engine.dispose()
    assert udt == "geography"
    assert "USING gist" in index_def
    assert enum_values == ["pending", "accepted", "active", "completed", "cancelled", "disputed"]
