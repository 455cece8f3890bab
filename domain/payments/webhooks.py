"""Processor events: deduplicated by event id, applied by re-reading the object.

An event says "something happened to X"; it is never trusted for X's state, because events
arrive late, twice and out of order. The handler re-reads X from the processor and applies the
same state-checked transitions the tasks use, so an old event after a newer one is a no-op and
an event racing a task ends in the same state either way.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.errors import ValidationFailed
from db.models import ProcessedWebhookEvent
from db.queries import orders as order_queries
from db.queries import payments as queries
from domain.payments import onboarding, payout_status
from domain.payments.capture import _settle_after_for, record_capture
from domain.payments.config import PaymentConfig
from domain.payments.errors import ProcessorUnavailable
from domain.payments.escrow import EscrowState, Flag
from domain.payments.gateway import IntentStatus, InvalidSignature, PaymentGateway, WebhookEvent
from domain.payments.holds import settle_authentication
from domain.payments.records import COMPLETED, FAILED, publish, set_flag, set_state


def receive_stripe(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                   payload: bytes, signature_header: str | None, secret: str | None,
                   tolerance_s: int, now: datetime) -> str:
    """The webhook endpoint's one call: verify the signature, then apply the event once."""
    from domain.payments.stripe_gateway import parse_event

    if not secret:
        raise ProcessorUnavailable("Stripe webhooks are not configured (STRIPE_WEBHOOK_SECRET).")
    try:
        event = parse_event(payload, signature_header, secret, tolerance_s)
    except InvalidSignature as exc:
        raise ValidationFailed("The webhook signature does not verify.",
                               code="INVALID_SIGNATURE") from exc
    return handle(session, gateway, config, event, now)


def handle(session: Session, gateway: PaymentGateway, config: PaymentConfig,
           event: WebhookEvent, now: datetime) -> str:
    """Apply one event once. Returns what happened (for the response and logs)."""
    if session.get(ProcessedWebhookEvent, event.id) is not None:
        return "duplicate"
    session.add(ProcessedWebhookEvent(event_id=event.id, event_type=event.type,
                                      object_ref=event.object_id, received_at=now))
    session.flush()  # a concurrent duplicate fails here (primary key) and is retried by Stripe
    if event.type.startswith("payment_intent.") and event.object_id:
        return sync_intent(session, gateway, config, event.object_id, now)
    if event.type == "account.updated" and event.object_id:
        return "account-synced" if onboarding.sync(session, gateway, event.object_id) \
            else "unknown-account"
    if event.type.startswith("payout.") and event.object_id and event.account:
        return payout_status.sync_payout(session, gateway, event.object_id, event.account, now)
    if event.type == "transfer.created" and event.object_id:
        return payout_status.sync_transfer(session, gateway, event.object_id, now)
    if event.type == "charge.dispute.created":
        intent_ref = event.data.get("payment_intent")
        if isinstance(intent_ref, str):
            return _chargeback(session, intent_ref, now)
    return "ignored"


def sync_intent(session: Session, gateway: PaymentGateway, config: PaymentConfig,
                intent_ref: str, now: datetime) -> str:
    # The order's lock first, then its escrow's: the order every payment task takes them in.
    # The other way round, a task holding the order while we held the escrow deadlocked
    # (docs/reliability.md, "Load and faults"). An escrow's order and intent never change.
    found = queries.find_escrow_by_intent(session, intent_ref)
    if found is None:
        return "unknown-intent"
    order = order_queries.find_by_id(session, found.order_id, for_update=True)
    assert order is not None
    escrow = queries.find_escrow_by_order(session, order.id, for_update=True)
    assert escrow is not None
    intent = gateway.retrieve_intent(intent_ref)
    state = EscrowState(escrow.state)
    if state is EscrowState.AWAITING_AUTHENTICATION and order.status is OrderStatus.ACCEPTED:
        # 3-D Secure finished (``payment_intent.amount_capturable_updated``: requires_capture)
        # or failed (``payment_intent.payment_failed``): the same step as the confirm endpoint.
        return settle_authentication(session, gateway, config, order, escrow, intent, now)
    if state is EscrowState.AUTHORIZED and intent.status == IntentStatus.SUCCEEDED:
        # Captured at the processor but not here (our commit was lost): book it now.
        record_capture(session, escrow, order, intent, now,
                       settle_after=_settle_after_for(order, config, now))
        return "captured"
    if state is EscrowState.AUTHORIZED and intent.status == IntentStatus.CANCELED:
        if order.status is OrderStatus.CANCELLED:
            set_state(session, escrow, EscrowState.RELEASED, now)
            session.flush()
            publish(session, COMPLETED, escrow, "released")
            return "released"
        set_flag(escrow, Flag.HOLD_LAPSED, now)
        set_state(session, escrow, EscrowState.FAILED, now)
        session.flush()
        publish(session, FAILED, escrow, "hold_lapsed", flag=Flag.HOLD_LAPSED.value)
        return "lapsed"
    return "in-sync"


def _chargeback(session: Session, intent_ref: str, now: datetime) -> str:
    """A card dispute at the bank: freeze settlement until a human decides."""
    escrow = queries.find_escrow_by_intent(session, intent_ref, for_update=True)
    if escrow is None:
        return "unknown-intent"
    set_flag(escrow, Flag.CHARGEBACK, now)
    session.flush()
    publish(session, FAILED, escrow, "chargeback", flag=Flag.CHARGEBACK.value)
    return "frozen"
