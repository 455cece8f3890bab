"""What must hold after a run, checked in SQL and at the processor (its log of the actions it
really performed). Each check returns a list of violations (empty: it holds)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from db.models import Notification, OutboxMessage
from domain.realtime import OutboxEvent, route

# The state each planned outcome must end in: (order status, escrow state or None = no escrow).
# A dispute resolved with a refund cancels the order: refunded in full, the escrow ends
# ``refunded``; in part, the rest is settled to the provider.
EXPECTED = {"completed": ("completed", "settled"), "cancel_pending": ("cancelled", None),
            "cancel_accepted": ("cancelled", "released"),
            "refund_full": ("cancelled", "refunded"), "refund_partial": ("cancelled", "settled")}
# Where an order may legitimately rest when its client's flow stopped early (an answer the
# harness reports separately): waiting for a creator, a provider or an admin, or finished.
RESTING = {("pending", None), ("cancelled", None), ("cancelled", "released"),
           ("completed", "settled"), ("disputed", "captured"), ("cancelled", "refunded"),
           ("cancelled", "settled")}


@dataclass(frozen=True)
class OrderState:
    status: str
    escrow: str | None


def order_states(engine: Engine) -> dict[str, OrderState]:
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT o.id, o.status, e.state FROM live_stream_orders o "
            "LEFT JOIN payment_escrows e ON e.order_id = o.id"))
        return {str(oid): OrderState(str(status).lower(), state) for oid, status, state in rows}


def unsettled(engine: Engine, planned: dict[str, str]) -> list[str]:
    """Orders whose planned outcome is not reached yet (what quiescence waits for)."""
    states = order_states(engine)
    return [oid for oid, outcome in planned.items()
            if (states.get(oid, OrderState("missing", None)).status,
                states.get(oid, OrderState("missing", None)).escrow) != EXPECTED[outcome]]


def unpublished_outbox(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text(
            "SELECT count(*) FROM outbox WHERE published_at IS NULL")).scalar_one())


def check_orders(engine: Engine, planned: dict[str, str], stopped_early: set[str]
                 ) -> list[str]:
    """No order lost (the client got its 201, the row must exist) and none stuck: each in its
    planned end state, or (its flow stopped early) in a resting one."""
    states = order_states(engine)
    problems = []
    for oid, outcome in planned.items():
        state = states.get(oid)
        if state is None:
            problems.append(f"order {oid} lost (201 answered, no row)")
            continue
        got = (state.status, state.escrow)
        if oid in stopped_early:
            if got not in RESTING:
                problems.append(f"order {oid} ({outcome}, stopped early) stuck in {got}")
        elif got != EXPECTED[outcome]:
            problems.append(f"order {oid} ({outcome}) stuck in {got}, "
                            f"expected {EXPECTED[outcome]}")
    for oid, state in states.items():
        if oid not in planned and (state.status, state.escrow) not in RESTING:
            problems.append(f"order {oid} unknown to the clients stuck in {state}")
    return problems


def check_gateway(engine: Engine, operations: list[dict[str, Any]]) -> list[str]:
    """At the processor: per order at most one hold, capture, cancel, refund and transfer;
    every settled order held, captured and transferred exactly once, for the amounts the
    database booked; nothing captured or transferred for a released hold; a refund at the
    processor exactly when the database booked one, for the amount booked, and no transfer
    for an order refunded in full."""
    per_order: dict[str, Counter[str]] = defaultdict(Counter)
    amounts: dict[tuple[str, str], int] = {}
    for op in operations:
        order = op.get("order")
        if order and op["op"] in ("hold", "capture", "cancel", "refund", "transfer"):
            per_order[str(order)][op["op"]] += 1
            amounts[(str(order), op["op"])] = int(op.get("amount") or 0)
    problems = [f"order {order}: {kind} x{count} at the processor"
                for order, counts in per_order.items()
                for kind, count in counts.items() if count > 1]
    with engine.connect() as conn:
        escrows = conn.execute(text(
            "SELECT order_id, state, captured_minor, refunded_minor FROM payment_escrows")).all()
    for order_id, state, captured, refunded in escrows:
        counts = per_order.get(str(order_id), Counter())
        if counts["refund"] != (1 if refunded else 0):
            problems.append(f"order {order_id}: refunded {refunded} booked, "
                            f"{counts['refund']} refund(s) at the processor")
        elif refunded and amounts[(str(order_id), "refund")] != refunded:
            problems.append(f"order {order_id}: processor refunded "
                            f"{amounts[(str(order_id), 'refund')]}, booked {refunded}")
        if state == "refunded" and (counts["transfer"] or refunded != captured):
            problems.append(f"order {order_id} refunded in full ({refunded} of {captured}) "
                            f"with {dict(counts)} at the processor")
        if state == "settled":
            if (counts["hold"], counts["capture"], counts["transfer"]) != (1, 1, 1):
                problems.append(f"order {order_id} settled with {dict(counts)} at the processor")
            elif amounts[(str(order_id), "capture")] != captured:
                problems.append(f"order {order_id}: processor captured "
                                f"{amounts[(str(order_id), 'capture')]}, booked {captured}")
        elif state == "released" and (counts["capture"] or counts["transfer"]
                                      or counts["cancel"] != 1):
            problems.append(f"order {order_id} released with {dict(counts)} at the processor")
    return problems


def check_refunds(engine: Engine, operations: list[dict[str, Any]], planned: dict[str, int]
                  ) -> list[str]:
    """Every order whose dispute the admin resolved with a refund was refunded exactly once at
    the processor, for the amount the admin decided (``planned``: order id -> minor units),
    and the database booked that amount."""
    refunds: dict[str, list[int]] = defaultdict(list)
    for op in operations:
        if op["op"] == "refund" and op.get("order"):
            refunds[str(op["order"])].append(int(op.get("amount") or 0))
    with engine.connect() as conn:
        booked = {str(oid): int(minor) for oid, minor in conn.execute(text(
            "SELECT order_id, refunded_minor FROM payment_escrows"))}
    return [f"order {oid}: refund of {want} decided, processor refunded {refunds.get(oid, [])}"
            f", booked {booked.get(oid)}"
            for oid, want in planned.items()
            if refunds.get(oid, []) != [want] or booked.get(oid) != want]


def check_ledger(engine: Engine) -> list[str]:
    """Every posting balances per currency, so every currency's total is zero; no order has a
    posting of one kind twice; every settled escrow has exactly one capture posting, every
    refunded one (in full or in part) exactly one refund posting."""
    with engine.connect() as conn:
        unbalanced = conn.execute(text(
            "SELECT t.id, t.kind, e.currency, sum(e.amount_minor) FROM ledger_transactions t "
            "JOIN ledger_entries e ON e.transaction_id = t.id "
            "GROUP BY t.id, t.kind, e.currency HAVING sum(e.amount_minor) <> 0")).all()
        totals = conn.execute(text(
            "SELECT currency, sum(amount_minor) FROM ledger_entries GROUP BY currency "
            "HAVING sum(amount_minor) <> 0")).all()
        doubled = conn.execute(text(
            "SELECT order_id, kind, count(*) FROM ledger_transactions "
            "WHERE order_id IS NOT NULL GROUP BY order_id, kind HAVING count(*) > 1")).all()
        uncaptured = conn.execute(text(
            "SELECT e.order_id FROM payment_escrows e WHERE e.state = 'settled' AND "
            "(SELECT count(*) FROM ledger_transactions t WHERE t.order_id = e.order_id "
            "AND t.kind = 'capture') <> 1")).all()
        unbooked = conn.execute(text(
            "SELECT e.order_id FROM payment_escrows e WHERE e.refunded_minor > 0 AND "
            "(SELECT count(*) FROM ledger_transactions t WHERE t.order_id = e.order_id "
            "AND t.kind = 'refund') <> 1")).all()
    return ([f"posting {tid} ({kind}) unbalanced in {cur}: {total}"
             for tid, kind, cur, total in unbalanced]
            + [f"ledger total in {cur} is {total}" for cur, total in totals]
            + [f"order {oid}: {count} '{kind}' postings" for oid, kind, count in doubled]
            + [f"order {oid} settled without exactly one capture posting"
               for (oid,) in uncaptured]
            + [f"order {oid} refunded without exactly one refund posting"
               for (oid,) in unbooked])


def check_notifications(engine: Engine) -> list[str]:
    """Every committed event was published, and every person it should tell has its
    notification row (the routing the relay applies, recomputed here)."""
    problems = []
    with Session(engine) as session:
        have = {(n.recipient_id, n.event_id) for n in session.query(
            Notification.recipient_id, Notification.event_id)}
        for row in session.query(OutboxMessage).order_by(OutboxMessage.id):
            if row.published_at is None:
                problems.append(f"event {row.id} ({row.topic}) never published")
                continue
            event = OutboxEvent(row.id, row.topic, row.aggregate_id, row.payload,
                                row.created_at)
            for delivery in route(session, event).deliveries:
                if (delivery.recipient_id, delivery.event_id) not in have:
                    problems.append(f"event {row.id} ({row.topic}): no notification for "
                                    f"{delivery.recipient_id}")
    return problems


def notification_count(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(text("SELECT count(*) FROM notifications")).scalar_one())


def capture_lags(engine: Engine) -> list[float]:
    """Seconds from an order's completion to its capture posting (the payment queue's lag)."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT extract(epoch FROM t.created_at - o.completed_at) FROM ledger_transactions t "
            "JOIN live_stream_orders o ON o.id = t.order_id WHERE t.kind = 'capture'")).all()
    return [float(lag) for (lag,) in rows]
