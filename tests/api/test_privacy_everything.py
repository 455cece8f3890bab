"""GDPR export and erasure over one of everything: a person who is creator and provider at
once, with one row in every table that can hold their data. The export has a section for each;
after erasure no row of any table still names them (their name, address, words, cards,
accounts, places), the rows that stay point at the anonymised account only where
``domain.privacy`` says they may, and the ledger still balances."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus, PaymentStatus, UserRole
from db.models import (
    Base,
    GeofenceState,
    IdempotencyRecord,
    LedgerEntry,
    LocationSample,
    Notification,
    Order,
    OrderApplication,
    OrderAssignment,
    OrderDispatch,
    OrderEvent,
    OrderMatch,
    OrderMessage,
    OutboxMessage,
    PaymentCustomer,
    PaymentEscrow,
    PaymentTransaction,
    PayoutAccount,
    RefreshTokenFamily,
    SavedPaymentMethod,
    StreamSegment,
    StreamSession,
)
from db.types import utcnow
from domain import audit, privacy
from domain.audit import AuditEventType
from domain.events import order_snapshot
from domain.money import FeeSplit
from domain.payments import ledger
from domain.presence_store import LocationStore, PresenceRegistry, ProviderLocation
from domain.privacy import Rule
from domain.projections import public_order_view
from tests.auth_helpers import auth_headers
from tests.factories import PASSWORD, OrderFactory, UserFactory

ME = "/api/v1/users/me"
#: In every piece of the person's text, so a scan of the whole database finds any left over.
MARK = "zq7pat"
#: Their exact coordinates (where they stood, where they wanted a stream): 6 decimals.
LATITUDE, LONGITUDE = 38.712345, -9.139876
PLACES = ("38.712345", "9.139876", "38.71234", "9.13987")
IP = "203.0.113.77"

#: Every export section that must hold at least one row for this person.
SECTIONS = ("orders", "applications", "payments", "paymentEscrows", "paymentCustomers",
            "paymentMethods", "payoutAccounts", "locationHistory", "geofenceStates",
            "notifications", "matches", "assignments", "streamSessions", "streamSegments",
            "idempotencyRecords", "refreshTokenFamilies", "auditEvents", "orderEvents",
            "messages")


@dataclass
class World:
    person: uuid.UUID
    creator: uuid.UUID  # the counterparty who hired the person
    provider: uuid.UUID  # the counterparty the person hired
    own_order: uuid.UUID  # created by the person
    served_order: uuid.UUID  # created by the creator, served by the person


def _payment(order: Order, payer: uuid.UUID, payee: uuid.UUID, *, intent: str,
             customer: str, method: str, state: str = "settled") -> PaymentTransaction:
    payment = PaymentTransaction(order_id=order.id, payer_id=payer, payee_id=payee,
                                 stripe_payment_intent_id=intent, gross_amount_minor=2500,
                                 platform_fee_minor=375, processing_fee_minor=103,
                                 net_amount_minor=2022, currency="USD",
                                 status=PaymentStatus.SUCCEEDED)
    payment.escrow = PaymentEscrow(  # type: ignore[attr-defined]
        order_id=order.id, payer_id=payer, payee_id=payee, state=state, currency="USD",
        amount_minor=2500, authorized_minor=2500, captured_minor=2500, gateway="stripe",
        customer_ref=customer, payment_method_ref=method, intent_ref=intent)
    return payment


def _ledger(session: Session, order: Order) -> None:
    """The money of one order as the payment tasks post it: capture, settle, payout."""
    split = FeeSplit(gross=2500, platform_fee=375, processing_fee=103, net=2022,
                     currency="USD")
    for kind, legs in (("capture", ledger.capture_legs(2500)),
                       ("settle", ledger.settle_legs(split)),
                       ("payout", ledger.payout_legs(2022))):
        ledger.post(session, key=f"{kind}:{order.id}", kind=kind, order_id=order.id,
                    currency="USD", legs=legs)


@pytest.fixture
def world(db_session: Session) -> World:
    """One row of every table that can hold something of the person's."""
    person = UserFactory(username=f"{MARK}", email=f"{MARK}@example.test", role=UserRole.BOTH,
                         profile={"phone": f"+351 {MARK}"}, verified=True)
    creator = UserFactory(username="cora")
    provider = UserFactory(username="prov", provider=True, verified=True)
    s = db_session
    now = utcnow()
    # The person's own order, served by the provider; they disputed it and it was resolved.
    own = OrderFactory(creator=person, provider_id=provider.id, status=OrderStatus.COMPLETED,
                       title=f"Fireworks by {MARK}", description=f"My flat, ask for {MARK}",
                       location_address=f"Rua Augusta 12, {MARK}", latitude=LATITUDE,
                       longitude=LONGITUDE, requirements={"note": f"{MARK} wants 4k"},
                       tags=[f"{MARK}-tag"], dispute_reason=f"{MARK}: it was dark")
    # An order the person served, and one still pending that the re-match assigned them.
    served = OrderFactory(creator=creator, provider_id=person.id, status=OrderStatus.COMPLETED,
                          title="Harbour at dusk")
    pending = OrderFactory(creator=creator, title="Market tomorrow")
    s.add_all([
        OrderApplication(order_id=served.id, provider_id=person.id,
                         application_message=f"{MARK} can be there in 10 minutes",
                         status=ApplicationStatus.ACCEPTED),
        OrderEvent(order_id=own.id, event="order:disputed", from_status="active",
                   to_status="disputed", actor_id=person.id, actor_role="creator",
                   reason=f"{MARK}: it was dark"),
    ])
    match = OrderMatch(order_id=served.id, provider_id=person.id, source="order_created",
                       status="accepted", rank=1, score=0.9, distance_m=120.0,
                       breakdown={"distance": 0.8})
    s.add(match)
    s.flush()
    s.add_all([
        OrderDispatch(order_id=served.id, status="accepted", current_match_id=match.id,
                      offers_made=1),
        OrderAssignment(order_id=pending.id, provider_id=person.id, distance_m=300.0),
        LocationSample(provider_id=person.id, latitude=LATITUDE, longitude=LONGITUDE,
                       accuracy_m=5.0, recorded_at=now),
        GeofenceState(order_id=served.id, provider_id=person.id, inside=True),
    ])
    # The chat: the person wrote on the served order; the event and the notifications of it
    # (theirs and the creator's) carried the body.
    message = OrderMessage(order_id=served.id, sender_id=person.id,
                           body=f"I am at the pier, {MARK}", created_at=now)
    s.add(message)
    s.flush()
    view = {"id": str(message.id), "orderId": str(served.id), "senderId": str(person.id),
            "body": message.body, "createdAt": now.isoformat(), "deleted": False}
    s.add_all([
        OutboxMessage(topic="message:created", aggregate_id=str(served.id),
                      payload={"event": "message:created", "message": view},
                      published_at=now),
        Notification(recipient_id=person.id, order_id=served.id, kind="message",
                     event="message:sent", event_id=f"m-{message.id}",
                     payload={"message": view}),
        Notification(recipient_id=creator.id, order_id=served.id, kind="message",
                     event="message:received", event_id=f"m-{message.id}",
                     payload={"message": view}),
        Notification(recipient_id=person.id, order_id=served.id, match_id=match.id,
                     kind="invitation", event="match:invited", event_id=f"i-{match.id}",
                     payload={"orderId": str(served.id)}),
    ])
    # Copies of the person's order in events and the provider's notifications (today's shape
    # and a v1 payload, flat).
    s.add_all([
        OutboxMessage(topic="order:accepted", aggregate_id=str(own.id),
                      payload={"event": "order:accepted", **order_snapshot(own)},
                      published_at=now),
        Notification(recipient_id=provider.id, order_id=own.id, kind="order",
                     event="order:accepted", event_id=f"a-{own.id}",
                     payload={"order": public_order_view(own)}),
        Notification(recipient_id=provider.id, order_id=own.id, kind="invitation",
                     event="match:invited", event_id=f"v1-{own.id}",
                     payload={"orderId": str(own.id), "title": own.title,
                              "latitude": LATITUDE, "longitude": LONGITUDE,
                              "serviceRadius": 500}),
    ])
    stream = StreamSession(order_id=served.id, provider_id=person.id, playback_id="b" * 40,
                           status="ended", client_id="17", started_at=now - timedelta(hours=1),
                           ended_at=now, published_seconds=3600, bytes_in=10**9,
                           width=1280, height=720)
    s.add(stream)
    s.flush()
    s.add(StreamSegment(session_id=stream.id, client_id="17",
                        started_at=now - timedelta(hours=1), ended_at=now))
    # Money: the person paid for their order and was paid for the one they served.
    for payment in (_payment(own, person.id, provider.id, intent="pi_own",
                             customer=f"cus_{MARK}", method=f"pm_{MARK}"),
                    _payment(served, creator.id, person.id, intent="pi_served",
                             customer="cus_cora", method="pm_cora")):
        escrow = payment.escrow  # type: ignore[attr-defined]
        s.add(payment)
        s.flush()
        escrow.transaction_id = payment.id
        s.add(escrow)
    s.add_all([
        PaymentCustomer(user_id=person.id, gateway="stripe", customer_ref=f"cus_{MARK}"),
        SavedPaymentMethod(user_id=person.id, gateway="stripe", method_ref=f"pm_{MARK}",
                           brand="visa", last4="4242", exp_month=12, exp_year=2030,
                           is_default=True),
        PayoutAccount(user_id=person.id, gateway="stripe", account_ref=f"acct_{MARK}"),
        IdempotencyRecord(scope=str(person.id), key="k1", request_hash="0" * 64,
                          status_code=201, response_body={"title": own.title},
                          expires_at=now + timedelta(days=1)),
        RefreshTokenFamily(id=uuid.uuid4(), user_id=person.id, current_jti=str(uuid.uuid4()),
                           rotations=3, created_at=now, rotated_at=now),
    ])
    _ledger(s, own)
    _ledger(s, served)
    audit.record(s, AuditEventType.LOGIN_SUCCEEDED, actor_id=person.id)
    s.flush()
    s.execute(text("UPDATE audit_events SET ip_address = :ip"), {"ip": IP})
    s.commit()
    return World(person=person.id, creator=creator.id, provider=provider.id,
                 own_order=own.id, served_order=served.id)


# ---------------------------------------------------------------------------------- helpers


def _all_rows(session: Session) -> dict[str, list[dict[str, Any]]]:
    session.expire_all()
    return {table.name: [dict(row) for row in session.execute(select(table)).mappings()]
            for table in Base.metadata.sorted_tables}


def _naming(rows: dict[str, list[dict[str, Any]]], *needles: str) -> dict[str, list[str]]:
    """Per table, the rows that contain any of ``needles`` (case-insensitive, anywhere)."""
    found: dict[str, list[str]] = {}
    for table, table_rows in rows.items():
        for row in table_rows:
            flat = repr(row).lower()
            if any(needle.lower() in flat for needle in needles):
                found.setdefault(table, []).append(flat[:300])
    return found


def _pointing_at(rows: dict[str, list[dict[str, Any]]], person: uuid.UUID) -> set[str]:
    """Tables with a foreign key to users.id that still has a row pointing at the person."""
    tables = set()
    for table in Base.metadata.sorted_tables:
        columns = [fk.parent.name for fk in table.foreign_keys
                   if fk.column.table.name == "users"]
        if any(row[column] == person for row in rows[table.name] for column in columns):
            tables.add(table.name)
    return tables


def _ledger_balances(session: Session) -> list[tuple[Any, ...]]:
    """Per transaction, the sum of its legs (all zero when the books balance)."""
    return [tuple(r) for r in session.execute(
        select(LedgerEntry.transaction_id, LedgerEntry.currency,
               func.sum(LedgerEntry.amount_minor))
        .group_by(LedgerEntry.transaction_id, LedgerEntry.currency))]


# ------------------------------------------------------------------------------------ tests


def test_every_table_has_a_privacy_rule() -> None:
    """A new table must say what export and erasure do with it (domain.privacy.TABLES)."""
    tables = set(Base.metadata.tables) | {"alembic_version"}
    assert tables == set(privacy.TABLES), (tables ^ set(privacy.TABLES))


def test_the_export_has_a_section_for_everything(client: FlaskClient, db_session: Session,
                                                 world: World) -> None:
    person = db_session.get(UserFactory._meta.model, world.person)
    assert person is not None
    response = client.get(f"{ME}/export", headers=auth_headers(person))
    assert response.status_code == 200, response.json
    export = response.json["data"]
    empty = [name for name in SECTIONS if not export.get(name)]
    assert empty == []
    assert export["user"]["email"] == f"{MARK}@example.test"
    assert {o["id"] for o in export["orders"]} == {str(world.own_order), str(world.served_order)}
    assert [m["last4"] for m in export["paymentMethods"]] == ["4242"]
    assert [a["account_ref"] for a in export["payoutAccounts"]] == [f"acct_{MARK}"]
    assert [c["customer_ref"] for c in export["paymentCustomers"]] == [f"cus_{MARK}"]
    assert export["locationHistory"][0]["latitude"] == LATITUDE
    assert {n["event"] for n in export["notifications"]} == {"message:sent", "match:invited"}
    assert export["matches"][0]["order_id"] == str(world.served_order)
    assert export["streamSessions"][0]["published_seconds"] == 3600
    assert not any("key" in name for name in export["streamSessions"][0])
    assert export["streamSegments"][0]["session_id"] == export["streamSessions"][0]["id"]
    # Each side's own processor references only: the person's charge for their order, not the
    # creator's for the order the person served (a leak the access matrix found).
    assert {p.get("stripe_payment_intent_id") for p in export["payments"]} == {"pi_own", None}
    assert {e.get("customer_ref") for e in export["paymentEscrows"]} == {f"cus_{MARK}", None}
    assert len(export["paymentEscrows"]) == 2
    assert "response_body" not in export["idempotencyRecords"][0]
    assert [m["body"] for m in export["messages"]] == [f"I am at the pier, {MARK}"]
    # Someone else's data stays out: the counterparty's saved cards, for one.
    assert all(m["user_id"] == str(world.person) for m in export["paymentMethods"])
    # The OpenAPI schema documents every section (a schema without one drops it).
    spec = client.get("/api/v1/openapi.json").json
    schema = spec["components"]["schemas"]["Export"]["properties"]
    assert set(SECTIONS) <= set(schema)


def test_erasure_leaves_nothing_that_names_the_person(client: FlaskClient,
                                                     db_session: Session, world: World,
                                                     redis_client: redis.Redis) -> None:
    # Live in Redis too: available, with a position.
    here = ProviderLocation(latitude=LATITUDE, longitude=LONGITUDE, accuracy_m=5.0,
                            recorded_at=utcnow())
    locations, registry = LocationStore(redis_client, 300), PresenceRegistry(redis_client)
    locations.save(world.person, here)
    registry.go_online(world.person, {"verified": True}, here, time.time())
    assert registry.profile(world.person) is not None
    before = _all_rows(db_session)
    assert _naming(before, MARK, IP, *PLACES)  # the scan finds them while they are there
    balances_before = _ledger_balances(db_session)
    assert balances_before and all(total == 0 for *_, total in balances_before)

    person = db_session.get(UserFactory._meta.model, world.person)
    assert person is not None
    response = client.delete(ME, headers=auth_headers(person), json={"password": PASSWORD})
    assert response.status_code == 200, response.json

    after = _all_rows(db_session)
    assert _naming(after, MARK, IP, *PLACES) == {}
    assert locations.latest(world.person) is None and registry.profile(world.person) is None
    # What still points at the account is only what the rules keep (pseudonymised).
    kept = _pointing_at(after, world.person)
    assert kept, "the money records and shared history stay"
    assert {table for table in kept if privacy.TABLES[table][0] is not Rule.PSEUDONYMISED} == set()
    deleted = {table for table, (rule, _) in privacy.TABLES.items() if rule is Rule.DELETED}
    for table in deleted:
        rows = after[table]
        assert not any(world.person in row.values() or str(world.person) in row.values()
                       for row in rows), table
    # The books: every posting kept, each still summing to zero.
    assert _ledger_balances(db_session) == balances_before
    # The money records stay, with their amounts, pointing at the pseudonym.
    payments = {p["stripe_payment_intent_id"]: p for p in after["payment_transactions"]}
    assert payments["pi_own"]["payer_id"] == world.person
    assert payments["pi_served"]["payee_id"] == world.person
    assert payments["pi_own"]["gross_amount_minor"] == 2500
    escrows = {e["intent_ref"]: e for e in after["payment_escrows"]}
    assert escrows["pi_own"]["customer_ref"] is None
    assert escrows["pi_served"]["customer_ref"] == "cus_cora"  # the creator's, not theirs
    # The counterparties' records keep their shape.
    own = next(o for o in after["live_stream_orders"] if o["id"] == world.own_order)
    assert own["title"] == "[erased]" and own["base_amount_minor"] == 2500
    assert (own["latitude"], own["longitude"]) == (38.7, -9.1)
    served = next(o for o in after["live_stream_orders"] if o["id"] == world.served_order)
    assert served["title"] == "Harbour at dusk"  # the creator's words, not the person's
    [message] = after["order_messages"]
    assert message["body"] is None and message["deleted_at"] is not None
    assert sorted(n["event_id"][:2] for n in after["notifications"]) == ["a-", "m-", "v1"]
    assert {n["recipient_id"] for n in after["notifications"]} == {world.creator,
                                                                   world.provider}
    copy = next(n for n in after["notifications"] if n["event_id"].startswith("a-"))
    assert copy["payload"]["order"]["title"] == "[erased]"
    assert copy["payload"]["order"]["location"]["latitude"] == 38.7
    assert after["order_dispatches"][0]["current_match_id"] is None
    assert len(after["stream_sessions"]) == 1 and len(after["stream_segments"]) == 1


def test_erasure_waits_for_money_still_moving(client: FlaskClient, db_session: Session,
                                              world: World) -> None:
    escrow = db_session.scalars(select(PaymentEscrow).where(
        PaymentEscrow.payee_id == world.person)).one()
    escrow.state = "captured"  # completed, not yet settled to the person's payout account
    db_session.commit()
    person = db_session.get(UserFactory._meta.model, world.person)
    assert person is not None
    response = client.delete(ME, headers=auth_headers(person), json={"password": PASSWORD})
    assert response.status_code == 409
    assert response.json["error"]["code"] == "ERASURE_BLOCKED"
    assert response.json["error"]["details"] == {"openOrders": 0, "pendingApplications": 0,
                                                 "unsettledPayments": 1, "openOffers": 0}
    assert db_session.get(PayoutAccount, db_session.scalars(select(PayoutAccount.id).where(
        PayoutAccount.user_id == world.person)).one()) is not None


def test_a_refund_still_due_also_waits(client: FlaskClient, db_session: Session,
                                       world: World) -> None:
    escrow = db_session.scalars(select(PaymentEscrow).where(
        PaymentEscrow.payer_id == world.person)).one()
    escrow.refund_due_minor = 500
    db_session.commit()
    person = db_session.get(UserFactory._meta.model, world.person)
    assert person is not None
    response = client.delete(ME, headers=auth_headers(person), json={"password": PASSWORD})
    assert response.status_code == 409
    assert response.json["error"]["details"]["unsettledPayments"] == 1



def test_erasure_waits_for_an_offer_held(client: FlaskClient, db_session: Session,
                                         world: World) -> None:
    match = db_session.scalars(select(OrderMatch).where(
        OrderMatch.provider_id == world.person)).one()
    match.status = "offered"  # auto-dispatch is waiting for the person's answer
    db_session.commit()
    person = db_session.get(UserFactory._meta.model, world.person)
    assert person is not None
    response = client.delete(ME, headers=auth_headers(person), json={"password": PASSWORD})
    assert response.status_code == 409
    assert response.json["error"]["details"]["openOffers"] == 1
