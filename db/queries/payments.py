"""Payment queries: escrows due for each job, the caller's payments, saved methods, payout
accounts, ledger balances."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import Select, and_, func, or_, select, true, tuple_
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from db.models import (
    LedgerEntry,
    LedgerTransaction,
    Order,
    PaymentCustomer,
    PaymentEscrow,
    PaymentTransaction,
    PayoutAccount,
    ReconciliationRun,
    SavedPaymentMethod,
)


def _locked(stmt: Select[PaymentEscrow], for_update: bool) -> Select[PaymentEscrow]:
    if for_update:
        return stmt.with_for_update().execution_options(populate_existing=True)
    return stmt


def find_escrow_by_order(session: Session, order_id: uuid.UUID, *,
                         for_update: bool = False) -> PaymentEscrow | None:
    stmt = select(PaymentEscrow).where(PaymentEscrow.order_id == order_id)
    return session.scalars(_locked(stmt, for_update)).one_or_none()


def find_escrow_by_intent(session: Session, intent_ref: str, *,
                          for_update: bool = False) -> PaymentEscrow | None:
    stmt = select(PaymentEscrow).where(PaymentEscrow.intent_ref == intent_ref)
    return session.scalars(_locked(stmt, for_update)).one_or_none()


def find_due_for_authorization(session: Session, now: datetime, limit: int) -> list[uuid.UUID]:
    return list(session.scalars(
        select(PaymentEscrow.order_id)
        .where(PaymentEscrow.state == "awaiting_authorization",
               PaymentEscrow.authorize_at <= now, PaymentEscrow.flag.is_(None))
        .order_by(PaymentEscrow.authorize_at).limit(limit)))


def find_authentication_lapsed(session: Session, now: datetime, limit: int
                               ) -> list[uuid.UUID]:
    """Acceptances still waiting for 3-D Secure past their deadline (``hold_expires_at``)."""
    return list(session.scalars(
        select(PaymentEscrow.order_id)
        .where(PaymentEscrow.state == "awaiting_authentication",
               PaymentEscrow.hold_expires_at <= now)
        .order_by(PaymentEscrow.hold_expires_at).limit(limit)))


def find_due_for_renewal(session: Session, horizon: datetime, limit: int) -> list[uuid.UUID]:
    """Authorised holds lapsing before ``horizon`` whose renewal was not already refused."""
    return list(session.scalars(
        select(PaymentEscrow.order_id)
        .where(PaymentEscrow.state == "authorized", PaymentEscrow.hold_expires_at <= horizon,
               or_(PaymentEscrow.flag.is_(None), PaymentEscrow.flag != "renewal_declined"))
        .order_by(PaymentEscrow.hold_expires_at).limit(limit)))


def find_due_for_settlement(session: Session, now: datetime, limit: int,
                            after: tuple[datetime, uuid.UUID] | None = None) -> list[uuid.UUID]:
    """Escrows mid-settlement, and captured ones past their dispute window whose order is not
    disputed, not frozen by a chargeback, and whose provider can receive a transfer; oldest
    first, from past ``after`` (settle_after, order id): a catch-up chain's cursor, so one
    pass over the backlog never comes back to an order that failed earlier in the pass."""
    has_account = (select(PayoutAccount.id)
                   .where(PayoutAccount.user_id == PaymentEscrow.payee_id,
                          PayoutAccount.gateway == PaymentEscrow.gateway,
                          PayoutAccount.payouts_enabled.is_(True)).exists())
    return list(session.scalars(
        select(PaymentEscrow.order_id)
        .join(Order, Order.id == PaymentEscrow.order_id)
        .where(or_(
            PaymentEscrow.state == "settling",
            (PaymentEscrow.state == "captured") & (PaymentEscrow.settle_after <= now)
            & (Order.status != OrderStatus.DISPUTED)
            & or_(PaymentEscrow.flag.is_(None), PaymentEscrow.flag != "chargeback")
            & has_account,
        ))
        .where(true() if after is None
               else tuple_(PaymentEscrow.settle_after, PaymentEscrow.order_id) > tuple_(*after))
        .order_by(PaymentEscrow.settle_after, PaymentEscrow.order_id).limit(limit)))


def settle_cursor(session: Session, order_id: uuid.UUID) -> tuple[datetime, uuid.UUID] | None:
    """Where a settlement pass stands after ``order_id`` (see ``find_due_for_settlement``)."""
    settle_after = session.scalar(select(PaymentEscrow.settle_after)
                                  .where(PaymentEscrow.order_id == order_id))
    return None if settle_after is None else (settle_after, order_id)


def find_captured_awaiting_completion(session: Session, limit: int,
                                      after: uuid.UUID | None = None) -> list[uuid.UUID]:
    """Authorised escrows whose order was delivered: the capture follow-up was lost or
    failed transiently (a safety net for the renewal job). By order id, past ``after``: a
    catch-up chain's cursor (see ``find_due_for_settlement``)."""
    return list(session.scalars(
        select(PaymentEscrow.order_id)
        .join(Order, Order.id == PaymentEscrow.order_id)
        .where(PaymentEscrow.state == "authorized",
               Order.status.in_([OrderStatus.COMPLETED, OrderStatus.DISPUTED]),
               true() if after is None else PaymentEscrow.order_id > after)
        .order_by(PaymentEscrow.order_id).limit(limit)))


def find_for_reconciliation(session: Session, since: datetime,
                            limit: int) -> list[PaymentEscrow]:
    final = ("settled", "released", "refunded", "failed")
    return list(session.scalars(
        select(PaymentEscrow)
        .where(or_(PaymentEscrow.updated_at >= since, PaymentEscrow.state.not_in(final)))
        .order_by(PaymentEscrow.updated_at.desc()).limit(limit)))


def known_intent_refs(session: Session, refs: list[str]) -> set[str]:
    if not refs:
        return set()
    return set(session.scalars(
        select(PaymentEscrow.intent_ref).where(PaymentEscrow.intent_ref.in_(refs))))


# -------------------------------------------------------------- customers and methods


def find_customer(session: Session, user_id: uuid.UUID, gateway: str) -> PaymentCustomer | None:
    return session.scalars(select(PaymentCustomer).where(
        PaymentCustomer.user_id == user_id, PaymentCustomer.gateway == gateway)).one_or_none()


def find_method(session: Session, user_id: uuid.UUID, gateway: str,
                method_ref: str) -> SavedPaymentMethod | None:
    return session.scalars(select(SavedPaymentMethod).where(
        SavedPaymentMethod.user_id == user_id, SavedPaymentMethod.gateway == gateway,
        SavedPaymentMethod.method_ref == method_ref)).one_or_none()


def find_default_method(session: Session, user_id: uuid.UUID,
                        gateway: str) -> SavedPaymentMethod | None:
    return session.scalars(
        select(SavedPaymentMethod)
        .where(SavedPaymentMethod.user_id == user_id, SavedPaymentMethod.gateway == gateway)
        .order_by(SavedPaymentMethod.is_default.desc(), SavedPaymentMethod.created_at.desc())
        .limit(1)).one_or_none()


def find_methods(session: Session, user_id: uuid.UUID, gateway: str) -> list[SavedPaymentMethod]:
    return list(session.scalars(
        select(SavedPaymentMethod)
        .where(SavedPaymentMethod.user_id == user_id, SavedPaymentMethod.gateway == gateway)
        .order_by(SavedPaymentMethod.created_at.desc(), SavedPaymentMethod.id)))


def find_payout_account(session: Session, user_id: uuid.UUID,
                        gateway: str) -> PayoutAccount | None:
    return session.scalars(select(PayoutAccount).where(
        PayoutAccount.user_id == user_id, PayoutAccount.gateway == gateway)).one_or_none()


def find_payout_account_by_ref(session: Session, gateway: str, account_ref: str, *,
                               for_update: bool = False) -> PayoutAccount | None:
    stmt = select(PayoutAccount).where(PayoutAccount.gateway == gateway,
                                       PayoutAccount.account_ref == account_ref)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def find_escrow_by_transfer(session: Session, transfer_ref: str, *,
                            for_update: bool = False) -> PaymentEscrow | None:
    stmt = select(PaymentEscrow).where(PaymentEscrow.transfer_ref == transfer_ref)
    if for_update:
        stmt = stmt.with_for_update()
    return session.scalars(stmt).one_or_none()


def find_escrows_for_payout(session: Session, payee_id: uuid.UUID, gateway: str,
                            payout_ref: str, statuses: tuple[str, ...],
                            transferred_before: datetime) -> list[PaymentEscrow]:
    """A payout's escrows (locked): those it already carries, and the provider's transferred
    ones still waiting (``statuses``) whose transfer was made before the payout was."""
    return list(session.scalars(
        select(PaymentEscrow)
        .where(PaymentEscrow.payee_id == payee_id, PaymentEscrow.gateway == gateway,
               PaymentEscrow.transfer_ref.is_not(None),
               or_(PaymentEscrow.payout_ref == payout_ref,
                   and_(PaymentEscrow.payout_status.in_(statuses),
                        PaymentEscrow.payout_status_at <= transferred_before)))
        .order_by(PaymentEscrow.id)
        .with_for_update()))


def find_flagged_for_method(session: Session, user_id: uuid.UUID,
                            flags: tuple[str, ...]) -> list[PaymentEscrow]:
    return list(session.scalars(
        select(PaymentEscrow)
        .where(PaymentEscrow.payer_id == user_id,
               PaymentEscrow.state == "awaiting_authorization", PaymentEscrow.flag.in_(flags))
        .with_for_update()))


# ---------------------------------------------------------------------- transactions


def select_transactions_for_user(user_id: uuid.UUID) -> Select[PaymentTransaction]:
    """The caller's payments, as payer or payee (for ``db.pagination.paginate``)."""
    return select(PaymentTransaction).where(or_(PaymentTransaction.payer_id == user_id,
                                                PaymentTransaction.payee_id == user_id))


def find_transactions_for_order(session: Session,
                                order_id: uuid.UUID) -> list[PaymentTransaction]:
    return list(session.scalars(
        select(PaymentTransaction).where(PaymentTransaction.order_id == order_id)
        .order_by(PaymentTransaction.created_at, PaymentTransaction.id)))


def find_escrows_by_transaction(session: Session,
                                ids: list[uuid.UUID]) -> dict[uuid.UUID, PaymentEscrow]:
    if not ids:
        return {}
    rows = session.scalars(select(PaymentEscrow).where(PaymentEscrow.transaction_id.in_(ids)))
    return {row.transaction_id: row for row in rows}


# -------------------------------------------------------------------------- ledger


def ledger_balances(session: Session) -> list[tuple[str, str, int]]:
    """(account, currency, balance) for every account that ever moved money."""
    rows = session.execute(
        select(LedgerEntry.account, LedgerEntry.currency, func.sum(LedgerEntry.amount_minor))
        .group_by(LedgerEntry.account, LedgerEntry.currency)
        .order_by(LedgerEntry.currency, LedgerEntry.account))
    return [(account, currency, int(total)) for account, currency, total in rows]


def ledger_order_amounts(session: Session, order_id: uuid.UUID) -> dict[tuple[str, str], int]:
    """(kind, account) -> summed amount of one order's postings."""
    rows = session.execute(
        select(LedgerTransaction.kind, LedgerEntry.account, func.sum(LedgerEntry.amount_minor))
        .join(LedgerEntry, LedgerEntry.transaction_id == LedgerTransaction.id)
        .where(LedgerTransaction.order_id == order_id)
        .group_by(LedgerTransaction.kind, LedgerEntry.account))
    return {(kind, account): int(total) for kind, account, total in rows}


def latest_reconciliation(session: Session) -> ReconciliationRun | None:
    return session.scalars(
        select(ReconciliationRun).order_by(ReconciliationRun.id.desc()).limit(1)).one_or_none()
