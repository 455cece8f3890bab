"""Domain exceptions: raised where a rule lives, mapped to HTTP in one place (api.errors)."""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base class: a machine code, a human message and optional structured details."""

    code = "DOMAIN_ERROR"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None,
                 code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code is not None:
            self.code = code


class ValidationFailed(DomainError):
    code = "VALIDATION_ERROR"


class NotFound(DomainError):
    code = "NOT_FOUND"


class Conflict(DomainError):
    code = "CONFLICT"


class InvalidStateTransition(Conflict):
    code = "INVALID_STATE_TRANSITION"


class PermissionDenied(DomainError):
    code = "FORBIDDEN"


class AuthenticationFailed(DomainError):
    code = "UNAUTHORIZED"


class PaymentRequired(DomainError):
    code = "PAYMENT_REQUIRED"


class Unprocessable(DomainError):
    code = "UNPROCESSABLE_ENTITY"
