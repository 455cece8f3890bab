"""The role -> permissions table is complete, least-privilege, and enforced by the checks."""

from __future__ import annotations

import pytest

from core.enums import UserRole, VerificationStatus
from core.errors import PermissionDenied
from domain.permissions import (
    ROLE_PERMISSIONS,
    Permission,
    permissions_for,
    require,
    require_verified_provider,
)

P = Permission
EXPECTED = {
    UserRole.CREATOR: {P.CREATE_ORDERS, P.VIEW_ANALYTICS},
    UserRole.PROVIDER: {P.APPLY_ORDERS, P.VIEW_ANALYTICS},
    UserRole.BOTH: {P.CREATE_ORDERS, P.APPLY_ORDERS, P.VIEW_ANALYTICS},
    UserRole.ADMIN: {P.VIEW_ANALYTICS, P.VERIFY_USERS, P.RESOLVE_DISPUTES, P.MANAGE_USERS},
}


def test_every_role_has_exactly_its_permissions() -> None:
    assert set(ROLE_PERMISSIONS) == set(UserRole)
    for role, expected in EXPECTED.items():
        assert permissions_for(role) == expected, role


def test_every_permission_is_granted_to_someone() -> None:
    granted = set().union(*ROLE_PERMISSIONS.values())
    assert granted == set(Permission)


def test_the_table_cannot_be_changed_at_run_time() -> None:
    with pytest.raises(TypeError):
        ROLE_PERMISSIONS[UserRole.CREATOR] = frozenset(Permission)  # type: ignore[index]


@pytest.mark.parametrize("role", list(UserRole))
@pytest.mark.parametrize("permission", list(Permission))
def test_require_matches_the_table(role: UserRole, permission: Permission) -> None:
    if permission in EXPECTED[role]:
        require(role, [permission])
    else:
        with pytest.raises(PermissionDenied) as caught:
            require(role, [permission])
        assert caught.value.details == {"missing": [str(permission)]}


@pytest.mark.parametrize(("role", "status", "allowed"), [
    (UserRole.PROVIDER, VerificationStatus.VERIFIED, True),
    (UserRole.PROVIDER, VerificationStatus.PENDING, False),
    (UserRole.PROVIDER, VerificationStatus.REJECTED, False),
    (UserRole.BOTH, VerificationStatus.PENDING, False),
    (UserRole.BOTH, VerificationStatus.VERIFIED, True),
    (UserRole.CREATOR, VerificationStatus.PENDING, True),  # creators are not verified
])
def test_verified_provider_rule(role: UserRole, status: VerificationStatus,
                                allowed: bool) -> None:
    if allowed:
        require_verified_provider(role, status)
    else:
        with pytest.raises(PermissionDenied) as caught:
            require_verified_provider(role, status)
        assert caught.value.code == "PROVIDER_NOT_VERIFIED"
