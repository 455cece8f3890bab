"""The SQL that differs between PostgreSQL/PostGIS and SQLite (standalone mode), behind one
interface (``Backend``) whose implementation is chosen once, when ``make_engine`` creates the
engine: ``db.backends.postgres.PostgresBackend`` or ``db.backends.sqlite.SQLiteBackend``.

Nothing above ``db/`` asks which database it runs on: the query functions of ``db.queries``
delegate what differs to ``backend_of(session)``, and ``Database.queries`` is the same object.
Statement fragments that only compile differently use SQLAlchemy's ``@compiles`` instead
(``db.backends.constructs``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol
from weakref import WeakKeyDictionary

from sqlalchemy import ColumnElement, Connection, Dialect, Engine, Row
from sqlalchemy.orm import InstrumentedAttribute, Session

if TYPE_CHECKING:
    from db.models import Base
    from db.queries.orders import NearbyAfter, NearbyOrder
    from db.session import Database


class CreatedOrder(NamedTuple):
    """What ``Backend.insert_served_order`` wrote: the order's row, and the id of its
    ``order:created`` outbox row (the commit hook sends that row's follow-up at once and marks
    the id so the relay does not send it again: ``tasks.events``)."""

    order: Row[Any]
    outbox_id: int


class Backend(Protocol):
    """Named queries whose SQL (or whose driver path) depends on the database."""

    #: Read-only units of work may run in autocommit on a pooled connection (no BEGIN, no
    #: ROLLBACK round trips; see ``db.session._ReadRoutingSessionmaker``).
    autocommit_reads: bool

    def one_of(self, column: Any, values: Sequence[Any]) -> ColumnElement[bool]:
        """``column IN values``, spelled so that the statement's text does not depend on how
        many values there are (PostgreSQL: ``= ANY(array)``), for lists that can be long."""
        ...

    def point_is_served(self, session: Session, latitude: float, longitude: float) -> bool:
        """True when no area is active (operate everywhere) or an active area covers it."""
        ...

    def insert_served_order(self, session: Session, order: dict[str, Any],
                            history: dict[str, Any], message: dict[str, Any]
                            ) -> CreatedOrder | None:
        """Insert an order with its history and outbox rows if its location is served: the
        order's row (every column of ``live_stream_orders``) and the outbox row's id, or None
        when it is not."""
        ...

    def find_pending_near(self, session: Session, latitude: float, longitude: float,
                          radius_m: float, limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        """Pending orders within ``radius_m`` of a point, nearest first (ties by id), those
        after ``after``'s (key, id) only, in ``session``."""
        ...

    def read_pending_near(self, database: Database, latitude: float, longitude: float,
                          radius_m: float, limit: int, after: NearbyAfter | None = None
                          ) -> list[NearbyOrder]:
        """``find_pending_near`` for a read-only request, on the backend's fastest path."""
        ...

    def insert_ignoring_duplicates(self, session: Session, model: type[Base],
                                   rows: Sequence[dict[str, Any]],
                                   conflict_columns: Sequence[str]) -> list[Any]:
        """INSERT ``rows`` (column name -> value, every row the same columns) into ``model``'s
        table, ON CONFLICT (``conflict_columns``) DO NOTHING; the primary keys of the rows
        actually inserted."""
        ...

    def median_seconds_between(self, session: Session, start: InstrumentedAttribute[Any],
                               end: InstrumentedAttribute[Any],
                               conditions: Sequence[ColumnElement[bool]]) -> float | None:
        """Median of ``end - start`` in seconds over the orders matching ``conditions``."""
        ...


# Keyed by the engine's dialect object: an engine, its execution-option copies (the read-only
# reader) and every connection they lend share it, so whatever a session is bound to finds
# the backend its engine was created with.
_chosen: WeakKeyDictionary[Dialect, Backend] = WeakKeyDictionary()


def register(engine: Engine, backend: Backend) -> None:
    """Called once, by ``make_engine``, with the backend it chose for ``engine``."""
    _chosen[engine.dialect] = backend


def backend_for(bind: Engine | Connection) -> Backend:
    try:
        return _chosen[bind.dialect]
    except KeyError:
        raise RuntimeError("engine not created by db.session.make_engine") from None


def backend_of(session: Session) -> Backend:
    """The backend of the engine ``session`` is bound to."""
    return backend_for(session.get_bind())
