"""Reconciliation: does the ledger agree with the processor? And holds nobody owns.

``reconcile`` re-reads the processor's objects of recent and open escrows and compares them
with what the ledger booked; every disagreement is recorded as drift (a ``reconciliation_runs``
row, and a warning log line) for a human. It never "fixes" money by itself: a drift means a
bug or an action outside the platform (a refund in the processor's dashboard, say).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from db.models import PaymentEscrow, ReconciliationRun
from db.queries import payments as queries
from domain.payments import keys
from domain.payments.escrow import EscrowState
from domain.payments.gateway import GatewayError, IntentStatus, PaymentGateway
from domain.payments.ledger import Account

log = logging.getLogger(__name__)

EXPECTED_INTENT_STATUS: dict[EscrowState, frozenset[str]] = {
    EscrowState.AWAITING_AUTHENTICATION: frozenset({IntentStatus.REQUIRES_ACTION}),
    EscrowState.AUTHORIZED: frozenset({IntentStatus.REQUIRES_CAPTURE}),
    EscrowState.CAPTURED: frozenset({IntentStatus.SUCCEEDED}),
    EscrowState.SETTLING: frozenset({IntentStatus.SUCCEEDED}),
    EscrowState.SETTLED: frozenset({IntentStatus.SUCCEEDED}),
    EscrowState.REFUNDED: frozenset({IntentStatus.SUCCEEDED}),
    EscrowState.RELEASED: frozenset({IntentStatus.CANCELED}),
}


def ledger_drift(session: Session) -> list[dict[str, Any]]:
    """Every currency's balances must sum to zero."""
    totals: dict[str, int] = defaultdict(int)
    for _account, currency, balance in queries.ledger_balances(session):
        totals[currency] += balance
    return [{"kind": "ledger_unbalanced", "currency": c, "sumMinor": s}
            for c, s in sorted(totals.items()) if s != 0]


def escrow_drift(session: Session, gateway: PaymentGateway,
                 escrow: PaymentEscrow) -> list[dict[str, Any]]:
    booked = queries.ledger_order_amounts(session, escrow.order_id)
    captured = booked.get(("capture", Account.ESCROW.value), 0)
    refunded = -booked.get(("refund", Account.ESCROW.value), 0)
    paid_out = booked.get(("payout", Account.PROVIDER_PAID_OUT.value), 0)
    base = {"orderId": str(escrow.order_id), "state": escrow.state}
    found: list[dict[str, Any]] = []

    def drift(kind: str, **facts: Any) -> None:
        found.append({"kind": kind, **base, **facts})

    if captured != escrow.captured_minor or refunded != escrow.refunded_minor:
        drift("escrow_vs_ledger", escrowCaptured=escrow.captured_minor, ledgerCaptured=captured,
              escrowRefunded=escrow.refunded_minor, ledgerRefunded=refunded)
    if escrow.intent_ref is not None:
        intent = gateway.retrieve_intent(escrow.intent_ref)
        expected = EXPECTED_INTENT_STATUS.get(EscrowState(escrow.state))
        if expected is not None and intent.status not in expected:
            drift("intent_status", intentId=intent.id, processorStatus=intent.status)
        if intent.amount_received != captured:
            drift("captured_amount", intentId=intent.id, processor=intent.amount_received,
                  ledger=captured)
        if intent.status == IntentStatus.SUCCEEDED:
            processor_refunded = sum(r.amount for r in gateway.list_refunds(intent.id)
                                     if r.status == "succeeded")
            if processor_refunded != refunded:
                drift("refunded_amount", intentId=intent.id, processor=processor_refunded,
                      ledger=refunded)
    if escrow.transfer_ref is not None:
        transfer = gateway.retrieve_transfer(escrow.transfer_ref)
        if transfer.amount - transfer.reversed_amount != paid_out:
            drift("transferred_amount", transferId=transfer.id,
                  processor=transfer.amount - transfer.reversed_amount, ledger=paid_out)
    if escrow.state in (EscrowState.SETTLED, EscrowState.REFUNDED):
        held = sum(v for (_, account), v in booked.items() if account == Account.ESCROW.value)
        if held != 0:
            drift("escrow_not_empty", ledgerEscrow=held)
    return found


def reconcile(session: Session, gateway: PaymentGateway, now: datetime,
              lookback: timedelta, limit: int) -> ReconciliationRun:
    drift = ledger_drift(session)
    escrows = queries.find_for_reconciliation(session, now - lookback, limit)
    for escrow in escrows:
        try:
            drift += escrow_drift(session, gateway, escrow)
        except GatewayError as exc:
            drift.append({"kind": "processor_error", "orderId": str(escrow.order_id),
                          "error": exc.message, "code": exc.code})
    for item in drift:
        log.warning("payment drift: %s", item["kind"], extra={"drift": item})
    run = ReconciliationRun(started_at=now, checked=len(escrows), drift=drift)
    session.add(run)
    session.flush()
    return run


def sweep_orphan_holds(session: Session, gateway: PaymentGateway, now: datetime,
                       grace: timedelta, lookback: timedelta) -> list[str]:
    """Cancel authorisations no escrow owns (a request that held, then failed to commit; an
    old hold whose cancellation after renewal was lost). Only intents older than ``grace``:
    a request in flight may not have committed yet."""
    intents = [i for i in gateway.list_intents_since(now - lookback)
               if i.status == IntentStatus.REQUIRES_CAPTURE and i.order_id
               and i.created is not None and i.created <= now - grace]
    known = queries.known_intent_refs(session, [i.id for i in intents])
    cancelled = []
    for intent in intents:
        if intent.id in known:
            continue
        gateway.cancel(intent.id, idempotency_key=keys.cancel_orphan(intent.id))
        log.warning("cancelled an orphan hold", extra={"intent": intent.id,
                                                       "order": intent.order_id})
        cancelled.append(intent.id)
    return cancelled
