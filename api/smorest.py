"""The framework types, subclassed once: every blueprint and schema imports them from here.

``Blueprint`` wraps each success body in the envelope (and documents the wrapper in OpenAPI);
``Api`` renders every HTTP error in the envelope.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

from api.envelope import success


class ArgumentsParser(FlaskParser):
    # The spec: a validation failure is 400 VALIDATION_ERROR (webargs defaults to 422).
    DEFAULT_VALIDATION_STATUS = 400

    def _raw_load_json(self, req: Any) -> Any:
        # A pathologically deep document exhausts the parser's recursion (RecursionError, not
        # a JSONDecodeError): answer it as the malformed JSON it is (400), not a 500.
        try:
            return super()._raw_load_json(req)
        except RecursionError as exc:
            raise json.JSONDecodeError("JSON nested too deeply", "<deep>", 0) from exc


class Serialized(dict[str, Any]):
    """A body already in wire form (built by a hand-written serializer on a hot path). Response
    schemas pass it through untouched; they still document the shape in OpenAPI, and a test
    keeps each fast serializer equal to its schema."""


#: Control characters no text field accepts: NUL (PostgreSQL refuses it in text, a 500 before
#: this check) and the other C0 controls and DEL, which no form or human types (terminal
#: escapes, log forging). Tab, newline and carriage return stay allowed.
_CONTROLS = r"\x00-\x08\x0b\x0c\x0e-\x1f\x7f"
_FORBIDDEN_CHARACTERS = re.compile(f"[{_CONTROLS}]")
#: The same rule as the OpenAPI document states it on every string (api/declared_limits.py).
TEXT_PATTERN = f"^[^{_CONTROLS}]*$"
#: Text that must say something (stripped, it is not empty): one character not a space.
NON_BLANK_TEXT_PATTERN = f"^[^{_CONTROLS}]*[^{_CONTROLS}\\s][^{_CONTROLS}]*$"
#: Beyond any column of ours (BIGINT) and any amount or coordinate: refused before a field or
#: the database sees it.
LARGEST_INTEGER = 2**63 - 1


def _hostile(value: Any) -> str | None:
    """Why a decoded value may not enter at all, or None."""
    if isinstance(value, str):
        if _FORBIDDEN_CHARACTERS.search(value):
            return "Control characters are not allowed."
    elif isinstance(value, bool):
        return None
    elif isinstance(value, int):
        if abs(value) > LARGEST_INTEGER:
            return "Number out of range."
    elif isinstance(value, float) and not math.isfinite(value):
        return "Number out of range."
    return None


def _hostile_paths(value: Any, path: str, found: dict[str, list[str]]) -> None:
    """Walk a decoded body (iteratively bounded by the parser's own depth) collecting the
    paths of hostile values, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            child = f"{path}.{key}" if path else str(key)
            if (problem := _hostile(key)) is not None:
                found.setdefault(child, []).append(problem)
            _hostile_paths(item, child, found)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _hostile_paths(item, f"{path}.{index}" if path else str(index), found)
    elif (problem := _hostile(value)) is not None:
        found.setdefault(path or "_schema", []).append(problem)


class Schema(ma.Schema):
    """Base schema: unknown fields are rejected, so typos never pass silently; every string
    and number that enters is checked here, once, before any field sees it."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def _refuse_hostile_values(self, data: Any, **_: Any) -> Any:
        found: dict[str, list[str]] = {}
        _hostile_paths(data, "", found)
        if found:
            raise ma.ValidationError(found)
        return data

    def dump(self, obj: Any, *, many: bool | None = None) -> Any:
        if isinstance(obj, Serialized):
            return dict(obj)
        return super().dump(obj, many=many)


class MetaSchema(ma.Schema):
    timestamp = ma.fields.String()
    requestId = ma.fields.String()
    version = ma.fields.String()


class ErrorBodySchema(ma.Schema):
    code = ma.fields.String()
    message = ma.fields.String()
    details = ma.fields.Dict()


class ErrorEnvelopeSchema(ma.Schema):
    success = ma.fields.Boolean()
    data = ma.fields.Raw(allow_none=True)
    error = ma.fields.Nested(ErrorBodySchema)
    meta = ma.fields.Nested(MetaSchema)


_envelope_cache: dict[str, type[ma.Schema]] = {}


class Blueprint(flask_smorest.Blueprint):
    ARGUMENTS_PARSER = ArgumentsParser()

    def arguments(self, schema: Any, *args: Any, **kwargs: Any) -> Any:
        # webargs instantiates a schema *class* on every request (deep-copying its fields):
        # a few percent of a fast endpoint. Schemas keep no per-load state, so one instance
        # per endpoint serves every request.
        if isinstance(schema, type):
            schema = schema()
        return super().arguments(schema, *args, **kwargs)

    @staticmethod
    def _prepare_response_content(data: Any) -> Any:
        return success(data)

    @staticmethod
    def _make_doc_response_schema(schema: Any) -> Any:
        if schema is None:
            return None
        name = type(schema).__name__.removesuffix("Schema") + "EnvelopeSchema"
        if name not in _envelope_cache:
            _envelope_cache[name] = type(
                name,
                (ma.Schema,),
                {
                    "success": ma.fields.Boolean(),
                    "data": ma.fields.Nested(schema),
                    "error": ma.fields.Raw(allow_none=True),
                    "meta": ma.fields.Nested(MetaSchema),
                },
            )
        return _envelope_cache[name]


class Api(flask_smorest.Api):
    ERROR_SCHEMA = ErrorEnvelopeSchema
    DEFAULT_ERROR_RESPONSE_NAME = "DEFAULT_ERROR"

    def _register_error_handlers(self) -> None:
        # api.errors owns error rendering for the whole app (HTTP and domain errors alike).
        pass
