"""Test wiring: a throwaway PostgreSQL/PostGIS database (and a SQLite file) migrated once per
session, one transaction rolled back per test, real Redis on a dedicated logical database."""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery
from celery.contrib.testing.worker import start_worker
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Connection, Engine, create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from api import create_app
from core.config import AppEnv, Settings, load_settings
from core.embedded_redis import start_redis_server
from db import migrate
from db.session import Database, make_engine, normalise_database_url
from tests import factories
from workers.queues import ALL_QUEUES

ADMIN_DATABASE_URL = normalise_database_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
)
# Without TEST_REDIS_URL the run starts its own redis-server (pytest_configure below), so two
# runs on one machine (a developer's and CI's) never flush or consume each other's data.
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL", "")
_private_redis: subprocess.Popen[bytes] | None = None


def pytest_configure(config: pytest.Config) -> None:
    global TEST_REDIS_URL, _private_redis
    if not TEST_REDIS_URL:
        directory = Path(tempfile.mkdtemp(prefix="taplive-test-redis-"))
        _private_redis, url = start_redis_server(directory, persist=False)
        TEST_REDIS_URL = url.rsplit("/", 1)[0] + "/15"


def pytest_unconfigure(config: pytest.Config) -> None:
    if _private_redis is not None:
        _private_redis.terminate()
        _private_redis.wait(timeout=10)


def redis_db(number: int) -> str:
    """Another logical database on the run's Redis (tests that must survive others' flushes)."""
    return TEST_REDIS_URL.rsplit("/", 1)[0] + f"/{number}"
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


@contextmanager
def _factories_on(session: Session) -> Iterator[Session]:
    """``session`` for the factories (and the test) until the block ends, then closed."""
    factories.bind(session)
    try:
        yield session
    finally:
        factories.bind(None)
        session.close()


def _rolled_back_session(engine: Engine) -> Iterator[Session]:
    connection: Connection = engine.connect()
    outer = connection.begin()
    try:
        with _factories_on(Session(bind=connection, join_transaction_mode="create_savepoint",
                                   expire_on_commit=False)) as session:
            yield session
    finally:
        outer.rollback()
        connection.close()


@pytest.fixture
def db_session(app: Flask) -> Iterator[Session]:
    """A session for the test's own setup and assertions, on the same connection as the app's
    request sessions; that connection's outer transaction is rolled back at the end.

    The app gets its own session object (as in production: one per request), so a request
    that rolls back or closes its session never expires the test's objects."""
    database = app.extensions["taplive"].db
    connection = database.engine.connect()
    outer = connection.begin()
    database.bind_to_connection(connection)
    session = Session(bind=connection, join_transaction_mode="create_savepoint",
                      expire_on_commit=False)
    factories.bind(session)
    try:
        yield session
    finally:
        factories.bind(None)
        session.close()
        database.unbind()
        outer.rollback()
        connection.close()


@pytest.fixture(params=["postgresql", "sqlite"])
def any_session(request: pytest.FixtureRequest) -> Iterator[Session]:
    """For data-layer tests that must hold on PostgreSQL and on SQLite (standalone mode)."""
    engine = request.getfixturevalue("pg_engine" if request.param == "postgresql"
                                     else "sqlite_engine")
    yield from _rolled_back_session(engine)


class _ExpiringClient(FlaskClient):
    """After each request, the test's session forgets what it had loaded, so assertions read
    what the request committed rather than a stale identity map."""

    test_session: Session

    def open(self, *args: Any, **kwargs: Any) -> Any:
        response = super().open(*args, **kwargs)
        self.test_session.expire_all()
        return response


@pytest.fixture
def client(app: Flask, db_session: Session) -> FlaskClient:
    # Made directly, not through app.test_client_class: the app is shared by the session, and
    # setting its class would leave later tests' test_client() without a test_session.
    test_client = _ExpiringClient(app, app.response_class, use_cookies=True)
    test_client.test_session = db_session  # type: ignore[attr-defined]
    return test_client


@pytest.fixture(scope="session")
def sqlite_app(sqlite_url: str) -> Flask:
    """The app on the SQLite database that ``make run`` ships (standalone mode)."""
    return create_app(make_settings(sqlite_url))


@pytest.fixture(params=["postgresql", "sqlite"])
def committed_app(request: pytest.FixtureRequest) -> Iterator[Flask]:
    """The app on each database in turn, unbound: its requests commit and read through the
    production path (``Database.dbapi_read`` included). Emptied after each test."""
    app: Flask = request.getfixturevalue("app" if request.param == "postgresql"
                                         else "sqlite_app")
    yield app
    empty_tables(app)


@pytest.fixture
def committed_session(committed_app: Flask) -> Iterator[Session]:
    """The test's own session on ``committed_app``'s database; factories commit through it."""
    with _factories_on(Session(bind=committed_app.extensions["taplive"].db.engine,
                               expire_on_commit=False)) as session:
        yield session


class _CommittingClient(FlaskClient):
    """Before each request, the test's session commits what the test set up (the request
    runs on another connection, and on SQLite an open transaction holds the write lock);
    after it, the session forgets what it had loaded, so assertions read what committed."""

    test_session: Session

    def open(self, *args: Any, **kwargs: Any) -> Any:
        self.test_session.commit()
        response = super().open(*args, **kwargs)
        self.test_session.expire_all()
        return response


@pytest.fixture
def committed_client(committed_app: Flask, committed_session: Session) -> FlaskClient:
    """A client of ``committed_app`` (PostgreSQL, then SQLite): for HTTP tests that must hold
    on both databases through the same read path as production."""
    test_client = _CommittingClient(committed_app, committed_app.response_class,
                                    use_cookies=True)
    test_client.test_session = committed_session  # type: ignore[attr-defined]
    return test_client


def empty_tables(app: Flask) -> None:
    """Delete every row the test committed (the schema and alembic's version stay)."""
    from db.models import Base  # the package registers every table

    database = app.extensions["taplive"].db
    database.session.remove()
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):  # children before parents
            conn.execute(table.delete())


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(TEST_REDIS_URL, decode_responses=True)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def live_app(pg_url: str) -> Iterator[Flask]:
    """An app whose requests really commit (for concurrency and worker tests). Everything it
    wrote is truncated afterwards, so the rolled-back tests never see it."""
    app = create_app(make_settings(pg_url, db_pool_size=20))
    yield app
    discard_committed_data(app)


def discard_committed_data(app: Flask) -> None:
    """Truncate every table the app's committed tests wrote to, and close its connections."""
    truncate_all(app.extensions["taplive"].db)


def truncate_all(database: Database) -> None:
    """Truncate every table of ``database`` (PostgreSQL) and close its connections."""
    database.session.remove()
    with database.engine.begin() as conn:
        tables = conn.execute(text(
            "SELECT string_agg(quote_ident(tablename), ', ') FROM pg_tables "
            "WHERE schemaname = 'public' AND tablename NOT IN ('alembic_version', "
            "'spatial_ref_sys')")).scalar_one()
        conn.execute(text(f"TRUNCATE {tables} CASCADE"))
    database.engine.dispose()


@pytest.fixture
def live_worker(live_app: Flask) -> Iterator[Celery]:
    """A real Celery worker (in a thread, solo pool) on every queue of ``live_app``'s broker.
    Send tasks through the yielded app, never a module-level task: tests build several apps."""
    redis.Redis.from_url(TEST_REDIS_URL).flushdb()
    celery: Celery = live_app.extensions["celery"]
    with start_worker(celery, pool="solo", perform_ping_check=False, loglevel="WARNING",
                      queues=list(ALL_QUEUES), shutdown_timeout=20):
        yield celery


@pytest.fixture
def live_users(live_app: Flask) -> dict[str, object]:
    """Committed users for live tests: a creator, verified providers, an admin."""
    from db.models import User

    database = live_app.extensions["taplive"].db
    with database.transaction() as session:
        factories.bind(session)
        try:
            users = {
                "creator": factories.UserFactory(),
                "provider": factories.UserFactory(provider=True, verified=True),
                "rival": factories.UserFactory(provider=True, verified=True),
                "admin": factories.UserFactory(admin=True),
            }
        finally:
            factories.bind(None)
        ids = {name: user.id for name, user in users.items()}
    with database.transaction() as session:
        return {name: session.get(User, uid) for name, uid in ids.items()}
