"""Hostile input from the published OpenAPI document itself (issue 14): schemathesis generates
requests for every operation the document declares, in process against the WSGI app, with a real
user's token and with none, and every answer must be no 5xx, a status the operation declares, and
a body its schema allows (checked strictly by schemathesis's own ``response_schema_conformance``),
and no schema-valid request refused with a 400 (``positive_data_acceptance``: the document states
every limit it can; the few it cannot are named below with their reasons).

Bounded: ``EXAMPLES`` generated cases per operation and token (no shrinking), so the run stays
about a minute on a quiet machine. Every failure of every operation is collected before the
test fails, each with a curl command to replay it."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import redis
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.specs.openapi.checks import (
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from api import create_app
from tests import factories
from tests.api.openapi_contract import Contract, published_contract
from tests.auth_helpers import access_token
from tests.conftest import discard_committed_data, make_settings

#: Generated cases per operation and token: enough to hit every field's bounds and types.
EXAMPLES = 10
#: Operations that end the caller's token (or account).
SELF_ENDING = {"POST /api/v1/auth/logout", "POST /api/v1/auth/logout-all",
               "POST /api/v1/users/me/password", "DELETE /api/v1/users/me"}


#: Operations whose valid inputs only a signature (or a mailed secret) can tell: any value a
#: generator makes is rightly a 400, so ``positive_data_acceptance`` does not apply to them.
SIGNED_INPUTS = {
    "POST /api/v1/auth/password-reset/confirm",  # the mailed reset token
    "POST /api/v1/auth/email-verification/confirm",  # the mailed verification token
    "GET /api/v1/payouts/onboarding/refresh",  # the signed onboarding link's token
    "GET /api/v1/payouts/onboarding/return",
    "POST /api/v1/webhooks/stripe",  # Stripe-Signature over the body
    "POST /api/v1/webhooks/stripe/connect",
}
#: Refusals no JSON Schema can state, each documented where the field is: (error code, the
#: fields it names or None for any) -> why. Anything else a schema-valid request gets as a 400
#: is a limit the document hides, and fails the test.
UNDECLARABLE: dict[tuple[str, frozenset[str] | None], str] = {
    ("INVALID_CURSOR", None): "a cursor is signed: only the signature tells a valid one",
    ("WEAK_PASSWORD", None): "PASSWORD_MIN_LENGTH is a setting and guessability a score",
    ("VALIDATION_ERROR", frozenset({"from", "to"})): "the analytics window is cross-field",
    ("VALIDATION_ERROR", frozenset({"scheduledFor"})): "must be in the future (now-relative)",
    ("VALIDATION_ERROR", frozenset({"estimatedArrival"})): "must be in the future",
    ("VALIDATION_ERROR", frozenset({"recordedAt"})): "a location fix must not be in the future",
    # The size of a free-form object as serialized JSON (4096 / 16384 bytes): no JSON Schema
    # keyword bounds the bytes of a nested value (keys with a control character are refused
    # under "requirements.<key>", so they still fail the test).
    ("VALIDATION_ERROR", frozenset({"requirements"})): "at most 4096 bytes of JSON",
    ("VALIDATION_ERROR", frozenset({"profile"})): "at most 16384 bytes of JSON",
    ("VALIDATION_ERROR", frozenset({"paymentMethodId"})): "well-formed but unknown to Stripe",
    # 422: Stripe's verdict on a well-formed object it holds (e.g. an account id a generated
    # POST /providers/me/payout-account registered, which this platform did not create).
    ("PAYMENT_REJECTED", None): "the processor refused an object it holds",
}


def _undeclarable(response: Any) -> bool:
    if response.status_code not in (400, 422):
        return False
    error = response.json()["error"]
    fields = frozenset(error.get("details") or {})
    return ((error["code"], None) in UNDECLARABLE
            or any(code == error["code"] and named is not None and fields and fields <= named
                   for code, named in UNDECLARABLE))


def _declared_limits_only(ctx: Any, response: Any, case: Any) -> bool | None:
    """schemathesis's ``positive_data_acceptance`` (a schema-valid request is not refused with
    a 400), except where the document cannot state the rule (above)."""
    if f"{case.method.upper()} {case.operation.path}" in SIGNED_INPUTS or _undeclarable(response):
        return None
    return positive_data_acceptance(ctx, response, case)


def _strict_checker(contract: Contract) -> Any:
    def strictly_conforming(ctx: Any, response: Any, case: Any) -> bool | None:
        """The body against its declared schema made strict (tests/api/openapi_contract.py):
        no undocumented field, no missing one, no undeclared null."""
        responses = contract.doc["paths"][case.operation.path][case.method.lower()]["responses"]
        declared = responses.get(str(response.status_code), {})
        schema = declared.get("content", {}).get("application/json", {}).get("schema")
        if schema is None:  # an undeclared status: status_code_conformance says so
            return None
        contract.validate(schema, response.json())
        return True

    return strictly_conforming


@pytest.fixture(scope="module")
def fuzz_app(pg_url: str) -> Iterator[Flask]:
    """An app whose requests really commit (the production path), with the Stripe webhook
    secrets set: unset, the webhooks answer a deliberate 503 (not configured). Everything it
    wrote is truncated afterwards."""
    app = create_app(make_settings(pg_url, stripe_webhook_secret="whsec_fuzz",
                                   stripe_connect_webhook_secret="whsec_fuzz_connect"))
    yield app
    discard_committed_data(app)


@pytest.fixture(scope="module")
def checks(fuzz_app: Flask) -> list[Any]:
    return [not_a_server_error, status_code_conformance, response_schema_conformance,
            _declared_limits_only, _strict_checker(published_contract(fuzz_app))]


@pytest.fixture(scope="module")
def api_schema(fuzz_app: Flask) -> Any:
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", fuzz_app)


def _fuzz_operation(operation: Any, app: Flask, headers: dict[str, str],
                    checks: list[Any], failures: dict[str, str]) -> None:
    label = f"{operation.method.upper()} {operation.path}"

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(headers=headers or None))
    def run(case: Any) -> None:
        try:
            case.call_and_validate(app=app, checks=checks)
        except (Exception, FailureGroup) as exc:
            first = " ".join(str(exc).split())[:300]
            failures.setdefault(f"{label}: {first}", str(exc)[:3000])

    run()


def _fuzz(api_schema: Any, app: Flask, headers: dict[str, str], checks: list[Any]) -> list[str]:
    failures: dict[str, str] = {}
    operations = [result.ok() for result in api_schema.get_all_operations()]
    # The token's own end comes last: after a logout, a password change or an account
    # deletion every later request would only be a 401.
    operations.sort(key=lambda op: f"{op.method.upper()} {op.path}" in SELF_ENDING)
    for operation in operations:
        _fuzz_operation(operation, app, headers, checks, failures)
    return [f"{key}\n{detail}" for key, detail in failures.items()]


@pytest.mark.parametrize("role", [None, "creator", "provider", "admin"])
def test_every_operation_survives_hostile_input(
        fuzz_app: Flask, api_schema: Any, checks: list[Any], redis_client: redis.Redis,
        role: str | None) -> None:
    headers = {}
    if role is not None:
        traits = {"creator": {}, "provider": {"provider": True, "verified": True},
                  "admin": {"admin": True}}[role]
        with fuzz_app.extensions["taplive"].db.transaction() as session:
            factories.bind(session)
            try:
                user = factories.UserFactory(**traits)
            finally:
                factories.bind(None)
            headers = {"Authorization": f"Bearer {access_token(user, fuzz_app)}"}
    failures = _fuzz(api_schema, fuzz_app, headers, checks)
    assert not failures, f"{len(failures)} failures:\n\n" + "\n\n".join(failures)


def test_the_strict_check_fails_on_an_undeclared_null(fuzz_app: Flask) -> None:
    """The custom check can fail: a user whose non-nullable ``username`` is null."""
    contract = published_contract(fuzz_app)
    check = _strict_checker(contract)
    operation = SimpleNamespace(path="/api/v1/users/me")
    case = SimpleNamespace(operation=operation, method="GET")
    lie = {"success": True, "data": {"username": None}, "error": None, "meta": {}}
    response = SimpleNamespace(status_code=200, json=lambda: lie)
    with pytest.raises(AssertionError, match="username"):
        check(None, response, case)
