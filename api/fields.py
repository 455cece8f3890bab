"""Shared marshmallow fields and schema pieces (money, coordinates, pagination)."""

from __future__ import annotations

import math
from typing import Any

import marshmallow as ma
from marshmallow import fields, validate

from api.smorest import Schema
from domain.currencies import EXPONENTS
from domain.money import MAX_MINOR_UNITS, MoneyError, format_minor, normalize_currency, to_minor


def amount_schema(exponent: int) -> dict[str, Any]:
    """The amounts ``to_minor`` takes in a currency of ``exponent`` decimals, as JSON Schema:
    a positive decimal string of at most that many decimals or a positive whole number, below
    ``MAX_MINOR_UNITS`` minor units (written once, in ``domain.money``)."""
    whole_digits = len(str(MAX_MINOR_UNITS)) - 1 - exponent  # below 10**(12 - exponent)
    whole = f"[1-9][0-9]{{0,{whole_digits - 1}}}"
    if exponent:
        # A fraction of the unit that is not zero: "0.5", "0.05", not "0.00".
        fraction = "|".join(f"0{{{k}}}[1-9][0-9]{{0,{exponent - 1 - k}}}"
                            for k in range(exponent))
        text = f"^(?:{whole}(?:\\.[0-9]{{1,{exponent}}})?|0\\.(?:{fraction}))$"
    else:
        text = f"^{whole}$"
    return {"anyOf": [{"type": "string", "pattern": text},
                      {"type": "integer", "minimum": 1,
                       "maximum": 10 ** whole_digits - 1}]}


#: Currencies by their number of decimals (USD 2, JPY 0, KWD 3, CLF 4).
CURRENCIES_BY_EXPONENT: dict[int, list[str]] = {}
for _code, _exponent in sorted(EXPONENTS.items()):
    CURRENCIES_BY_EXPONENT.setdefault(_exponent, []).append(_code)


def amount_with_currency(amount: str, currency: str, default: str | None) -> dict[str, Any]:
    """An object-level ``anyOf``: ``amount``'s decimals are those of ``currency`` (one branch
    per number of decimals). Without a currency the amount is in ``default`` (the order's
    currency when None: then only whole units are sure to fit)."""
    branches = []
    absent = EXPONENTS[default] if default else 0
    for exponent, codes in sorted(CURRENCIES_BY_EXPONENT.items()):
        branches.append({"required": [currency, amount], "properties": {
            currency: {"type": "string", "enum": codes}, amount: amount_schema(exponent)}})
    branches.append({"not": {"required": [currency]},
                     "properties": {amount: amount_schema(absent)}})
    return {"anyOf": branches}


class Amount(fields.Field):
    """A money amount in: a decimal string ("25.50") or a JSON number; never a bool.

    Kept raw here: whether it is valid depends on the currency (JPY takes no decimals), so the
    schema converts it to minor units once both are known (``minor_from``). Documented as an
    amount of any currency (``amount_schema`` of each number of decimals); a schema that pairs
    it with a currency narrows that with ``amount_with_currency``."""

    def __init__(self, **kwargs: Any) -> None:
        every = [branch for exponent in CURRENCIES_BY_EXPONENT
                 for branch in amount_schema(exponent)["anyOf"]]
        kwargs.setdefault("metadata", {})["anyOf"] = every
        kwargs["metadata"].setdefault(
            "description", "Decimals up to the currency's minor unit (USD 2, JPY 0).")
        super().__init__(**kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            raise ma.ValidationError("Must be a decimal string or a number.")
        if isinstance(value, float) and not math.isfinite(value):
            raise ma.ValidationError("Must be a finite number.")
        if isinstance(value, str) and len(value) > 40:
            raise ma.ValidationError("Too long.")
        return value


class FreeFormObject(fields.Dict):
    """A client's own JSON object (order requirements, a profile): any keys and values, under
    the base schema's rules, which ``JsonValue`` states (api/declared_limits.py)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(keys=fields.String(), **kwargs)


class Currency(fields.String):
    """An ISO 4217 code (any case); declared as the upper-case codes the API knows."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("metadata", {})["enum"] = sorted(EXPONENTS)
        super().__init__(**kwargs)

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
