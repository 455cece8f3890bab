"""Engine and session wiring. One ``Database`` per process/app, never a module global.

Views and tasks borrow ``Database.session`` (a scoped session: one per thread, removed at the end
of every request and task); domain code receives the session as an argument.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session, sessionmaker

from core.geo import great_circle_m
from db import backends
from db.backends.postgres import PostgresBackend, json_loads
from db.backends.sqlite import SQLiteBackend

if TYPE_CHECKING:
    from db.queries.orders import NearbyAfter, NearbyOrder

log = logging.getLogger(__name__)


def normalise_database_url(url: str) -> str:
    """Accept the usual ``postgres://`` spellings but always drive PostgreSQL through psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _sqlite_haversine(lat1: Any, lon1: Any, lat2: Any, lon2: Any) -> float | None:
    if None in (lat1, lon1, lat2, lon2):
        return None
    return great_circle_m(float(lat1), float(lon1), float(lat2), float(lon2))


def _sqlite_begin(conn: Connection) -> None:
    # IMMEDIATE takes the write lock up front: a transaction that reads then writes can never
    # fail half-way with "database is locked" because another writer got in between. It
    # serialises transactions, which is fine for standalone mode (one machine, a few users).
    conn.exec_driver_sql("BEGIN IMMEDIATE")


def _on_sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs; SQLAlchemy's documented recipe is
    # to switch it off and emit BEGIN ourselves (see _sqlite_begin).
    dbapi_conn.isolation_level = None
    # deterministic=True lets SQLite use the function in indexes and skip re-evaluation.
    dbapi_conn.create_function("taplive_distance_m", 4, _sqlite_haversine, deterministic=True)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")  # API, worker and beat share the file
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def make_engine(url: str, *, pool_size: int = 10, statement_timeout_ms: int = 15_000,
                connect_timeout_s: int = 5) -> Engine:
    """The engine for ``url``, and the one place that chooses what differs between PostgreSQL
    and SQLite: connection setup here, queries in ``db.backends`` (registered with it)."""
    url = normalise_database_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 10, "check_same_thread": False})
        event.listen(engine, "connect", _on_sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
        backends.register(engine, SQLiteBackend())
        return engine
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip on every checkout. A connection that died is
        # invalidated on first use (SQLAlchemy's disconnect handling) and recycle bounds age.
        pool_pre_ping=False,
        pool_recycle=1800,
        # jsonb read through orjson (same values, several times faster): a matching pass
        # reads back hundreds of payloads (issue 16).
        json_deserializer=json_loads,
        connect_args={
            "connect_timeout": connect_timeout_s,
            # A runaway query must not hold a worker or a request forever.
            "options": f"-c statement_timeout={statement_timeout_ms} -c timezone=UTC",
        },
    )
    backends.register(engine, PostgresBackend())
    return engine


# ------------------------------------------------------------- per-transaction after-commit
# Work that must happen only once the transaction's data is durable (e.g. counting money that
# moved in a metric) is queued on the session and run after its outermost commit; a rollback
# drops it, so a retried task counts once, not once per attempt.
_PENDING = "after_commit_callbacks"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback()`` after ``session``'s current transaction commits (never if it rolls
    back). Callbacks must not touch the database; a failing one is logged, not raised."""
    session.info.setdefault(_PENDING, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_pending(session: Session) -> None:
    for callback in session.info.pop(_PENDING, []):
        try:
            callback()
        except Exception:
            log.exception("after-commit callback failed")


@event.listens_for(Session, "after_soft_rollback")
def _drop_pending(session: Session, previous_transaction: Any) -> None:
    if previous_transaction.parent is None:  # the outermost transaction, not a savepoint
        session.info.pop(_PENDING, None)
        session.info.pop(_NOTES, None)


# Facts a transaction records for the ``Database.on_commit`` hooks of the layer above (which
# own the clients the domain must not know, e.g. Redis), read once it has committed.
_NOTES = "commit_notes"


def note_for_commit(session: Session, topic: str, item: Any) -> None:
    """Tell this transaction's after-commit hooks about ``item`` (dropped on rollback)."""
    session.info.setdefault(_NOTES, {}).setdefault(topic, []).append(item)


def committed_notes(session: Session, topic: str) -> list[Any]:
    """In a ``Database.on_commit`` hook: the items noted under ``topic`` by what committed."""
    notes: list[Any] = session.info.get(_NOTES, {}).get(topic, [])
    return notes


#: True while the current unit of work only reads (the API sets it for GET requests).
read_only_var: ContextVar[bool] = ContextVar("taplive_read_only", default=False)


class _ReadRoutingSessionmaker(sessionmaker[Session]):
    """Sessions opened while ``read_only_var`` is set run on ``reader``: the same pool in
    autocommit, so no BEGIN before the first statement and no ROLLBACK when the connection goes
    back (two round trips of a ~3 ms GET). Under READ COMMITTED every statement takes its own
    snapshot anyway, so a read-only unit of work sees exactly what it would see inside a
    transaction. Only where the backend allows it (``autocommit_reads``: PostgreSQL; SQLite's
    transactions are BEGIN IMMEDIATE, see above), and never when sessions are bound to one
    connection (tests' rolled-back outer transaction)."""

    reader: Engine | None = None

    def __call__(self, **local_kw: Any) -> Session:
        if self.reader is not None and read_only_var.get():
            local_kw.setdefault("bind", self.reader)
        return super().__call__(**local_kw)


class Database:
    """Owns an engine, the session factory bound to it, and the after-commit hooks."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        #: The named queries that differ per database, as chosen by ``make_engine``.
        self.queries = backends.backend_for(engine)
        self._after_commit: list[Callable[[Session], None]] = []
        self.session = self._scoped(bind=engine)

    def _scoped(self, **options: Any) -> scoped_session[Session]:
        factory = _ReadRoutingSessionmaker(expire_on_commit=False, **options)
        if isinstance(options.get("bind"), Engine) and self.queries.autocommit_reads:
            factory.reader = options["bind"].execution_options(isolation_level="AUTOCOMMIT")
        event.listen(factory, "after_commit", self._fire_after_commit)
        return scoped_session(factory)

    def on_commit(self, hook: Callable[[Session], None]) -> None:
        """Run ``hook(session)`` after every successful commit (e.g. kick the outbox relay).
        Hooks must not touch the database; a failing hook is logged, never raised: the data is
        already committed and the sweeper will catch up."""
        self._after_commit.append(hook)

    def _fire_after_commit(self, session: Session) -> None:
        try:
            self._run_hooks(session)
        finally:
            session.info.pop(_NOTES, None)  # read by every hook, then gone with the transaction

    def _run_hooks(self, session: Session) -> None:
        for hook in self._after_commit:
            try:
                hook(session)
            except Exception:
                log.exception("after-commit hook failed")

    def bind_to_connection(self, connection: Connection) -> None:
        """Route every session through one connection (tests: an outer transaction rolled back
        at the end, with commits turned into savepoints)."""
        self.session.remove()
        self.session = self._scoped(bind=connection, join_transaction_mode="create_savepoint")

    def unbind(self) -> None:
        self.session.remove()
        self.session = self._scoped(bind=self.engine)

    @contextmanager
    def dbapi_read(self) -> Iterator[Any]:
        """A driver connection for one read-only statement, outside any ORM session (the
        nearby search, the API's hottest read: a session's transaction bookkeeping, connection
        wrapper and teardown were a tenth of its time). Straight from the pool, in autocommit;
        back to the pool after, always: sessions bound to one connection never see it (tests
        of what reads through here commit their data)."""
        pooled = self.engine.raw_connection()
        try:
            driver: Any = pooled.dbapi_connection
            driver.autocommit = True
            try:
                yield driver
            finally:
                driver.autocommit = False
        except self.engine.dialect.loaded_dbapi.OperationalError:
            pooled.invalidate()  # a dead connection must not go back to the pool
            raise
        finally:
            pooled.close()

    def find_pending_near(self, latitude: float, longitude: float, radius_m: float,
                          limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        """The nearby search for a read-only request, on the backend's fastest path (on
        PostgreSQL a driver cursor from ``dbapi_read``, outside the request's session)."""
        return self.queries.read_pending_near(self, latitude, longitude, radius_m, limit,
                                              after)

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A unit of work for tasks and commands: commit on success, roll back on any error."""
        session = self.session()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            self.session.remove()

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
