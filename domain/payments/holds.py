"""Holds (escrow): taken when an order is accepted, or later for far-future orders, renewed
before they lapse, released when the order is cancelled before capture.

The acceptance request takes the hold synchronously, before its transaction commits: a decline
must fail the acceptance (402) with nothing half-done, and the whole request rolls back. The
hold's idempotency key is derived from the order, the hold generation and the card, so a client
retrying the acceptance (say after a timeout) gets the same authorisation back, never a second.
A hold taken by a request whose commit then failed is referenced by no escrow: the orphan
sweep (``reconciliation.sweep_orphan_holds``) cancels it after a grace period.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.errors import NotFound, PaymentRequired
from db.models import Order, PaymentEscrow, SavedPaymentMethod, User
from db.queries import orders as order_queries
from db.queries import payments as queries
from domain import order_actions
from domain.order_states import Actor
from domain.orders import actor_for
from domain.payments import keys, processor_accounts, returns
from domain.payments.config import PaymentConfig
from domain.payments.errors import for_request
from domain.payments.escrow import EscrowState, Flag, cancellation_refund
from domain.payments.gateway import (
    CardDeclined,
    GatewayError,
    Intent,
    IntentStatus,
    PaymentGateway,
)
from domain.payments.records import (
    COMPLETED,
    FAILED,
    PROCESSING,
    open_escrow,
    publish,
    set_flag,
    set_state,
)

RUNNING = (OrderStatus.ACCEPTED, OrderStatus.ACTIVE)


class HoldNotAuthorized(Exception):
    """The processor answered but did not authorise (e.g. 3-D Secure required)."""

    def __init__(self, status: str, intent: Intent | None = None) -> None:
        super().__init__(status)
        self.status = status
        self.intent = intent


@dataclass(frozen=True)
class AuthenticationAction:
    """What the creator's client needs to finish 3-D Secure: Stripe.js
    ``handleNextAction({clientSecret})``, then ``POST /orders/{id}/payment/confirm`` (or wait
    for the webhook). Only ever shown to the creator."""

    status: str  # the intent's status
    intent_id: str
    client_secret: str | None
    next_action: str | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Acceptance:
    order: Order
    action: AuthenticationAction | None = None  # set when the card wants 3-D Secure


def _take_hold(session: Session, gateway: PaymentGateway, config: PaymentConfig,
               escrow: PaymentEscrow, now: datetime, *, off_session: bool) -> None:
    """One processor authorisation for the escrow's amount; raises CardDeclined or
    HoldNotAuthorized without changing the escrow."""
    assert escrow.payment_method_ref is not None
    generation = escrow.hold_generation + 1
    intent = gateway.create_hold(
        amount=escrow.amount_minor, currency=escrow.currency, customer_id=escrow.customer_ref,
        payment_method_id=escrow.payment_method_ref, order_id=str(escrow.order_id),
        off_session=off_session,
        idempotency_key=keys.hold(escrow.order_id, generation, escrow.payment_method_ref))
    if intent.status != IntentStatus.REQUIRES_CAPTURE:
        if intent.status == IntentStatus.REQUIRES_ACTION:
            escrow.hold_generation = generation  # a later attempt must not replay this one
        raise HoldNotAuthorized(intent.status, intent)
    escrow.hold_generation = generation
    _authorized(session, config, escrow, intent, now)


def _authorized(session: Session, config: PaymentConfig, escrow: PaymentEscrow,
                intent: Intent, now: datetime) -> None:
    """Book a held authorisation (fresh, or 3-D Secure just completed)."""
    generation = escrow.hold_generation
    escrow.intent_ref = intent.id
    escrow.authorized_minor = intent.amount
    escrow.hold_expires_at = config.timing.expires_at(now)
    escrow.authorize_at = None
    set_flag(escrow, None, now)
    txn = set_state(session, escrow, EscrowState.AUTHORIZED, now)
    txn.stripe_payment_intent_id = intent.id
    session.flush()
    publish(session, PROCESSING, escrow, "authorized", generation=generation)


def _open(session: Session, gateway: PaymentGateway, config: PaymentConfig, order: Order,
          method_ref: str | None, customer_ref: str | None, now: datetime) -> PaymentEscrow:
    escrow = open_escrow(session, order, gateway.name)
    escrow.payment_method_ref = method_ref
    escrow.customer_ref = customer_ref
    escrow.authorize_at = config.timing.authorize_at(order.scheduled_for, now)
    return escrow


def accept_with_hold(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                     order_id: uuid.UUID, application_id: uuid.UUID, creator: User,
                     method_ref: str | None, now: datetime) -> Acceptance:
    """Accept an application and secure the money in the same transaction.

    The card is ``method_ref`` (saved on the way) or the creator's default saved card. The
    hold is taken now unless the order is beyond a hold's life (then beat authorises it
    later). A decline raises PaymentRequired (402 CARD_DECLINED): the caller rolls back.
    A card that wants 3-D Secure does NOT roll back: the acceptance stands, the escrow waits
    in ``awaiting_authentication`` until the creator authenticates (webhook or
    ``confirm_authentication``) or the timeout undoes the acceptance
    (``expire_authentication``); the answer carries what the client needs to act."""
    order = order_actions.accept(session, order_id, application_id, creator, now)
    method: SavedPaymentMethod | None
    if method_ref is not None:
        method = processor_accounts.save_method(session, gateway, creator, method_ref, now)
    else:
        method = queries.find_default_method(session, creator.id, gateway.name)
        if method is None and config.require_method_at_accept:
            raise PaymentRequired("Add a payment method (paymentMethodId) to accept an offer.",
                                  code="PAYMENT_METHOD_REQUIRED")
    customer = queries.find_customer(session, creator.id, gateway.name)
    escrow = _open(session, gateway, config, order, method.method_ref if method else None,
                   customer.customer_ref if customer else None, now)
    if escrow.payment_method_ref is None:
        set_flag(escrow, Flag.PAYMENT_METHOD_MISSING, now)
        return Acceptance(order)
    if escrow.authorize_at is not None and escrow.authorize_at > now:
        publish(session, PROCESSING, escrow, "scheduled",
                authorizeAt=escrow.authorize_at.isoformat())
        return Acceptance(order)
    try:
        _take_hold(session, gateway, config, escrow, now, off_session=False)
    except GatewayError as exc:
        raise for_request(exc, field="paymentMethodId") from exc
    except HoldNotAuthorized as exc:
        if exc.intent is None or exc.status != IntentStatus.REQUIRES_ACTION:
            raise PaymentRequired("The card needs the cardholder's authentication.",
                                  code="PAYMENT_ACTION_REQUIRED",
                                  details={"status": exc.status}) from exc
        return Acceptance(order, _await_authentication(session, config, escrow, exc.intent,
                                                       now))
    return Acceptance(order)


def _await_authentication(session: Session, config: PaymentConfig, escrow: PaymentEscrow,
                          intent: Intent, now: datetime) -> AuthenticationAction:
    escrow.intent_ref = intent.id
    # In this state the hold's expiry is the authentication deadline (see escrow.py).
    escrow.hold_expires_at = now + config.authentication_timeout
    escrow.authorize_at = None
    txn = set_state(session, escrow, EscrowState.AWAITING_AUTHENTICATION, now)
    txn.stripe_payment_intent_id = intent.id
    session.flush()
    # The client secret is NOT in the event: events reach more than the creator's client.
    publish(session, PROCESSING, escrow, "authentication_required",
            expiresAt=escrow.hold_expires_at.isoformat())
    return action_for(escrow, intent)


def action_for(escrow: PaymentEscrow, intent: Intent) -> AuthenticationAction:
    return AuthenticationAction(status=intent.status, intent_id=intent.id,
                                client_secret=intent.client_secret,
                                next_action=intent.next_action,
                                expires_at=escrow.hold_expires_at)


def _undo_acceptance(session: Session, gateway: PaymentGateway, order: Order,
                     escrow: PaymentEscrow, now: datetime, reason: str) -> None:
    """3-D Secure failed or timed out: cancel the abandoned intent, release the escrow, put
    the order back to pending. The processor call is keyed, so a re-run repeats it safely."""
    assert escrow.intent_ref is not None
    returns.cancel_intent(gateway, order.id, escrow.intent_ref)
    set_state(session, escrow, EscrowState.RELEASED, now)
    escrow.hold_expires_at = None
    session.flush()
    publish(session, FAILED, escrow, "authentication", reason=reason)
    order_actions.lapse_acceptance(session, order, now, reason)


def settle_authentication(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                          order: Order, escrow: PaymentEscrow, intent: Intent,
                          now: datetime) -> str:
    """Apply what the processor says about an intent awaiting 3-D Secure (both rows locked
    by the caller): authorised -> held; failed or cancelled -> the acceptance is undone;
    still waiting -> nothing (the timeout decides)."""
    if intent.status == IntentStatus.REQUIRES_CAPTURE:
        _authorized(session, config, escrow, intent, now)
        return "authorized"
    if intent.status in (IntentStatus.REQUIRES_PAYMENT_METHOD, IntentStatus.CANCELED):
        _undo_acceptance(session, gateway, order, escrow, now, "authentication_failed")
        return "authentication-failed"
    return "awaiting-authentication"


def _locked_awaiting(session: Session, order_id: uuid.UUID
                     ) -> tuple[Order, PaymentEscrow] | str:
    order = order_queries.find_by_id(session, order_id, for_update=True)
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if order is None or escrow is None:
        return "nothing"
    if escrow.state != EscrowState.AWAITING_AUTHENTICATION:
        return "already-held" if escrow.state == EscrowState.AUTHORIZED else "not-awaiting"
    if order.status is not OrderStatus.ACCEPTED:
        return "not-accepted"  # cancelled meanwhile: ``release`` cancels the intent
    return order, escrow


def confirm_authentication(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                           order_id: uuid.UUID, now: datetime) -> str:
    """The creator says 3-D Secure is done (``POST /orders/{id}/payment/confirm``): re-read
    the intent from the processor (the client's word is never trusted) and apply it."""
    found = _locked_awaiting(session, order_id)
    if isinstance(found, str):
        return found
    order, escrow = found
    assert escrow.intent_ref is not None
    return settle_authentication(session, gateway, config, order, escrow,
                                 gateway.retrieve_intent(escrow.intent_ref), now)


@dataclass(frozen=True)
class Confirmation:
    order: Order
    outcome: str
    action: AuthenticationAction | None  # still waiting: what the client needs to go on


def confirm_by_creator(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                       order_id: uuid.UUID, user: User, now: datetime) -> Confirmation:
    """``POST /orders/{id}/payment/confirm``: only the order's creator (anyone else: 404, as
    for every order they may not see). Re-reads the intent; safe to call any number of
    times (an authorised escrow answers ``already-held``)."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or actor_for(user, order) is not Actor.CREATOR:
        raise NotFound("Order not found.")
    found = _locked_awaiting(session, order_id)
    if isinstance(found, str):
        return Confirmation(order, found, None)
    order, escrow = found
    assert escrow.intent_ref is not None
    intent = gateway.retrieve_intent(escrow.intent_ref)
    outcome = settle_authentication(session, gateway, config, order, escrow, intent, now)
    waiting = outcome == "awaiting-authentication"
    return Confirmation(order, outcome, action_for(escrow, intent) if waiting else None)


def expire_authentication(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                          order_id: uuid.UUID, now: datetime) -> str:
    """Beat: an acceptance still waiting for 3-D Secure past its deadline is undone. The
    intent is re-read first: authenticated at the last moment (a webhook not yet here), the
    hold is kept instead."""
    found = _locked_awaiting(session, order_id)
    if isinstance(found, str):
        return found
    order, escrow = found
    if escrow.hold_expires_at is not None and escrow.hold_expires_at > now:
        return "waiting"
    assert escrow.intent_ref is not None
    intent = gateway.retrieve_intent(escrow.intent_ref)
    outcome = settle_authentication(session, gateway, config, order, escrow, intent, now)
    if outcome != "awaiting-authentication":
        return outcome
    _undo_acceptance(session, gateway, order, escrow, now, "authentication_timeout")
    return "expired"


def _fail_authorization(session: Session, escrow: PaymentEscrow, flag: Flag, stage: str,
                        now: datetime, **extra: object) -> None:
    set_flag(escrow, flag, now)
    session.flush()
    publish(session, FAILED, escrow, stage, flag=flag.value, **extra)


def authorize(session: Session, gateway: PaymentGateway, config: PaymentConfig,
              order_id: uuid.UUID, now: datetime) -> str:
    """Make sure an accepted order's money is held (off-session: the creator is not there).

    Runs after every acceptance (a no-op when the request already took the hold) and from the
    beat job for far-future orders. Declines flag the escrow and publish ``payment:failed``;
    saving a new card clears the flag. Returns what happened, for logs and tests."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    if order is None or order.status not in RUNNING:
        return "not-running"
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if escrow is None:  # accepted without a request (auto-dispatch): use the saved card
        creator = session.get(User, order.creator_id)
        assert creator is not None
        method = queries.find_default_method(session, creator.id, gateway.name)
        customer = queries.find_customer(session, creator.id, gateway.name)
        escrow = _open(session, gateway, config, order, method.method_ref if method else None,
                       customer.customer_ref if customer else None, now)
    if escrow.state != EscrowState.AWAITING_AUTHORIZATION:
        return "already-held"
    if escrow.authorize_at is not None and escrow.authorize_at > now:
        return "scheduled"
    if escrow.flag is not None:
        return "flagged"
    if escrow.payment_method_ref is None:
        _fail_authorization(session, escrow, Flag.PAYMENT_METHOD_MISSING, "authorization", now)
        return "no-method"
    try:
        _take_hold(session, gateway, config, escrow, now, off_session=True)
    except CardDeclined as exc:
        _fail_authorization(session, escrow, Flag.AUTHORIZATION_DECLINED, "authorization", now,
                            declineCode=exc.decline_code)
        return "declined"
    except HoldNotAuthorized:
        _fail_authorization(session, escrow, Flag.AUTHORIZATION_NEEDS_ACTION, "authorization",
                            now)
        return "needs-action"
    return "authorized"


def renew(session: Session, gateway: PaymentGateway, config: PaymentConfig,
          order_id: uuid.UUID, now: datetime) -> str:
    """Replace a hold about to lapse on a still-running order with a fresh one, then cancel
    the old one. Declined: the old hold stays, the escrow is flagged for a human."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if order is None or escrow is None or escrow.state != EscrowState.AUTHORIZED:
        return "not-held"
    if order.status not in RUNNING:
        return "not-running"  # delivered orders are captured, cancelled ones released
    if not config.timing.needs_renewal(escrow.hold_expires_at, now):
        return "fresh"
    if escrow.flag == Flag.RENEWAL_DECLINED:
        return "flagged"
    old_intent = escrow.intent_ref
    try:
        _take_hold(session, gateway, config, escrow, now, off_session=True)
    except (CardDeclined, HoldNotAuthorized) as exc:
        _fail_authorization(session, escrow, Flag.RENEWAL_DECLINED, "renewal", now,
                            reason=type(exc).__name__)
        return "declined"
    if old_intent is not None:
        returns.cancel_intent(gateway, order_id, old_intent)
    return "renewed"


def release(session: Session, gateway: PaymentGateway, config: PaymentConfig,
            order_id: uuid.UUID, now: datetime) -> str:
    """The order was cancelled: release the hold, or (once captured) refund per policy."""
    order = order_queries.find_by_id(session, order_id, for_update=True)
    escrow = queries.find_escrow_by_order(session, order_id, for_update=True)
    if order is None or escrow is None or order.status is not OrderStatus.CANCELLED:
        return "nothing"
    state = EscrowState(escrow.state)
    if state is EscrowState.AWAITING_AUTHORIZATION:
        set_state(session, escrow, EscrowState.RELEASED, now)
        set_flag(escrow, None, now)
        session.flush()
        publish(session, COMPLETED, escrow, "released")
        return "released"
    if state is EscrowState.AWAITING_AUTHENTICATION:
        assert escrow.intent_ref is not None
        returns.cancel_intent(gateway, order_id, escrow.intent_ref)  # never captured
        set_state(session, escrow, EscrowState.RELEASED, now)
        session.flush()
        publish(session, COMPLETED, escrow, "released")
        return "released"
    if state is EscrowState.AUTHORIZED:
        assert escrow.intent_ref is not None
        status = returns.cancel_intent(gateway, order_id, escrow.intent_ref)
        if status == IntentStatus.SUCCEEDED:  # captured meanwhile: refund instead
            from domain.payments.capture import record_capture

            record_capture(session, escrow, order, gateway.retrieve_intent(escrow.intent_ref),
                           now, settle_after=now)
            return release(session, gateway, config, order_id, now)
        set_state(session, escrow, EscrowState.RELEASED, now)
        session.flush()
        publish(session, COMPLETED, escrow, "released")
        return "released"
    if state is EscrowState.CAPTURED and escrow.refund_due_minor == 0:
        escrow.refund_due_minor = cancellation_refund(state, escrow.captured_minor,
                                                      escrow.refunded_minor)
    if state is EscrowState.CAPTURED and escrow.refund_due_minor > 0:
        returns.refund_due(session, gateway, escrow, order, now, config.fee_policy)
        return "refunded"
    return "nothing"
