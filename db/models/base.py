"""Declarative base, the timestamp mixin and column helpers every model module uses."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Enum,
    Integer,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from db.types import UTCDateTime, enum_values, utcnow


class Base(DeclarativeBase):
    pass


class TimestampMixin:
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, nullable=False)
    # onupdate fires for ORM flushes and Core update() statements alike.
    updated_at: Mapped[datetime] = mapped_column(
        UTCDateTime, default=utcnow, onupdate=utcnow, nullable=False
    )


def enum_type(cls: Any, name: str) -> Enum:
    return Enum(cls, name=name, values_callable=enum_values, validate_strings=True)


def check_in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def bigint_pk() -> Mapped[int]:
    # SQLite only auto-increments INTEGER PRIMARY KEY.
    return mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                         autoincrement=True)
