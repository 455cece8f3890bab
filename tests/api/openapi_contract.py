"""Hold the published OpenAPI document to what the API actually sends.

``Contract(doc).check(response, method, path)`` validates a real response body against the
schema the document declares for that operation and status, made strict on the way: every
declared property is required (nothing documented may be missing), no other property is
allowed (nothing undocumented may be sent), OpenAPI 3.0's ``nullable`` becomes JSON Schema's
``null`` type (nothing declared non-null may be null), and ``uuid`` / ``date-time`` formats are
checked (a date-time must be ISO 8601 with its offset)."""

from __future__ import annotations

import copy
from datetime import datetime
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from jsonschema import Draft7Validator, FormatChecker
from werkzeug.test import TestResponse

FORMATS = FormatChecker(["uuid"])


@FORMATS.checks("date-time", raises=ValueError)
def _aware_iso(value: object) -> bool:
    return not isinstance(value, str) or datetime.fromisoformat(value).utcoffset() is not None


def strict(node: Any) -> Any:
    """The document with every schema in it made strict (see the module docstring)."""
    if isinstance(node, list):
        return [strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: strict(value) for key, value in node.items()}
    if isinstance(out.get("properties"), dict):
        out["required"] = sorted(out["properties"])
        out.setdefault("additionalProperties", False)
    if out.pop("nullable", False):
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        elif out:  # a $ref or a combination: its siblings would be ignored, so wrap it
            out = {"anyOf": [out, {"type": "null"}]}
    return out


class Contract:
    def __init__(self, doc: dict[str, Any]) -> None:
        self.doc = strict(copy.deepcopy(doc))
        self.checked: set[tuple[str, str]] = set()

    def schema_of(self, method: str, path: str, status: int) -> dict[str, Any]:
        operation = self.doc["paths"][path][method.lower()]
        declared = operation["responses"][str(status)]  # an undeclared status fails here
        schema: dict[str, Any] = declared["content"]["application/json"]["schema"]
        return schema

    def validate(self, schema: dict[str, Any], instance: Any) -> None:
        validator = Draft7Validator({**schema, "components": self.doc["components"]},
                                    format_checker=FORMATS)
        errors = [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
                  for e in validator.iter_errors(instance)]
        assert not errors, "the response does not match its OpenAPI schema:\n" + "\n".join(
            errors)

    def check(self, response: TestResponse, method: str, path: str) -> dict[str, Any]:
        """Validate ``response`` (of the operation ``method`` ``path``, the path as documented,
        e.g. ``/api/v1/orders/{order_id}``) and return its ``data``."""
        assert response.status_code < 300, response.json
        self.validate(self.schema_of(method, path, response.status_code), response.json)
        self.checked.add((method.lower(), path))
        data: dict[str, Any] = response.json["data"]
        return data

    def component(self, name: str, instance: Any) -> None:
        """Validate ``instance`` against the component schema ``name`` (e.g. ``Order``)."""
        self.validate({"$ref": f"#/components/schemas/{name}"}, instance)


def published_contract(app: Flask) -> Contract:
    """The contract of the document the app serves at ``/api/v1/openapi.json`` (read with a
    plain client: the per-test client class of tests/conftest.py needs a test's session)."""
    response = FlaskClient(app, app.response_class).get("/api/v1/openapi.json")
    assert response.status_code == 200
    return Contract(response.json)
