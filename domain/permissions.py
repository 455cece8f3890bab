"""Role-based access control: the ONE role -> permissions table, and the checks built on it.

Framework-free: the API decorator (``api.auth.authenticated``), the token claims and any task
ask this module, so a role's rights are defined exactly once. Admins run the platform; they do
not trade on it, hence no ``create_orders`` / ``apply_orders`` for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from core.enums import UserRole, VerificationStatus
from core.errors import PermissionDenied


class Permission(StrEnum):
    CREATE_ORDERS = "create_orders"
    APPLY_ORDERS = "apply_orders"
    VIEW_ANALYTICS = "view_analytics"
    VERIFY_USERS = "verify_users"
    RESOLVE_DISPUTES = "resolve_disputes"
    MANAGE_USERS = "manage_users"


_P = Permission

ROLE_PERMISSIONS: Mapping[UserRole, frozenset[Permission]] = MappingProxyType({
    UserRole.CREATOR: frozenset({_P.CREATE_ORDERS, _P.VIEW_ANALYTICS}),
    UserRole.PROVIDER: frozenset({_P.APPLY_ORDERS, _P.VIEW_ANALYTICS}),
    UserRole.BOTH: frozenset({_P.CREATE_ORDERS, _P.APPLY_ORDERS, _P.VIEW_ANALYTICS}),
    UserRole.ADMIN: frozenset({
        _P.VIEW_ANALYTICS, _P.VERIFY_USERS, _P.RESOLVE_DISPUTES, _P.MANAGE_USERS,
    }),
})

#: Roles that act as providers, and so go through verification.
PROVIDER_ROLES: frozenset[UserRole] = frozenset({UserRole.PROVIDER, UserRole.BOTH})


def permissions_for(role: UserRole) -> frozenset[Permission]:
    return ROLE_PERMISSIONS[role]


def sorted_permissions(role: UserRole) -> list[str]:
    """The role's permissions as a stable, sorted list (token claims, API responses)."""
    return sorted(permissions_for(role))


def require(role: UserRole, needed: Iterable[Permission]) -> None:
    """Raise PermissionDenied (403) unless ``role`` holds every permission in ``needed``."""
    missing = sorted(set(needed) - permissions_for(role))
    if missing:
        raise PermissionDenied("You do not have permission to do this.",
                               details={"missing": missing})


def require_verified_provider(role: UserRole, status: VerificationStatus) -> None:
    """A provider (or ``both``) must be verified; other roles are not verified, so they pass."""
    if role in PROVIDER_ROLES and status != VerificationStatus.VERIFIED:
        raise PermissionDenied(
            "Your provider account is not verified yet.",
            code="PROVIDER_NOT_VERIFIED",
            details={"verificationStatus": str(status)},
        )


@dataclass(frozen=True, slots=True)
class Caller:
    """Who is making a request, as far as access control needs to know: checked on every
    authenticated request, so it carries only what the checks above use (the account row is
    loaded only by the views that need it). A role never changes after registration, so the
    role signed into the token is the account's role."""

    id: uuid.UUID
    role: UserRole

    def require(self, needed: Iterable[Permission]) -> None:
        require(self.role, needed)
