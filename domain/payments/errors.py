"""Payment errors as the API shows them, and the translation of processor errors for requests.

Tasks let processor errors propagate (their retry policy handles outages); a request turns
them into domain errors here, so ``api.errors`` maps them to status codes in its one place.
"""

from __future__ import annotations

from core.errors import DomainError, PaymentRequired, Unprocessable, ValidationFailed
from domain.payments.gateway import (
    CardDeclined,
    GatewayError,
    ObjectMissing,
    RateLimited,
    Unavailable,
)


class ProcessorUnavailable(DomainError):
    """The card processor is down or throttling us: retry later (503)."""

    code = "PAYMENT_PROCESSOR_UNAVAILABLE"


def for_request(exc: GatewayError, *, field: str) -> DomainError:
    """The domain error a request answers with when the processor refused ``field``'s object."""
    if isinstance(exc, CardDeclined):
        details = {"declineCode": exc.decline_code} if exc.decline_code else {}
        return PaymentRequired("Your card was declined.", code="CARD_DECLINED", details=details)
    if isinstance(exc, ObjectMissing):
        return ValidationFailed("The request is not valid.",
                                details={field: ["No such object at the payment processor."]})
    if isinstance(exc, RateLimited | Unavailable):
        return ProcessorUnavailable("The payment processor is unavailable; retry shortly.")
    return Unprocessable(f"The payment processor refused: {exc.message}",
                         code="PAYMENT_REJECTED", details={"processorCode": exc.code})
