"""Operating areas: where orders may be posted."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    String,
    Uuid,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.models.base import Base
from db.types import JSONType, UTCDateTime, utcnow


class OperatingArea(Base):
    """A polygon where orders may be posted. With none active, orders are accepted anywhere.

    The GeoJSON ring is the portable truth; PostgreSQL also has a generated ``geography`` column
    (migration 0003) for ``ST_Covers``; SQLite checks the ring in Python.
    """

    __tablename__ = "operating_areas"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    geojson: Mapped[dict[str, Any]] = mapped_column(JSONType)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
