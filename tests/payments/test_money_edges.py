"""Money edge cases (issue 17): the processor's fee kept on a refund is booked, three-decimal
currencies end in 0, providers see where their payout is. Every path leaves each currency's
ledger summing to zero."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import LedgerTransaction, User
from db.queries import payments as queries
from domain.money import (
    ZERO_ENDING_CURRENCIES,
    FeePolicy,
    InvalidAmount,
    check_chargeable,
    split_fees,
)
from domain.payments import capture, ledger, settlement
from domain.payments.offline import OfflineGateway
from services import Payments
from tests.api.orders_helpers import call, create_order, order_body
from tests.payments.conftest import (
    CONFIG,
    Clock,
    accepted,
    deliver,
    escrow_of,
    onboard,
)
from tests.payments.test_webhooks_reconciliation import _post

CURRENCIES = st.sampled_from(["USD", "EUR", "JPY", "KWD", "BHD", "JOD", "OMR", "TND", "CLF"])
BPS = st.integers(min_value=0, max_value=10_000)
FIXED = st.integers(min_value=0, max_value=10_000)


def _now() -> datetime:
    return datetime.now(UTC)


def _balances(session: Session) -> dict[tuple[str, str], int]:
    return {(a, c): b for a, c, b in queries.ledger_balances(session) if b != 0}


def _zero_sum(session: Session) -> None:
    totals: dict[str, int] = {}
    for (_, currency), balance in _balances(session).items():
        totals[currency] = totals.get(currency, 0) + balance
    assert all(v == 0 for v in totals.values()), totals


# ----------------------------------------------------------------------- refund fee kept


@settings(max_examples=300, deadline=None)
@given(captured=st.integers(0, 10**9), cuts=st.lists(st.integers(0, 10**9), max_size=5),
       currency=CURRENCIES, platform=BPS, processing=BPS, fixed=FIXED)
def test_refund_fees_add_up_to_the_fee_the_processor_kept(
        captured: int, cuts: list[int], currency: str, platform: int, processing: int,
        fixed: int) -> None:
    """Any sequence of refunds, then settlement of the rest: processing fees booked equal the
    fee on the captured charge, each refund's share is >= 0, every posting balances."""
    policy = FeePolicy(platform, processing, fixed)
    refunded = 0
    balances: dict[ledger.Account, int] = {}
    postings = [ledger.capture_legs(captured)]
    for cut in cuts:
        amount = min(cut, captured - refunded)
        kept = ledger.refund_fee(captured, refunded, amount, currency, policy)
        assert kept >= 0
        postings += [ledger.refund_legs(amount), ledger.refund_fee_legs(kept)]
        refunded += amount
    split = split_fees(captured - refunded, currency, policy)
    postings += [ledger.settle_legs(split), ledger.payout_legs(split.net)]
    for legs in postings:
        for account, amount in ledger.balanced_legs(legs):
            balances[account] = balances.get(account, 0) + amount
    assert sum(balances.values()) == 0
    assert balances.get(ledger.Account.ESCROW, 0) == 0
    assert balances.get(ledger.Account.PROCESSING_FEES, 0) == split_fees(
        captured, currency, policy).processing_fee


def _refund_resolution(client: FlaskClient, people: dict[str, User], pay: Payments,
                       session: Session, refund: str | None) -> uuid.UUID:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(session, oid)
    onboard(session, people["provider"])
    capture.capture(session, pay.gateway, pay.config, oid, _now())
    session.commit()
    assert call(client, "POST", f"/orders/{oid}/dispute", people["creator"],
                {"reason": "wrong place"}).status_code == 200
    body = {"outcome": "refund", "note": "wrong pier"} | (
        {"refundAmount": refund} if refund else {})
    assert call(client, "POST", f"/admin/orders/{oid}/resolve", people["admin"],
                body).status_code == 200
    for _ in range(2):  # the task runs twice: one refund, one fee posting
        capture.apply_resolution(session, pay.gateway, pay.config, oid, _now())
        session.commit()
    return oid


def test_a_full_refund_books_the_fee_the_processor_kept(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    oid = _refund_resolution(client, people, pay, db_session, None)
    assert escrow_of(db_session, oid).state == "refunded"
    # 30.00 USD captured and all refunded: the processor kept 2.9 % + 0.30 = 1.17, paid by
    # the platform.
    balances = _balances(db_session)
    assert balances[("processing_fees", "USD")] == 117
    assert balances[("platform_revenue", "USD")] == -117
    assert ("escrow", "USD") not in balances and ("creator_funding", "USD") not in balances
    kinds = db_session.scalars(select(LedgerTransaction.kind).where(
        LedgerTransaction.order_id == oid).order_by(LedgerTransaction.id)).all()
    assert kinds == ["capture", "refund", "refund_fee"]
    _zero_sum(db_session)


def test_a_partial_refund_then_settlement_books_the_fee_of_the_whole_charge(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    oid = _refund_resolution(client, people, pay, db_session, "10.00")
    for _ in range(2):
        settlement.split(db_session, CONFIG, oid, _now())
        settlement.pay_out(db_session, pay.gateway, oid, _now())
        db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert escrow.state == "settled" and escrow.refunded_minor == 1000
    balances = _balances(db_session)
    # Settlement of 20.00: processing 0.88, platform 3.00, net 16.12; the refund kept
    # fee(30.00) - fee(20.00) = 1.17 - 0.88 = 0.29 more, out of the platform's revenue.
    assert balances[("processing_fees", "USD")] == 117
    assert balances[("platform_revenue", "USD")] == 300 - 29
    assert balances[("provider_paid_out", "USD")] == 1612
    _zero_sum(db_session)


# ------------------------------------------------------------------ three-decimal currencies


@settings(max_examples=300, deadline=None)
@given(minor=st.integers(0, 10**11), currency=CURRENCIES)
def test_only_zero_ending_three_decimal_amounts_are_chargeable(minor: int,
                                                               currency: str) -> None:
    refused = currency in ZERO_ENDING_CURRENCIES and minor % 10 != 0
    try:
        assert check_chargeable(minor, currency) == minor
        assert not refused
    except InvalidAmount as exc:
        assert refused and exc.code == "AMOUNT_NOT_CHARGEABLE" and currency in exc.message


def test_three_decimal_orders_must_end_in_zero(client: FlaskClient, people: dict[str, User],
                                               pay: Payments) -> None:
    creator = people["creator"]
    for currency in sorted(ZERO_ENDING_CURRENCIES):
        refused = call(client, "POST", "/orders", creator,
                       order_body(baseAmount="12.345", currency=currency))
        assert refused.status_code == 400, refused.json
        error = refused.json["error"]
        assert error["code"] == "AMOUNT_NOT_CHARGEABLE"
        assert "must end in 0" in error["details"]["baseAmount"][0]
    ok = create_order(client, creator, baseAmount="12.340", currency="KWD")
    assert ok["currency"] == "KWD"
    assert call(client, "POST", "/orders", creator,
                order_body(baseAmount="12.345", currency="USD")).status_code == 400  # 2 dp
    edited = call(client, "PUT", f"/orders/{ok['id']}", creator,
                  {"baseAmount": "1.111", "currency": "BHD"})
    assert edited.status_code == 400 and edited.json["error"]["code"] == "AMOUNT_NOT_CHARGEABLE"
    applied = call(client, "POST", f"/orders/{ok['id']}/applications", people["provider"],
                   {"proposedAmount": "5.005"})
    assert applied.status_code == 400 and "proposedAmount" in applied.json["error"]["details"]
    assert call(client, "POST", f"/orders/{ok['id']}/applications", people["provider"],
                {"proposedAmount": "5.010"}).status_code == 201


# ------------------------------------------------------------------------- payout status


def _settled(client: FlaskClient, people: dict[str, User], pay: Payments,
             session: Session) -> uuid.UUID:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(session, oid, ago=timedelta(days=4))
    capture.capture(session, pay.gateway, pay.config, oid, _now())
    session.commit()
    settlement.split(session, CONFIG, oid, _now())
    settlement.pay_out(session, pay.gateway, oid, _now())
    session.commit()
    return oid


def _payout_event(kind: str, payout_id: str, account: str) -> bytes:
    return json.dumps({"id": f"evt_{uuid.uuid4().hex[:12]}", "object": "event",
                       "type": kind, "account": account,
                       "data": {"object": {"id": payout_id, "object": "payout"}}}).encode()


def _shown(client: FlaskClient, provider: User) -> dict[str, str | None]:
    items = call(client, "GET", "/payments", provider).json["data"]["items"]
    return {i["orderId"]: i["payoutStatus"] for i in items}


def test_providers_see_where_their_payout_is(
        client: FlaskClient, people: dict[str, User], pay: Payments, gateway: OfflineGateway,
        clock: Clock, db_session: Session) -> None:
    provider, acct = people["provider"], "acct_provider1"
    onboard(db_session, provider, acct)
    first = _settled(client, people, pay, db_session)
    assert _shown(client, provider) == {str(first): "pending"}

    clock.now = _now()  # the bank payout is made after the first transfer...
    po = gateway.record_payout(acct, "in_transit").id
    second = _settled(client, people, pay, db_session)  # ...and before the second one
    event = _payout_event("payout.created", po, acct)
    assert _post(client, event).json["data"]["outcome"] == "payout-in_transit:1"
    assert _post(client, _payout_event("payout.updated", po, acct)).json["data"][
        "outcome"] == "in-sync"  # run twice: nothing moves
    assert _shown(client, provider) == {str(first): "in_transit", str(second): "pending"}

    gateway.record_payout(acct, "paid", payout_id=po)
    assert _post(client, _payout_event("payout.paid", po, acct)).json["data"][
        "outcome"] == "payout-paid:1"
    # A late in_transit event re-reads the payout (paid): no step back.
    assert _post(client, _payout_event("payout.updated", po, acct)).json["data"][
        "outcome"] == "in-sync"
    gateway.record_payout(acct, "failed", payout_id=po)  # Stripe can fail a paid payout
    assert _post(client, _payout_event("payout.failed", po, acct)).json["data"][
        "outcome"] == "payout-failed:1"
    assert _shown(client, provider) == {str(first): "failed", str(second): "pending"}

    # The next payout carries both (the failed money went back to the connected balance).
    clock.now = _now()
    po2 = gateway.record_payout(acct, "pending").id
    assert _post(client, _payout_event("payout.created", po2, acct)).json["data"][
        "outcome"] == "payout-pending:2"
    gateway.record_payout(acct, "canceled", payout_id=po2)
    assert _post(client, _payout_event("payout.canceled", po2, acct)).json["data"][
        "outcome"] == "payout-canceled:2"
    escrow = escrow_of(db_session, first)
    assert escrow.payout_status == "pending" and escrow.payout_ref is None
    assert _post(client, _payout_event("payout.paid", "po_x", "acct_other")).json["data"][
        "outcome"] == "unknown-account"
    # Payout events move no money in our ledger: the transfer was the payout posting.
    assert db_session.scalar(select(func.count()).select_from(LedgerTransaction).where(
        LedgerTransaction.kind == "payout")) == 2
    _zero_sum(db_session)


def test_transfer_created_event_is_in_sync(client: FlaskClient, people: dict[str, User],
                                           pay: Payments, db_session: Session) -> None:
    onboard(db_session, people["provider"])
    oid = _settled(client, people, pay, db_session)
    ref = escrow_of(db_session, oid).transfer_ref
    body = json.dumps({"id": "evt_tr_1", "object": "event", "type": "transfer.created",
                       "data": {"object": {"id": ref, "object": "transfer"}}}).encode()
    assert _post(client, body).json["data"]["outcome"] == "in-sync"
    assert escrow_of(db_session, oid).payout_status == "pending"
