"""A provider's position report as it enters, over REST or the socket: one schema, so both
ways in accept and refuse exactly the same input (docs/realtime.md, "Location over the
socket")."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

MAX_CLOCK_SKEW = timedelta(minutes=1)


def latitude(**kwargs: Any) -> fields.Float:
    return fields.Float(validate=validate.Range(-90.0, 90.0), allow_nan=False, **kwargs)


def longitude(**kwargs: Any) -> fields.Float:
    return fields.Float(validate=validate.Range(-180.0, 180.0), allow_nan=False, **kwargs)


class LocationUpdateSchema(ma.Schema):
    class Meta:
        unknown = ma.RAISE  # typos never pass silently

    latitude = latitude(required=True)
    longitude = longitude(required=True)
    accuracy = fields.Float(load_default=None, allow_none=True, allow_nan=False,
                            validate=validate.Range(0, 10_000))
    recordedAt = fields.AwareDateTime(load_default=None, allow_none=True)

    @ma.validates("recordedAt")
    def _not_in_future(self, value: datetime | None, **_: Any) -> None:
        if value is not None and value > datetime.now(UTC) + MAX_CLOCK_SKEW:
            raise ma.ValidationError("Must not be in the future.")
