"""Who pays and who is paid: the creator's processor customer and saved cards, the
provider's connected payout account."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from db.models import PaymentCustomer, PayoutAccount, SavedPaymentMethod, User
from db.queries import payments as queries
from domain.payments import keys
from domain.payments.errors import for_request
from domain.payments.escrow import Flag
from domain.payments.gateway import GatewayError, PaymentGateway

# Escrows waiting for a usable card: saving a new one puts them back in the authorisation queue.
_WAITING_FOR_A_CARD = (Flag.PAYMENT_METHOD_MISSING.value, Flag.AUTHORIZATION_DECLINED.value,
                       Flag.AUTHORIZATION_NEEDS_ACTION.value)


def ensure_customer(session: Session, gateway: PaymentGateway, user: User) -> str:
    customer = queries.find_customer(session, user.id, gateway.name)
    if customer is not None:
        return customer.customer_ref
    ref = gateway.ensure_customer(user_id=str(user.id), email=user.email,
                                  idempotency_key=keys.customer(user.id))
    session.add(PaymentCustomer(user_id=user.id, gateway=gateway.name, customer_ref=ref))
    session.flush()
    return ref


def save_method(session: Session, gateway: PaymentGateway, user: User, method_ref: str,
                now: datetime) -> SavedPaymentMethod:
    """Attach a client-made payment method to the user's customer and make it the default.
    Saving the same one again is harmless (it becomes the default again)."""
    method = queries.find_method(session, user.id, gateway.name, method_ref)
    try:
        customer_ref = ensure_customer(session, gateway, user)
        card = None if method is not None else gateway.attach_payment_method(
            customer_id=customer_ref, payment_method_id=method_ref,
            idempotency_key=keys.attach(user.id, method_ref))
    except GatewayError as exc:
        raise for_request(exc, field="paymentMethodId") from exc
    if method is None:
        assert card is not None
        method = SavedPaymentMethod(user_id=user.id, gateway=gateway.name,
                                    method_ref=method_ref, brand=card.brand, last4=card.last4,
                                    exp_month=card.exp_month, exp_year=card.exp_year,
                                    created_at=now)
        session.add(method)
    session.execute(update(SavedPaymentMethod)
                    .where(SavedPaymentMethod.user_id == user.id,
                           SavedPaymentMethod.gateway == gateway.name,
                           SavedPaymentMethod.method_ref != method_ref)
                    .values(is_default=False))
    method.is_default = True
    for escrow in queries.find_flagged_for_method(session, user.id, _WAITING_FOR_A_CARD):
        escrow.payment_method_ref = method_ref
        escrow.customer_ref = customer_ref
        escrow.flag = None
        escrow.flagged_at = None
    session.flush()
    return method


def set_payout_account(session: Session, gateway: PaymentGateway, user: User,
                       account_ref: str) -> PayoutAccount:
    """Register (or replace) the provider's connected account, checked with the processor."""
    try:
        account = gateway.retrieve_account(account_ref)
    except GatewayError as exc:
        raise for_request(exc, field="accountId") from exc
    row = queries.find_payout_account(session, user.id, gateway.name)
    if row is None:
        row = PayoutAccount(user_id=user.id, gateway=gateway.name, account_ref=account.id,
                            payouts_enabled=account.payouts_enabled,
                            details_submitted=account.details_submitted)
        session.add(row)
    else:
        row.account_ref = account.id
        row.payouts_enabled = account.payouts_enabled
        row.details_submitted = account.details_submitted
    session.flush()
    return row
