"""The framework types, subclassed once: every blueprint and schema imports them from here.

``Blueprint`` wraps each success body in the envelope (and documents the wrapper in OpenAPI);
``Api`` renders every HTTP error in the envelope.
"""

from __future__ import annotations

from typing import Any

import flask_smorest
import marshmallow as ma
from webargs.flaskparser import FlaskParser

from api.envelope import success


class ArgumentsParser(FlaskParser):
    # The spec: a validation failure is 400 VALIDATION_ERROR (webargs defaults to 422).
    DEFAULT_VALIDATION_STATUS = 400


class Serialized(dict[str, Any]):
    """A body already in wire form (built by a hand-written serializer on a hot path). Response
    schemas pass it through untouched; they still document the shape in OpenAPI, and a test
    keeps each fast serializer equal to its schema."""


class Schema(ma.Schema):
    """Base schema: unknown fields are rejected, so typos never pass silently."""

    class Meta:
        unknown = ma.RAISE

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
