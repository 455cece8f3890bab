"""Column types that behave the same on PostgreSQL and on SQLite (standalone mode)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, DateTime, Dialect, Text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC in, timezone-aware UTC out, on every backend.

    PostgreSQL stores ``timestamptz``; SQLite has no time zones, so we store naive UTC text and
    re-attach UTC on the way out. Naive datetimes are refused: they are always a bug here.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# JSONB on PostgreSQL (indexable, compact), plain JSON text on SQLite.
JSONType = JSON().with_variant(JSONB(), "postgresql")

# A list of short strings: a real text[] on PostgreSQL (GIN-indexable), JSON on SQLite.
StringList = JSON().with_variant(ARRAY(Text()), "postgresql")


def utcnow() -> datetime:
    """The one clock for row timestamps (freezegun-friendly, unlike the database's now())."""
    return datetime.now(UTC)


def enum_values(enum_cls: Any) -> list[str]:
    """Store enum *values* (lower-case, as in the spec) rather than member names."""
    return [member.value for member in enum_cls]
