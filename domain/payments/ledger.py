"""The double-entry ledger: where every minor unit is, per currency.

Accounts are buckets of money; a posting moves money between them as signed legs that sum to
zero (positive = into the account). So the balances of all accounts of a currency always sum
to zero, and the ledger cannot create or lose money: it can only say where it went.

    creator_funding    money paid in by creators (goes negative as cards are charged)
    escrow             captured, not yet split (held for the order until settlement)
    platform_revenue   the platform fee
    processing_fees    what the card processor keeps
    provider_payable   the provider's net, owed until transferred
    provider_paid_out  transferred to providers' connected accounts

Postings of one order (each one transaction, each idempotent by its key):
    capture    creator_funding -> escrow                     (captured amount)
    refund     escrow -> creator_funding                     (refunded amount)
    settle     escrow -> platform_revenue + processing_fees + provider_payable (the split)
    payout     provider_payable -> provider_paid_out         (the transfer)
    refund_fee platform_revenue -> processing_fees           (fee kept on a refund)

The processor does not return its fee when a charge is refunded: it keeps the fee of the whole
captured charge. Settlement books the fee of what stays with the order (captured - refunded),
so each refund books the difference (the fee of the money before the refund minus the fee of
the money after it), and the platform absorbs it. Over any sequence of refunds these
differences telescope: fees booked = fee(captured), exactly what the processor kept.
"""

from __future__ import annotations

import uuid
from enum import StrEnum

from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import LedgerEntry, LedgerTransaction
from domain.money import FeePolicy, FeeSplit, normalize_currency, split_fees


class Account(StrEnum):
    CREATOR_FUNDING = "creator_funding"
    ESCROW = "escrow"
    PLATFORM_REVENUE = "platform_revenue"
    PROCESSING_FEES = "processing_fees"
    PROVIDER_PAYABLE = "provider_payable"
    PROVIDER_PAID_OUT = "provider_paid_out"


class UnbalancedPosting(ValueError):
    """A posting whose legs do not sum to zero: a bug, never written."""


Leg = tuple[Account, int]


def balanced_legs(legs: list[Leg]) -> list[Leg]:
    """Drop zero legs and refuse anything that does not sum to zero."""
    if sum(amount for _, amount in legs) != 0:
        raise UnbalancedPosting(f"legs do not balance: {legs!r}")
    return [(account, amount) for account, amount in legs if amount != 0]


def post(session: Session, *, key: str, kind: str, order_id: uuid.UUID | None, currency: str,
         legs: list[Leg], processor_ref: str | None = None) -> LedgerTransaction:
    """Write one balanced posting in the caller's transaction. Posting the same ``key`` again
    returns the first posting unchanged (the unique key also stops a concurrent double)."""
    existing = session.scalars(
        select(LedgerTransaction).where(LedgerTransaction.key == key)).one_or_none()
    if existing is not None:
        return existing
    code = normalize_currency(currency)
    kept = balanced_legs(legs)
    txn = LedgerTransaction(key=key, kind=kind, order_id=order_id, currency=code,
                            processor_ref=processor_ref)
    session.add(txn)
    session.flush()
    for account, amount in kept:
        session.add(LedgerEntry(transaction_id=txn.id, account=account.value, currency=code,
                                amount_minor=amount))
    session.flush()
    return txn


def capture_legs(amount: int) -> list[Leg]:
    return [(Account.CREATOR_FUNDING, -amount), (Account.ESCROW, amount)]


def refund_legs(amount: int) -> list[Leg]:
    return [(Account.ESCROW, -amount), (Account.CREATOR_FUNDING, amount)]


def settle_legs(split: FeeSplit) -> list[Leg]:
    return [(Account.ESCROW, -split.gross), (Account.PLATFORM_REVENUE, split.platform_fee),
            (Account.PROCESSING_FEES, split.processing_fee),
            (Account.PROVIDER_PAYABLE, split.net)]


def payout_legs(amount: int) -> list[Leg]:
    return [(Account.PROVIDER_PAYABLE, -amount), (Account.PROVIDER_PAID_OUT, amount)]


def refund_fee(captured: int, refunded_before: int, amount: int, currency: str,
               policy: FeePolicy) -> int:
    """The processing fee a refund of ``amount`` leaves with the processor: the fee on what
    the order kept before the refund minus the fee on what it keeps after (>= 0)."""
    before = split_fees(captured - refunded_before, currency, policy).processing_fee
    after = split_fees(captured - refunded_before - amount, currency, policy).processing_fee
    return before - after


def refund_fee_legs(amount: int) -> list[Leg]:
    return [(Account.PLATFORM_REVENUE, -amount), (Account.PROCESSING_FEES, amount)]
