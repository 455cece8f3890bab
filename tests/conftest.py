"""Test wiring: a throwaway PostgreSQL/PostGIS database (and a SQLite file) migrated once per
session, one transaction rolled back per test, real Redis on a dedicated logical database."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api import create_app
from core.config import AppEnv, Settings, load_settings
from db import migrate
from db.session import make_engine, normalise_database_url
from tests import factories

ADMIN_DATABASE_URL = normalise_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
TEST_SECRET = "test-secret-key-0123456789abcdef0123456789"


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh database for this run, dropped at the end (so runs never see each other)."""
    name = f"taplive_test_{uuid.uuid4().hex[:10]}"
    admin = create_engine(ADMIN_DATABASE_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(ADMIN_DATABASE_URL).set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite:///{tmp_path_factory.mktemp('sqlite') / 'taplive.sqlite3'}"
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()
    return url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "app_env": AppEnv.TEST,
        "database_url": database_url,
        "redis_url": TEST_REDIS_URL,
        "secret_key": TEST_SECRET,
        "jwt_secret_key": TEST_SECRET + "-jwt",
        "log_format": "console",
        "log_level": "INFO",
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def app(pg_url: str) -> Flask:
    return create_app(make_settings(pg_url))


@pytest.fixture(scope="session")
def pg_engine(app: Flask) -> Engine:
    engine: Engine = app.extensions["taplive"].db.engine
    return engine


@pytest.fixture(scope="session")
def sqlite_engine(sqlite_url: str) -> Iterator[Engine]:
    engine = make_engine(sqlite_url)
    yield engine
    engine.dispose()


def _rolled_back_session(engine: Engine) -> Iterator[Session]:
    connection: Connection = engine.connect()
    outer = connection.begin()
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    factories.bind(session)
    try:
        yield session
    finally:
        factories.bind(None)
        session.close()
        outer.rollback()
        connection.close()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """The app's scoped session, bound to one connection whose transaction is rolled back."""
    database = app.extensions["taplive"].db
    connection = database.engine.connect()
    outer = connection.begin()
    database.bind_to_connection(connection)
    session = database.session()
    factories.bind(session)
    try:
        yield session
    finally:
        factories.bind(None)
        database.unbind()
        outer.rollback()
        connection.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """For data-layer tests that must hold on PostgreSQL and on SQLite (standalone mode)."""
    engine = request.getfixturevalue("pg_engine" if request.param == "postgresql"
                                     else "sqlite_engine")
    yield from _rolled_back_session(engine)


@pytest.fixture
def client(app: Flask, db_session: Session) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()
