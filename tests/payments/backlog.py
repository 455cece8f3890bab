"""A backlog of delivered orders whose capture follow-up was lost: committed orders with a
real hold at the app's processor (the offline emulator in Redis), as acceptance leaves them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy import func, select, update

from core.enums import OrderStatus
from db.models import PaymentEscrow, PayoutAccount
from domain.payments.escrow import EscrowState
from domain.payments.records import open_escrow, set_state
from tests import factories

AMOUNT = 2500


def capture_backlog(app: Flask, n: int) -> list[uuid.UUID]:
    """``n`` orders completed an hour ago, each with an authorised escrow and its hold at the
    processor: what ``payments.retry_captures`` finds when the capture messages were lost.
    The provider has a payout account, so once captured they are settleable."""
    svc = app.extensions["taplive"]
    gateway = svc.payments.gateway
    now = datetime.now(UTC)
    ids: list[uuid.UUID] = []
    with svc.db.transaction() as session:
        factories.bind(session)
        try:
            creator = factories.UserFactory()
            provider = factories.UserFactory(provider=True, verified=True)
            session.add(PayoutAccount(user_id=provider.id, gateway="offline",
                                      account_ref=f"acct_{uuid.uuid4().hex[:12]}",
                                      payouts_enabled=True))
            for _ in range(n):
                order = factories.OrderFactory(
                    creator=creator, status=OrderStatus.COMPLETED, provider_id=provider.id,
                    agreed_amount_minor=AMOUNT, accepted_at=now - timedelta(hours=3),
                    started_at=now - timedelta(hours=2), completed_at=now - timedelta(hours=1))
                escrow = open_escrow(session, order, "offline")
                intent = gateway.create_hold(
                    amount=AMOUNT, currency="USD", customer_id=None,
                    payment_method_id="pm_card_visa", order_id=str(order.id), off_session=True,
                    idempotency_key=f"backlog-hold-{order.id}")
                escrow.intent_ref = intent.id
                escrow.authorized_minor = AMOUNT
                set_state(session, escrow, EscrowState.AUTHORIZED, now)
                ids.append(order.id)
        finally:
            factories.bind(None)
    return ids


def make_settleable(app: Flask, order_ids: list[uuid.UUID]) -> None:
    """Their dispute window closed: captured escrows become due for settlement."""
    with app.extensions["taplive"].db.transaction() as session:
        session.execute(update(PaymentEscrow)
                        .where(PaymentEscrow.order_id.in_(order_ids))
                        .values(settle_after=datetime.now(UTC) - timedelta(minutes=1)))


def states(app: Flask, order_ids: list[uuid.UUID]) -> dict[str, int]:
    with app.extensions["taplive"].db.transaction() as session:
        rows = session.execute(select(PaymentEscrow.state, func.count())
                               .where(PaymentEscrow.order_id.in_(order_ids))
                               .group_by(PaymentEscrow.state)).all()
    return {state: count for state, count in rows}
