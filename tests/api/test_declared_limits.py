"""The limits the OpenAPI document states are the ones the API enforces (issue 14): each is
written once and both declared and checked from there (api/declared_limits.py)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from api.fields import CURRENCIES_BY_EXPONENT, amount_schema
from api.smorest import NON_BLANK_TEXT_PATTERN, TEXT_PATTERN
from db.models import User
from domain.money import to_minor
from domain.users import USERNAME_PATTERN
from tests.auth_helpers import STRONG_PASSWORD


def _components(app: Flask) -> dict[str, Any]:
    return app.test_client().get("/api/v1/openapi.json").json["components"]["schemas"]


def test_the_document_states_the_username_rule_the_domain_checks(app: Flask) -> None:
    declared = _components(app)["Register"]["properties"]["username"]["pattern"]
    assert declared == USERNAME_PATTERN.pattern


@pytest.mark.parametrize("username", ["alice\n", "Deleted-alice", "_alice", "al"])
def test_a_username_outside_the_pattern_is_refused(client: FlaskClient, db_session: Session,
                                                   username: str) -> None:
    # "alice\n" passed before: the pattern's "$" also matches before a final newline.
    response = client.post("/api/v1/auth/register", json={
        "username": username, "email": "alice@example.com", "password": STRONG_PASSWORD,
        "role": "creator"})
    assert response.status_code == 400, response.json
    assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


def test_every_string_in_a_request_body_states_the_text_rule(app: Flask) -> None:
    schemas = _components(app)
    for name in ("Register", "Login", "OrderCreate", "Reason", "Resolve", "MessageCreate"):
        for field, prop in schemas[name]["properties"].items():
            if prop.get("type") == "string" and "enum" not in prop and "format" not in prop:
                assert "pattern" in prop, (name, field)


@pytest.mark.parametrize("pattern", [TEXT_PATTERN, NON_BLANK_TEXT_PATTERN])
@pytest.mark.parametrize("text", ["a\x00b", "\x1b[31m", "\x7f"])
def test_the_text_patterns_refuse_control_characters(pattern: str, text: str) -> None:
    assert re.search(pattern, text) is None


def test_a_blank_text_is_not_non_blank() -> None:
    assert re.search(NON_BLANK_TEXT_PATTERN, " \n\t ") is None
    assert re.search(NON_BLANK_TEXT_PATTERN, " ok\n") is not None


@pytest.mark.parametrize("exponent", sorted(CURRENCIES_BY_EXPONENT))
def test_every_declared_amount_is_accepted_in_its_currencies(exponent: int) -> None:
    """The amount a schema-following client sends for a currency of ``exponent`` decimals is
    one ``to_minor`` takes (positive_data_acceptance's promise, at the unit level)."""
    declared = amount_schema(exponent)["anyOf"]
    text, number = declared[0]["pattern"], declared[1]
    currency = CURRENCIES_BY_EXPONENT[exponent][0]

    @settings(max_examples=200, deadline=None, database=None)
    @given(amount=st.from_regex(text, fullmatch=True)
           | st.integers(number["minimum"], number["maximum"]))
    def accepted(amount: str | int) -> None:
        assert to_minor(amount, currency) > 0

    accepted()


@pytest.mark.parametrize(("amount", "currency"), [("0", "USD"), ("0.00", "USD"), ("1.5", "JPY"),
                                                  ("1.234", "USD"), ("10000000000", "USD")])
def test_amounts_the_api_refuses_are_outside_the_declaration(amount: str, currency: str) -> None:
    exponent = next(e for e, codes in CURRENCIES_BY_EXPONENT.items() if currency in codes)
    assert re.search(amount_schema(exponent)["anyOf"][0]["pattern"], amount) is None


def test_an_enum_narrowed_by_one_of_declares_only_the_accepted_values(app: Flask) -> None:
    status = _components(app)["VerificationDecision"]["properties"]["status"]
    assert status["enum"] == ["verified", "rejected"]
