"""What the base schema enforces on every value, stated in the OpenAPI document (issue 14).

The base schema's pre-load walk (``api.smorest``) refuses control characters in every string
and integers beyond BIGINT, whatever the field. The document says so in the same one place: an
apispec attribute function adds the allowed-characters ``pattern`` to every string field that
has no pattern of its own and BIGINT bounds to every integer without a range, and a plugin
merges a schema class's ``OPENAPI_EXTRA`` (object-level rules: ``minProperties``, ``oneOf``,
``anyOf``) into its component. A client (or schemathesis) that follows the document is never
refused a 400 by a rule it could not see.
"""

from __future__ import annotations

from typing import Any

import marshmallow as ma
from apispec import BasePlugin
from apispec.ext.marshmallow.common import resolve_schema_instance

from api.fields import FreeFormObject
from api.smorest import LARGEST_INTEGER, TEXT_PATTERN

_JSON_VALUE = {"$ref": "#/components/schemas/JsonValue"}
#: An object whose keys follow the text rule: JSON Schema's ``patternProperties`` (OpenAPI 3.0
#: has no keyword for keys; tools that do not know it ignore it, and the keys' rule is also in
#: the description of ``JsonValue``).
_FREE_FORM = {"patternProperties": {TEXT_PATTERN: _JSON_VALUE}, "additionalProperties": False}


def declare_base_rules(converter: Any, field: ma.fields.Field, **_: Any) -> dict[str, Any]:
    """Extra OpenAPI attributes for ``field`` (an apispec attribute function)."""
    if isinstance(field, ma.fields.Enum):
        # apispec lists every member of the enum; a OneOf narrows what is accepted.
        allowed = [v.choices for v in field.validators if isinstance(v, ma.validate.OneOf)]
        if allowed:
            return {"enum": [getattr(choice, "value", choice) for choice in allowed[0]]}
        return {}
    if isinstance(field, FreeFormObject):
        return _FREE_FORM
    has_pattern = "pattern" in field.metadata or any(hasattr(v, "regex")
                                                    for v in field.validators)
    if isinstance(field, ma.fields.String) and not has_pattern:
        return {"pattern": TEXT_PATTERN}
    if isinstance(field, ma.fields.Integer) and "minimum" not in field.metadata and not any(
            isinstance(v, ma.validate.Range) for v in field.validators):
        return {"minimum": -LARGEST_INTEGER, "maximum": LARGEST_INTEGER}
    return {}


class DeclaredLimits(BasePlugin):
    """Merges ``OPENAPI_EXTRA`` (a class attribute of a schema) into its component."""

    def schema_helper(self, name: str, definition: dict[str, Any], schema: Any = None,
                      **kwargs: Any) -> dict[str, Any] | None:
        if schema is None:
            return None
        extra = getattr(resolve_schema_instance(schema), "OPENAPI_EXTRA", None)
        return {**definition, **extra} if extra else None


def json_value_component() -> dict[str, Any]:
    """``JsonValue``: any JSON value whose strings, keys included, carry no control character
    and whose integers fit BIGINT: what a free-form object (order requirements, a profile)
    accepts."""
    return {"nullable": True, "description": (
        "Any JSON value; no string or key holds a control character other than tab, newline "
        "and carriage return; integers within 64-bit signed."), "anyOf": [
        {"type": "string", "pattern": TEXT_PATTERN},
        {"type": "number", "minimum": -LARGEST_INTEGER, "maximum": LARGEST_INTEGER},
        {"type": "boolean"},
        {"type": "array", "items": _JSON_VALUE},
        {"type": "object", **_FREE_FORM},
    ]}
