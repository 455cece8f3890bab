"""What the GDPR rights do to each table: the export reads everything that is the person's,
erasure deletes what is theirs alone and pseudonymises what others or the law still need.

``TABLES`` names every table of ``db.models`` with its rule; a test fails when a table is added
without one, so a new kind of personal data cannot be forgotten by export and erasure.
docs/auth.md ("Privacy") explains the rules.
"""

from __future__ import annotations

import uuid
from enum import StrEnum
from typing import Any

from sqlalchemy.orm import Session

from db.queries import personal_data
from domain.projections import order_view

#: A payment's processor references belong to one side each: the payer's customer, card and
#: charge (intent), the payee's transfer and payout. Each side's export shows its own side's and
#: not the other's (found by tests/reliability/test_access_matrix.py: a provider's export
#: carried the creator's Stripe customer and card ids).
PAYER_REFERENCES = {"payment_escrows": frozenset({"customer_ref", "payment_method_ref",
                                                  "intent_ref"}),
                    "payment_transactions": frozenset({"stripe_payment_intent_id"})}
PAYEE_REFERENCES = {"payment_escrows": frozenset({"transfer_ref", "payout_ref"}),
                    "payment_transactions": frozenset[str]()}


def counterparty_references(table: str, payer_id: uuid.UUID | None,
                            user_id: uuid.UUID) -> frozenset[str]:
    """The columns of a ``table`` row (a payment or its escrow) that hold the OTHER side's
    processor references, for ``user_id``'s export."""
    return PAYEE_REFERENCES[table] if payer_id == user_id else PAYER_REFERENCES[table]


class Rule(StrEnum):
    #: The person's alone and needed by no one else: exported, then deleted.
    DELETED = "deleted"
    #: Shared with a counterparty, or a money record the law makes us keep: exported, then the
    #: row stays with its personal text removed, pointing at the anonymised account (its id is
    #: then a pseudonym: nothing else is left to tie it to a person).
    PSEUDONYMISED = "pseudonymised"
    #: Holds nothing about a person.
    NOT_PERSONAL = "not personal"


#: table -> (rule, why). Tables in db.models; the export section names are in users.export_data.
TABLES: dict[str, tuple[Rule, str]] = {
    "users": (Rule.PSEUDONYMISED, "username, email, password, profile, verification reason "
              "and activity removed; the row stays because money records point at it"),
    "audit_events": (Rule.PSEUDONYMISED, "the security log keeps what happened, without the "
                     "IP addresses"),
    "live_stream_orders": (Rule.PSEUDONYMISED, "the counterparty's order and the payments' "
                           "subject: the creator's title, description, address, requirements, "
                           "tags and reasons go, the location is coarsened to about 11 km"),
    "order_applications": (Rule.PSEUDONYMISED, "part of the creator's order history; the "
                           "provider's message goes"),
    "order_events": (Rule.PSEUDONYMISED, "the order's history; the reasons the person typed "
                     "go"),
    "order_messages": (Rule.PSEUDONYMISED, "the other party's conversation keeps its shape; "
                       "the bodies the person wrote go (also from the outbox and "
                       "notifications that carried them)"),
    "stream_sessions": (Rule.PSEUDONYMISED, "evidence of the paid order's delivery (times, "
                        "bytes, resolution); holds no personal text, and the key is never "
                        "stored"),
    "stream_segments": (Rule.PSEUDONYMISED, "as stream_sessions"),
    "payment_transactions": (Rule.PSEUDONYMISED, "accounting record kept for the statutory "
                             "retention period (amounts, fees, processor reference)"),
    "payment_escrows": (Rule.PSEUDONYMISED, "accounting record as payment_transactions; the "
                        "payer's processor customer and card references go"),
    "ledger_transactions": (Rule.NOT_PERSONAL, "double-entry money movements by order; "
                            "kept whole so the books still balance"),
    "ledger_entries": (Rule.NOT_PERSONAL, "as ledger_transactions"),
    "payment_customers": (Rule.DELETED, "the processor customer of the person"),
    "payment_methods": (Rule.DELETED, "the person's saved cards"),
    "payout_accounts": (Rule.DELETED, "the provider's connected account"),
    "provider_location_samples": (Rule.DELETED, "the provider's location history"),
    "order_geofence_states": (Rule.DELETED, "where the provider was relative to an order"),
    "notifications": (Rule.DELETED, "the person's inbox"),
    "order_matches": (Rule.DELETED, "invitations and offers the provider received"),
    "order_assignments": (Rule.DELETED, "the batch re-match's choice of the provider"),
    "account_links": (Rule.DELETED, "the account's password-reset and verification links"),
    "provider_no_shows": (Rule.DELETED, "the provider's missed acceptances (a ranking "
                          "signal about the person)"),
    "refresh_token_families": (Rule.DELETED, "the account's sign-ins (token ids, times; "
                               "every token is already revoked by erasure)"),
    "email_outbox": (Rule.DELETED, "mails to the person (their address, the links)"),
    "idempotency_keys": (Rule.DELETED, "remembered responses to the person's retried "
                         "requests"),
    "order_dispatches": (Rule.NOT_PERSONAL, "an order's dispatch progress (the offer it points "
                         "at is deleted with the provider's matches)"),
    "outbox": (Rule.PSEUDONYMISED, "events carry ids and the public view of orders: the "
               "copies of an erased creator's order are rewritten as the order now is, chat "
               "bodies are scrubbed with the messages"),
    "operating_areas": (Rule.NOT_PERSONAL, "where orders may be posted"),
    "processed_webhook_events": (Rule.NOT_PERSONAL, "processor event ids"),
    "reconciliation_runs": (Rule.NOT_PERSONAL, "counts and processor references of drift"),
    "alembic_version": (Rule.NOT_PERSONAL, "the schema version"),
}


#: The fields of an order's view (today's and the flat v1 payloads) that erasure rewrites in
#: every stored copy; the rest (status, amounts, dates, ids) is no one's personal data.
_ORDER_TEXT_FIELDS = ("title", "description", "tags", "requirements", "cancellationReason",
                      "disputeReason")


def _rewrite(value: Any, views: dict[str, dict[str, Any]]) -> Any:
    """``value`` with every copy of one of these orders (a dict whose ``id`` or ``orderId``
    names it) showing the order's erased view instead, at any depth."""
    if isinstance(value, list):
        return [_rewrite(item, views) for item in value]
    if not isinstance(value, dict):
        return value
    rewritten = {key: _rewrite(item, views) for key, item in value.items()}
    view = views.get(str(value.get("id"))) or views.get(str(value.get("orderId")))
    if view is not None:
        for field in _ORDER_TEXT_FIELDS:
            if field in rewritten:
                rewritten[field] = view.get(field)
        where = view["location"]
        for field in ("latitude", "longitude"):
            if field in rewritten:  # a v1 payload: the position flat
                rewritten[field] = where[field]
        if isinstance(rewritten.get("location"), dict):
            rewritten["location"] = {
                key: where.get(key) for key in rewritten["location"]}
    return rewritten


def scrub_order_copies(session: Session, creator_id: uuid.UUID) -> int:
    """After the creator's orders were pseudonymised: rewrite the copies of them that events
    and notifications (the counterparties' too) carry, so none keeps the title, the words or
    the exact place. Returns the number of rows rewritten."""
    views = {str(order.id): order_view(order)
             for order in personal_data.created_orders(session, creator_id)}
    changed = 0
    for row in personal_data.copies_of_orders(session, (uuid.UUID(i) for i in views)):
        payload = _rewrite(row.payload, views)
        if payload != row.payload:
            row.payload = payload  # a new dict: the JSON column does not track in-place edits
            changed += 1
    session.flush()
    return changed
