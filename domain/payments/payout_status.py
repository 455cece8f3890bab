"""Where a provider's money is after settlement, from the processor's transfer and payout
events, so the provider can see it (``payoutStatus`` on their payments).

    (no transfer yet) -> pending -> in_transit -> paid
                                               \\-> failed  (the bank refused; the money is back
                                                            in the connected balance and the
                                                            next payout carries it again)

``pending``: the transfer reached the provider's connected balance (set by ``settlement``).
A connected account pays its balance to the bank in payouts (Stripe: ``po_...``, events
``payout.created|updated|paid|failed|canceled`` on the Connect endpoint, with the account). A
payout carries the transfers made before it was created; so a payout event assigns to itself
the provider's transferred orders still waiting (``pending``, or ``failed`` by an earlier
payout) whose status dates from before the payout, and moves those it already carries.

Events are not trusted for state: the payout is re-read from the processor. Within one payout
a status only moves forward (pending < in_transit < paid < failed; Stripe can fail a payout
after marking it paid), so late and repeated events change nothing; a ``canceled`` payout hands
its orders back to ``pending`` for the next one.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from db.models import PaymentEscrow
from db.queries import payments as queries
from domain.payments.gateway import PaymentGateway, PayoutStatus

PENDING = PayoutStatus.PENDING
IN_TRANSIT = PayoutStatus.IN_TRANSIT
PAID = PayoutStatus.PAID
FAILED = PayoutStatus.FAILED
_RANK = {PENDING: 0, IN_TRANSIT: 1, PAID: 2, FAILED: 3}


def transferred(escrow: PaymentEscrow, now: datetime) -> None:
    """The transfer to the provider's connected account was made: waiting for a payout."""
    if escrow.payout_status is None:
        escrow.payout_status = PENDING
        escrow.payout_status_at = now


def advance(escrow: PaymentEscrow, payout_ref: str, status: str, now: datetime) -> bool:
    """Apply one payout's status to one escrow; False when it changes nothing."""
    if status == PayoutStatus.CANCELED:
        if escrow.payout_ref != payout_ref:
            return False
        escrow.payout_ref = None
        escrow.payout_status = PENDING
        escrow.payout_status_at = now
        return True
    if status not in _RANK:
        return False
    if escrow.payout_ref == payout_ref and _RANK[status] <= _RANK.get(
            escrow.payout_status or PENDING, 0):
        return False  # late or repeated: this payout already got there
    escrow.payout_ref = payout_ref
    escrow.payout_status = status
    escrow.payout_status_at = now
    return True


def sync_payout(session: Session, gateway: PaymentGateway, payout_ref: str, account_ref: str,
                now: datetime) -> str:
    """A payout event: re-read the payout and move the orders it carries."""
    account = queries.find_payout_account_by_ref(session, gateway.name, account_ref)
    if account is None:
        return "unknown-account"
    payout = gateway.retrieve_payout(payout_ref, account_id=account_ref)
    escrows = queries.find_escrows_for_payout(session, account.user_id, gateway.name, payout.id,
                                              (PENDING, FAILED), payout.created)
    moved = sum(advance(e, payout.id, payout.status, now) for e in escrows)
    session.flush()
    return f"payout-{payout.status}:{moved}" if moved else "in-sync"


def sync_transfer(session: Session, gateway: PaymentGateway, transfer_ref: str,
                  now: datetime) -> str:
    """``transfer.created``: our own transfer, already marked when it was made (a transfer
    whose commit was lost is finished by settlement, which repeats it under its key)."""
    escrow = queries.find_escrow_by_transfer(session, transfer_ref, for_update=True)
    if escrow is None:
        return "unknown-transfer"
    before = escrow.payout_status
    transferred(escrow, now)
    session.flush()
    return "in-sync" if before is not None else "payout-pending"
