"""The card-processor interface every money call goes through, and its value objects.

Both implementations (``StripeGateway``, ``OfflineGateway``) follow Stripe's model: a
PaymentIntent created with ``capture_method=manual`` and confirmed holds the funds; it is later
captured (fully or partly) or cancelled; captured money can be refunded; the provider's share is
a Transfer to a connected account. Every call that moves money takes an ``idempotency_key``: the
processor answers a repeated key with the first answer (declines included) instead of acting
twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol


class IntentStatus:
    """Stripe's PaymentIntent statuses (the subset a manual-capture card payment goes through)."""

    REQUIRES_PAYMENT_METHOD = "requires_payment_method"  # declined (or never confirmed)
    REQUIRES_ACTION = "requires_action"  # the card wants 3-D Secure: the creator must act
    PROCESSING = "processing"
    REQUIRES_CAPTURE = "requires_capture"  # authorised: funds held
    SUCCEEDED = "succeeded"  # captured
    CANCELED = "canceled"  # released, or the authorisation lapsed


@dataclass(frozen=True)
class Intent:
    id: str
    status: str
    amount: int  # authorised amount, minor units
    amount_received: int  # captured amount (0 until captured)
    currency: str  # upper-case ISO 4217
    order_id: str | None = None  # our metadata
    created: datetime | None = None
    decline_code: str | None = None
    # For a card that wants 3-D Secure (``requires_action``): what the creator's client needs
    # to finish it (Stripe.js ``handleNextAction(client_secret)``). Never logged or broadcast.
    client_secret: str | None = None
    next_action: str | None = None  # Stripe's ``next_action.type``, e.g. ``use_stripe_sdk``


@dataclass(frozen=True)
class Refund:
    id: str
    intent_id: str
    amount: int
    status: str


@dataclass(frozen=True)
class Transfer:
    id: str
    amount: int
    currency: str
    destination: str
    transfer_group: str | None
    reversed_amount: int = 0


@dataclass(frozen=True)
class CardDetails:
    id: str
    brand: str | None
    last4: str | None
    exp_month: int | None
    exp_year: int | None


@dataclass(frozen=True)
class ConnectedAccount:
    id: str
    payouts_enabled: bool
    details_submitted: bool = True


@dataclass(frozen=True)
class AccountLink:
    """A single-use onboarding URL for a connected account (Stripe: ~5 minutes)."""

    url: str
    expires_at: datetime


class PayoutStatus:
    """Stripe's Payout statuses: a connected account's balance on its way to the bank."""

    PENDING = "pending"
    IN_TRANSIT = "in_transit"
    PAID = "paid"
    FAILED = "failed"
    CANCELED = "canceled"


@dataclass(frozen=True)
class Payout:
    id: str
    status: str
    account: str  # the connected account it pays out of
    created: datetime
    amount: int = 0
    currency: str = ""


@dataclass(frozen=True)
class WebhookEvent:
    id: str
    type: str
    object_id: str | None
    object_type: str | None
    data: dict[str, Any] = field(default_factory=dict)
    account: str | None = None  # Connect events: the connected account it happened on


# ------------------------------------------------------------------------------ errors


class GatewayError(Exception):
    """The processor refused or failed. ``code`` is the processor's machine code."""

    def __init__(self, message: str, *, code: str | None = None,
                 http_status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.http_status = http_status


class CardDeclined(GatewayError):
    """The card was declined (at attach or at authorisation)."""

    def __init__(self, message: str, *, code: str | None = "card_declined",
                 decline_code: str | None = None, intent_id: str | None = None) -> None:
        super().__init__(message, code=code, http_status=402)
        self.decline_code = decline_code
        self.intent_id = intent_id


class ObjectMissing(GatewayError):
    """No such object at the processor (unknown payment method, account, intent...)."""


class InvalidRequest(GatewayError):
    """The processor refused the request as it stands (e.g. capturing a cancelled intent)."""


class RateLimited(GatewayError):
    """429: slow down. ``retry_after`` seconds when the processor said."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message, code="rate_limit", http_status=429)
        self.retry_after = retry_after


class Unavailable(GatewayError):
    """Network failure or a 5xx: the outcome is unknown, retry with the same key."""


class InvalidSignature(GatewayError):
    """A webhook whose signature (or timestamp) does not verify."""


# --------------------------------------------------------------------------- interface


class PaymentGateway(Protocol):
    name: str

    def ensure_customer(self, *, user_id: str, email: str, idempotency_key: str) -> str:
        """Create the processor's customer for a user; returns its id."""
        ...

    def attach_payment_method(self, *, customer_id: str, payment_method_id: str,
                              idempotency_key: str) -> CardDetails:
        """Save a client-made payment method on the customer (no charge)."""
        ...

    def retrieve_account(self, account_id: str) -> ConnectedAccount:
        ...

    def create_account(self, *, user_id: str, email: str, country: str | None,
                       idempotency_key: str) -> ConnectedAccount:
        """A new Express connected account for a provider (payouts disabled until onboarded)."""
        ...

    def create_account_link(self, account_id: str, *, refresh_url: str,
                            return_url: str) -> AccountLink:
        """An ``account_onboarding`` link; the processor sends the browser to ``refresh_url``
        when it has expired or was already used, to ``return_url`` when the form is left."""
        ...

    def retrieve_payout(self, payout_id: str, *, account_id: str) -> Payout:
        """A connected account's payout (to its bank)."""
        ...

    def create_hold(self, *, amount: int, currency: str, customer_id: str | None,
                    payment_method_id: str, order_id: str, off_session: bool,
                    idempotency_key: str) -> Intent:
        """Create and confirm a manual-capture intent: the funds are held (or CardDeclined)."""
        ...

    def retrieve_intent(self, intent_id: str) -> Intent:
        ...

    def capture(self, intent_id: str, *, amount: int, idempotency_key: str) -> Intent:
        ...

    def cancel(self, intent_id: str, *, idempotency_key: str) -> Intent:
        ...

    def refund(self, intent_id: str, *, amount: int, order_id: str,
               idempotency_key: str) -> Refund:
        ...

    def list_refunds(self, intent_id: str) -> list[Refund]:
        """Refunds of an intent that we asked for (see the Stripe adapter on emulators)."""
        ...

    def transfer(self, *, amount: int, currency: str, destination: str, transfer_group: str,
                 idempotency_key: str) -> Transfer:
        ...

    def retrieve_transfer(self, transfer_id: str) -> Transfer:
        ...

    def list_intents_since(self, since: datetime) -> list[Intent]:
        """Intents created at or after ``since`` (the orphan-hold sweep)."""
        ...
