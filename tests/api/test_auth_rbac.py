"""Role x endpoint matrix: each role can do exactly what it may, and nothing else.

Probe endpoints guarded by each permission (and by ``verified=True``) prove the decorator and
the role table together; the account endpoints are checked directly. The expectations are
written out here, independently of ``domain.permissions``, so a change to the table that is not
also made here fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask.views import MethodView
from sqlalchemy.orm import Session

from api import create_app
from api.auth import authenticated, current_user
from api.smorest import Blueprint
from domain.permissions import Permission
from tests.auth_helpers import auth_headers
from tests.conftest import make_settings
from tests.factories import UserFactory

ROLES: dict[str, dict[str, bool]] = {
    "creator": {},
    "provider": {"provider": True},
    "verified provider": {"provider": True, "verified": True},
    "both": {"both": True},
    "verified both": {"both": True, "verified": True},
    "admin": {"admin": True},
}
EVERYONE = set(ROLES)
ALLOWED: dict[str, set[str]] = {
    "create_orders": {"creator", "both", "verified both"},
    "apply_orders": {"provider", "verified provider", "both", "verified both"},
    "view_analytics": EVERYONE,
    "verify_users": {"admin"},
    "resolve_disputes": {"admin"},
    "manage_users": {"admin"},
    "apply_verified": {"verified provider", "verified both"},
    "signed_in": EVERYONE,
}


def _probe(blp: Blueprint, name: str, *permissions: Permission,
           verified: bool = False) -> type[MethodView]:
    @authenticated(*permissions, verified=verified)
    @blp.response(200)
    def get(self: MethodView) -> dict[str, Any]:
        return {"probe": name, "user": str(current_user().id)}

    return type(f"Probe_{name}", (MethodView,), {"get": get})


@pytest.fixture(scope="module")
def rbac_app(pg_url: str) -> Flask:
    app = create_app(make_settings(pg_url))
    blp = Blueprint("rbac_probe", __name__)
    for permission in Permission:
        blp.route(f"/{permission}", endpoint=str(permission))(
            _probe(blp, str(permission), permission))
    blp.route("/apply_verified", endpoint="apply_verified")(
        _probe(blp, "apply_verified", Permission.APPLY_ORDERS, verified=True))
    blp.route("/signed_in", endpoint="signed_in")(_probe(blp, "signed_in"))
    app.register_blueprint(blp, url_prefix="/api/v1/test-rbac")
    return app


@pytest.fixture
def rbac(rbac_app: Flask, db_session: Session) -> Iterator[FlaskClient]:
    """A client of the probe app, reading the test's (rolled back) transaction."""
    database = rbac_app.extensions["taplive"].db
    database.bind_to_connection(db_session.connection())
    try:
        yield rbac_app.test_client()
    finally:
        database.unbind()


def test_the_matrix_covers_every_permission() -> None:
    assert {str(p) for p in Permission} | {"apply_verified", "signed_in"} == set(ALLOWED)


@pytest.mark.parametrize("role", list(ROLES))
def test_role_by_guarded_endpoint(rbac_app: Flask, rbac: FlaskClient, role: str) -> None:
    user = UserFactory(**ROLES[role])
    headers = auth_headers(user, rbac_app)
    for probe, allowed in ALLOWED.items():
        response = rbac.get(f"/api/v1/test-rbac/{probe}", headers=headers)
        if role in allowed:
            assert response.status_code == 200, (role, probe, response.json)
            assert response.json["data"]["user"] == str(user.id)
        else:
            assert response.status_code == 403, (role, probe, response.json)
            expected = ("PROVIDER_NOT_VERIFIED"
                        if probe == "apply_verified" and role in ("provider", "both")
                        else "FORBIDDEN")
            assert response.json["error"]["code"] == expected


def test_anonymous_gets_401_everywhere(rbac: FlaskClient) -> None:
    for probe in ALLOWED:
        assert rbac.get(f"/api/v1/test-rbac/{probe}").status_code == 401


@pytest.mark.parametrize("role", list(ROLES))
def test_role_by_account_endpoint(client: FlaskClient, db_session: Session, role: str) -> None:
    user = UserFactory(**ROLES[role])
    target = UserFactory(provider=True)
    headers = auth_headers(user)
    db_session.commit()  # survive the rollback of the 403s below
    is_admin = role == "admin"
    cases = [
        (client.get("/api/v1/users/me", headers=headers), True),
        (client.get("/api/v1/users/me/export", headers=headers), True),
        (client.get("/api/v1/admin/users", headers=headers), is_admin),
        (client.post(f"/api/v1/admin/users/{target.id}/verification", headers=headers,
                     json={"status": "verified"}), is_admin),
    ]
    for response, allowed in cases:
        assert response.status_code == (200 if allowed else 403), (role, response.json)


def test_openapi_documents_bearer_security(rbac: FlaskClient) -> None:
    spec = rbac.get("/api/v1/openapi.json").json
    assert spec["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    me = spec["paths"]["/api/v1/users/me"]["get"]
    assert me["security"] == [{"bearerAuth": []}] and "401" in me["responses"]
    admin = spec["paths"]["/api/v1/admin/users"]["get"]
    assert "403" in admin["responses"] and admin["x-permissions"] == ["manage_users"]
    assert "security" not in spec["paths"]["/api/v1/auth/login"]["post"]
