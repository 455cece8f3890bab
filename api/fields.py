"""Shared marshmallow fields and schema pieces (money, coordinates, pagination)."""

from __future__ import annotations

import math
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from api.smorest import Schema
from domain.money import MoneyError, format_minor, normalize_currency, to_minor


class Amount(fields.Field):
    """A money amount in: a decimal string ("25.50") or a JSON number; never a bool.

    Kept raw here: whether it is valid depends on the currency (JPY takes no decimals), so the
    schema converts it to minor units once both are known (see ``MoneyInputMixin``)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ma.ValidationError("Must be a decimal string or a number.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ma.ValidationError("Must be a finite number.")
        if isinstance(value, str) and len(value) > 40:
            raise ma.ValidationError("Too long.")
        return value


class Currency(fields.String):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalize_currency(text)
        except MoneyError as exc:
            raise ma.ValidationError(f"Unknown currency {text!r} (ISO 4217 code).") from exc


def minor_from(amount: Any, currency: str, field_name: str) -> int:
    """Convert a validated ``Amount`` to minor units or raise a per-field ValidationError."""
    try:
        return to_minor(amount, currency)
    except MoneyError as exc:
        raise ma.ValidationError({field_name: [exc.message]}) from exc


def money_out(minor: int | None, currency: str) -> str | None:
    return None if minor is None else format_minor(minor, currency)


class PaginationSchema(Schema):
    hasNextPage = fields.Boolean()
    hasPreviousPage = fields.Boolean()
    nextCursor = fields.String(allow_none=True)
    previousCursor = fields.String(allow_none=True)
    totalCount = fields.Integer(allow_none=True,
                                metadata={"description": "null for the nearby search"})


CURSOR_PATTERN = r"^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"


class PageArgsSchema(Schema):
    # Documented with its shape (itsdangerous' signed ``payload.signature``, both base64url):
    # a cursor of another shape is refused (400 INVALID_CURSOR) before any query.
    cursor = fields.String(load_default=None, validate=validate.Length(max=512),
                           metadata={"pattern": CURSOR_PATTERN,
                                     "description": "An opaque cursor from a previous page."})
    limit = fields.Integer(load_default=20, validate=validate.Range(1, 100))


def page_payload(page: Any, items: list[Any]) -> dict[str, Any]:
    return {
        "items": items,
        "pagination": {
            "hasNextPage": page.has_next_page,
            "hasPreviousPage": page.has_previous_page,
            "nextCursor": page.next_cursor,
            "previousCursor": page.previous_cursor,
            "totalCount": page.total_count,
        },
    }
