"""The escrow rules, as pure functions: states, when to hold, how much to capture or refund,
when money may be settled. The commands apply them under the escrow's row lock.

States (``payment_escrows.state``)::

    awaiting_authorization ──hold──▶ authorized ──capture──▶ captured ──split──▶ settling
           │                      │   ▲  │renew                 │ refund        │ transfer
           │                      │   └──┘                      ▼ (all)         ▼
           └──cancel──▶ released ◀┘cancel                    refunded         settled
                                  failed ◀── declined off-session / hold lapsed / capture refused

    awaiting_authorization ──hold wants 3-D Secure (on-session)──▶ awaiting_authentication
    awaiting_authentication ──authenticated (webhook or POST .../payment/confirm)──▶ authorized
    awaiting_authentication ──failed / timed out / order cancelled──▶ released

``awaiting_authentication``: the intent exists (``intent_ref``) but the creator's bank wants
3-D Secure; ``hold_expires_at`` is then the authentication deadline
(``PAYMENT_AUTHENTICATION_TIMEOUT_MINUTES``), after which beat cancels the intent and the order
goes back to pending. A released escrow holds nothing, so a new acceptance reuses it
(``records.open_escrow``), its hold generation counting on; so does the acceptance of an order
re-opened after a provider no-show (issue 17): ``released ──accepted again──▶
awaiting_authorization``.

``payment_transactions.status`` (the spec's enum) is derived: awaiting -> pending, authorized ->
processing, captured/settling/settled -> succeeded, released -> cancelled, refunded -> refunded,
failed -> failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from core.enums import OrderStatus, PaymentStatus


class EscrowState(StrEnum):
    AWAITING_AUTHORIZATION = "awaiting_authorization"
    AWAITING_AUTHENTICATION = "awaiting_authentication"  # 3-D Secure: the creator must act
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    SETTLING = "settling"
    SETTLED = "settled"
    RELEASED = "released"
    REFUNDED = "refunded"
    FAILED = "failed"


E = EscrowState
PAYMENT_STATUS: dict[EscrowState, PaymentStatus] = {
    E.AWAITING_AUTHORIZATION: PaymentStatus.PENDING,
    E.AWAITING_AUTHENTICATION: PaymentStatus.PENDING,
    E.AUTHORIZED: PaymentStatus.PROCESSING,
    E.CAPTURED: PaymentStatus.SUCCEEDED,
    E.SETTLING: PaymentStatus.SUCCEEDED,
    E.SETTLED: PaymentStatus.SUCCEEDED,
    E.RELEASED: PaymentStatus.CANCELLED,
    E.REFUNDED: PaymentStatus.REFUNDED,
    E.FAILED: PaymentStatus.FAILED,
}
#: No money is held or owed any more: nothing will change these (but reconciliation reads them).
FINAL = frozenset({E.SETTLED, E.RELEASED, E.REFUNDED, E.FAILED})


class Flag(StrEnum):
    """Why an escrow needs a human. ``CHARGEBACK`` also freezes settlement."""

    PAYMENT_METHOD_MISSING = "payment_method_missing"
    AUTHORIZATION_DECLINED = "authorization_declined"
    AUTHORIZATION_NEEDS_ACTION = "authorization_needs_action"
    RENEWAL_DECLINED = "renewal_declined"
    HOLD_LAPSED = "hold_lapsed"
    CAPTURE_FAILED = "capture_failed"
    CHARGEBACK = "chargeback"


SETTLEMENT_FREEZING_FLAGS = frozenset({Flag.CHARGEBACK})


@dataclass(frozen=True)
class HoldTiming:
    """How long an authorisation lasts and how we plan around it.

    Card authorisations lapse (7 days for most online card payments). An order scheduled
    beyond the hold's life is authorised ``authorize_lead`` before its time instead of at
    acceptance; a hold that would lapse within ``renew_before`` while the order is still
    running is replaced by a fresh one (or the order is flagged when that is declined).
    """

    validity: timedelta = timedelta(days=7)
    renew_before: timedelta = timedelta(hours=24)
    authorize_lead: timedelta = timedelta(hours=24)

    def authorize_at(self, scheduled_for: datetime | None, now: datetime) -> datetime:
        """When to take the hold: now, unless the order's time is beyond a hold's life."""
        if scheduled_for is None:
            return now
        latest_useful = now + self.validity - self.renew_before
        if scheduled_for <= latest_useful:
            return now
        return max(now, scheduled_for - self.authorize_lead)

    def expires_at(self, authorized_at: datetime) -> datetime:
        return authorized_at + self.validity

    def needs_renewal(self, expires_at: datetime | None, now: datetime) -> bool:
        return expires_at is not None and expires_at - now <= self.renew_before


def capture_amount(agreed_minor: int, authorized_minor: int, refund_due_minor: int) -> int:
    """What to capture: the agreed amount (never more than is held: a partial capture when the
    agreed amount dropped), less any refund already decided (it is simply not captured)."""
    base = min(agreed_minor, authorized_minor)
    return max(0, base - refund_due_minor)


def refund_for_resolution(refund_minor: int | None, captured_minor: int, refunded_minor: int,
                          authorized_minor: int, state: EscrowState) -> int:
    """The refund an admin's "refund" resolution decides: the amount asked for (partial), or
    everything still held or captured (full). Never more than that."""
    if state in (E.CAPTURED,):
        available = captured_minor - refunded_minor
    elif state in (E.AUTHORIZED,):
        available = authorized_minor
    else:
        available = 0
    if refund_minor is None:
        return available
    return min(refund_minor, available)


def cancellation_refund(state: EscrowState, captured_minor: int, refunded_minor: int) -> int:
    """The cancellation policy once money was captured: the creator gets everything back that
    the provider has not been paid (an order is cancelled only before it is delivered; a
    completed order's money moves only by dispute resolution). Before capture the hold is
    released instead, so there is nothing to refund."""
    if state is E.CAPTURED:
        return captured_minor - refunded_minor
    return 0


def capture_wanted(order_status: OrderStatus) -> bool:
    """The order was delivered (completed, possibly disputed since): its money is captured so
    the hold cannot lapse under it. A dispute decides where the money goes, not whether it is
    secured."""
    return order_status in (OrderStatus.COMPLETED, OrderStatus.DISPUTED)


def settle_after(completed_at: datetime, dispute_window: timedelta, grace: timedelta) -> datetime:
    """Settlement waits until a dispute can no longer be raised. ``grace`` covers clock skew
    between hosts, so no dispute can slip in after the money left."""
    return completed_at + dispute_window + grace


def may_settle(state: EscrowState, settle_after_at: datetime | None, order_status: OrderStatus,
               flag: str | None, now: datetime) -> bool:
    """A dispute (order disputed) or a chargeback freezes settlement."""
    if state not in (E.CAPTURED, E.SETTLING):
        return False
    if state is E.SETTLING:
        return True  # the split is booked: finishing the transfer is never frozen
    if order_status is OrderStatus.DISPUTED or flag in SETTLEMENT_FREEZING_FLAGS:
        return False
    return settle_after_at is not None and settle_after_at <= now
