"""Keyset (cursor) pagination, the spec's ``items`` + ``pagination`` shape.

Cursors are the sort key of the boundary row, signed with the app secret (opaque to clients,
tamper-evident). Keyset paging is stable under concurrent inserts: a row inserted while a client
pages can never shift another row onto a second page or off the end, unlike OFFSET.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import Select, func, select, tuple_
from sqlalchemy.orm import InstrumentedAttribute, Session

from core.errors import ValidationFailed

T = TypeVar("T")
Direction = Literal["next", "prev"]


class InvalidCursor(ValidationFailed):
    code = "INVALID_CURSOR"


@dataclass(frozen=True)
class Page(Generic[T]):
    items: list[T]
    has_next_page: bool
    has_previous_page: bool
    next_cursor: str | None
    previous_cursor: str | None
    total_count: int | None  # None where counting costs more than the page (nearby)


class CursorCodec:
    """Signs and verifies cursors. ``salt`` namespaces them so a cursor of one list is refused by
    another."""

    def __init__(self, secret: str, salt: str = "cursor") -> None:
        self._serializer = URLSafeSerializer(secret, salt=salt)

    def encode(self, created_at: datetime, row_id: uuid.UUID, direction: Direction) -> str:
        return str(self._serializer.dumps([created_at.isoformat(), row_id.hex, direction]))

    def decode(self, cursor: str) -> tuple[datetime, uuid.UUID, Direction]:
        try:
            created, row_hex, direction = self._serializer.loads(cursor)
            if direction not in ("next", "prev"):
                raise ValueError(direction)
            return datetime.fromisoformat(created), uuid.UUID(hex=row_hex), direction
        except (BadSignature, ValueError, TypeError) as exc:
            raise _invalid() from exc

    # A list sorted by distance (the nearby search, nearest first) has a number where the
    # others have a time: the same signed ``[key, id, direction]``, so the same validation
    # and the same 400; a cursor of one kind is refused by the other (the key's type).
    def encode_distance(self, distance_m: float, row_id: uuid.UUID) -> str:
        return str(self._serializer.dumps([float(distance_m), row_id.hex, "next"]))

    def decode_distance(self, cursor: str) -> tuple[float, uuid.UUID]:
        try:
            distance, row_hex, direction = self._serializer.loads(cursor)
            if direction != "next" or not isinstance(distance, float) or distance < 0:
                raise ValueError(direction)
            return distance, uuid.UUID(hex=row_hex)
        except (BadSignature, ValueError, TypeError) as exc:
            raise _invalid() from exc


def _invalid() -> InvalidCursor:
    return InvalidCursor("The cursor is invalid or has been tampered with.",
                         details={"cursor": ["invalid cursor"]})


def paginate(
    session: Session,
    stmt: Select[T],
    *,
    created_col: InstrumentedAttribute[datetime],
    id_col: InstrumentedAttribute[uuid.UUID],
    codec: CursorCodec,
    limit: int,
    cursor: str | None = None,
) -> Page[T]:
    """Page through ``stmt`` newest first by ``(created_at, id)``.

    ``stmt`` is a plain filtered ``select(Model)`` without ORDER BY or LIMIT.
    """
    key = tuple_(created_col, id_col)
    # Count and probe on the key columns only: cheaper, and no ORM column list in a subquery.
    keys_only = stmt.with_only_columns(created_col, id_col).order_by(None)
    total = session.execute(select(func.count()).select_from(keys_only.subquery()))
    total_count = int(total.scalar_one())

    direction: Direction = "next"
    page_stmt = stmt
    if cursor:
        created, row_id, direction = codec.decode(cursor)
        page_stmt = stmt.where(key < (created, row_id) if direction == "next"
                               else key > (created, row_id))
    if direction == "next":
        page_stmt = page_stmt.order_by(created_col.desc(), id_col.desc())
    else:
        page_stmt = page_stmt.order_by(created_col.asc(), id_col.asc())
    rows: list[T] = list(session.scalars(page_stmt.limit(limit + 1)))
    overflow = len(rows) > limit
    rows = rows[:limit]
    if direction == "prev":
        rows.reverse()

    def _key(row: Any) -> tuple[datetime, uuid.UUID]:
        return getattr(row, created_col.key), getattr(row, id_col.key)

    def _exists(condition: Any) -> bool:
        return bool(session.scalar(select(keys_only.where(condition).exists())))

    if rows:
        first, last = _key(rows[0]), _key(rows[-1])
        if direction == "next":
            has_next = overflow
            has_prev = cursor is not None and _exists(key > first)
        else:
            has_prev = overflow
            has_next = _exists(key < last)
    else:
        # Only reachable when the rows around a cursor were deleted; the client restarts.
        has_next = has_prev = False
    return Page(
        items=rows,
        has_next_page=has_next,
        has_previous_page=has_prev,
        next_cursor=codec.encode(*last, "next") if rows and has_next else None,
        previous_cursor=codec.encode(*first, "prev") if rows and has_prev else None,
        total_count=total_count,
    )
