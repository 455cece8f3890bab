"""The access matrix's world: seven callers around a creator's orders (one accepted, one live,
one pending), every private value of each person, and the walk that finds any of them in a
response meant for somebody else.

Built with the factories on any session: committed once for the reads, or on a test's
rolled-back session for each call that changes state, so it never changes what the next
call sees."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from flask import Flask
from sqlalchemy.orm import Session

from core.enums import ApplicationStatus, OrderStatus
from db.models import (
    Notification,
    OrderApplication,
    OrderMatch,
    OrderMessage,
    PayoutAccount,
    StreamSession,
    User,
)
from db.types import utcnow
from domain.presence_store import LocationStore, ProviderLocation
from domain.stream_sessions import stream_key
from tests.api.test_privacy_everything import _payment
from tests.auth_helpers import token_pair
from tests.factories import OrderFactory, UserFactory

#: The callers, in the order every matrix row lists its expected statuses.
CALLERS = ("anonymous", "creator", "other_creator", "provider", "other_provider",
           "unverified", "admin")
#: One letter per caller, for the rows' allowed sets (n = nobody signed in, M = admin).
LETTERS = dict(zip("nABPQUM", CALLERS, strict=True))

#: The order's exact place and the assigned provider's exact live position: 6 decimals, off
#: any 500 m grid centre, so a coarsened copy can never equal them by chance.
ORDER_AT = (51.507351, -0.127758)
PROVIDER_AT = (51.509123, -0.131987)

#: Words only their writer and their readers may see (marked, so a scan cannot match by chance).
APPLICATION_TEXT = {"provider": "On my way qz1", "other_provider": "I can do it qz2"}
CHAT_TEXT = "Meet me at the pier qz3"


@dataclass(frozen=True)
class Secret:
    """A private value of ``owner``; ``seen_by`` are the other callers entitled to it."""

    owner: str
    label: str
    value: str | tuple[float, float]
    seen_by: frozenset[str] = frozenset()


@dataclass
class World:
    user_ids: dict[str, uuid.UUID]  # caller name -> account id (no anonymous)
    emails: dict[str, str]  # caller name -> address
    tokens: dict[str, dict[str, str]]  # caller name -> {accessToken, refreshToken}
    order: uuid.UUID  # the creator's order, accepted, the provider assigned
    pending: uuid.UUID  # the creator's second order, still pending, the provider invited
    active: uuid.UUID  # the creator's third order, live, streamed by the provider
    application: uuid.UUID  # the provider's (accepted) application to ``order``
    offer: uuid.UUID  # the other provider's (pending) application to ``pending``
    match: uuid.UUID  # the provider's invitation to ``pending``
    secrets: list[Secret]

    def ids(self) -> dict[str, str]:
        """What a path parameter can name, by world attribute."""
        found = {"order": self.order, "pending": self.pending, "active": self.active,
                 "application": self.application, "offer": self.offer, "match": self.match}
        found |= {f"user:{name}": user_id for name, user_id in self.user_ids.items()}
        return {name: str(value) for name, value in found.items()}


def build_world(app: Flask, session: Session, redis_url: str) -> World:
    creator = UserFactory(profile={"phone": "+44 7700 900101"})
    provider = UserFactory(provider=True, verified=True, profile={"phone": "+44 7700 900202"})
    users = {
        "creator": creator,
        "other_creator": UserFactory(profile={"phone": "+44 7700 900303"}),
        "provider": provider,
        "other_provider": UserFactory(provider=True, verified=True),
        "unverified": UserFactory(provider=True),
        "admin": UserFactory(admin=True),
    }
    now = utcnow()
    order = OrderFactory(creator=creator, provider_id=provider.id, status=OrderStatus.ACCEPTED,
                         latitude=ORDER_AT[0], longitude=ORDER_AT[1], accepted_at=now,
                         agreed_amount_minor=2500, location_address="12 Pier Road")
    pending = OrderFactory(creator=creator, latitude=ORDER_AT[0] + 0.01,
                           longitude=ORDER_AT[1] + 0.01)
    active = OrderFactory(creator=creator, provider_id=provider.id, status=OrderStatus.ACTIVE,
                          accepted_at=now, started_at=now, agreed_amount_minor=2500,
                          latitude=ORDER_AT[0] - 0.01, longitude=ORDER_AT[1] - 0.01)
    application = OrderApplication(order_id=order.id, provider_id=provider.id,
                                   application_message=APPLICATION_TEXT["provider"],
                                   status=ApplicationStatus.ACCEPTED)
    offer = OrderApplication(order_id=pending.id, provider_id=users["other_provider"].id,
                             application_message=APPLICATION_TEXT["other_provider"],
                             status=ApplicationStatus.PENDING)
    match = OrderMatch(order_id=pending.id, provider_id=provider.id, source="order_created",
                       status="invited", rank=1, score=0.9, distance_m=812.3,
                       breakdown={"distance": 0.8})
    stream = StreamSession(order_id=order.id, provider_id=provider.id,
                           playback_id=uuid.uuid4().hex, status="ready")
    session.add_all([application, offer, match, stream,
                     OrderMessage(order_id=order.id, sender_id=creator.id,
                                  body=CHAT_TEXT, created_at=now),
                     Notification(recipient_id=provider.id, order_id=order.id, kind="order",
                                  event="order:accepted", event_id=f"a-{order.id}",
                                  payload={"orderId": str(order.id)})])
    # Money: the creator's card held for the order, the provider's account, and (as if it had
    # paid out already) the provider's transfer and payout. The processor knows none of these
    # references: the creator's customer is made afresh when they next need one.
    gateway = app.extensions["taplive"].payments.gateway.name
    tag = uuid.uuid4().hex[:12]
    payment = _payment(order, creator.id, provider.id, intent=f"pi_{tag}",
                       customer=f"cus_{tag}", method=f"pm_{tag}", state="authorized")
    escrow = payment.escrow  # type: ignore[attr-defined]
    escrow.transfer_ref, escrow.payout_ref = f"tr_{tag}", f"po_{tag}"
    session.add(payment)
    session.flush()
    escrow.transaction_id = payment.id
    session.add_all([
        escrow,
        PayoutAccount(user_id=provider.id, gateway=gateway, account_ref=f"acct_{tag}"),
    ])
    session.commit()
    settings = app.extensions["taplive"].settings
    LocationStore(redis.Redis.from_url(redis_url), settings.location_max_age_s).save(
        provider.id, ProviderLocation(PROVIDER_AT[0], PROVIDER_AT[1], 5.0,
                                      now - timedelta(seconds=5)))
    tokens = {name: token_pair(user, app) for name, user in users.items()}
    return World(user_ids={name: user.id for name, user in users.items()},
                 emails={name: user.email for name, user in users.items()}, tokens=tokens,
                 order=order.id, pending=pending.id, active=active.id,
                 application=application.id, offer=offer.id, match=match.id,
                 secrets=_secrets(users, tokens, tag, stream_key(settings.secret_key, stream.id),
                                  stream.playback_id))


def commit_world(app: Flask, redis_url: str) -> World:
    """A world committed on ``app``'s database (for reads, and for other processes such as the
    real-time server); ``tests.conftest.empty_tables(app)`` removes it."""
    from tests import factories

    with app.extensions["taplive"].db.transaction() as session:
        factories.bind(session)
        try:
            return build_world(app, session, redis_url)
        finally:
            factories.bind(None)


def _secrets(users: dict[str, User], tokens: dict[str, dict[str, str]], tag: str,
             key: str, playback: str) -> list[Secret]:
    """Every person's private values and who else may see each (docs/auth.md, "Privacy";
    docs/matching.md, "Privacy"; docs/streaming.md)."""
    admin = frozenset({"admin"})
    found: list[Secret] = []
    for name, user in users.items():
        # Admins manage accounts: they see addresses and profiles, never hashes or tokens.
        found += [Secret(name, "email", user.email, admin),
                  Secret(name, "password hash", user.password_hash)]
        found += [Secret(name, kind, token) for kind, token in tokens[name].items()]
        if phone := user.profile.get("phone"):
            found.append(Secret(name, "phone", phone, admin))
    found += [
        Secret("creator", "Stripe customer", f"cus_{tag}"),
        Secret("creator", "Stripe payment method", f"pm_{tag}"),
        Secret("creator", "Stripe payment intent", f"pi_{tag}"),
        # The export lists the stream sessions of the orders a provider streamed, with their
        # playback ids (docs/auth.md, the export's sections).
        Secret("creator", "playback id", playback, frozenset({"provider"})),
        Secret("provider", "Stripe account", f"acct_{tag}"),
        Secret("provider", "Stripe transfer", f"tr_{tag}"),
        Secret("provider", "Stripe payout", f"po_{tag}"),
        Secret("provider", "stream key", key),
        # Exact only to the provider and the creator of the order they are assigned to.
        Secret("provider", "exact position", PROVIDER_AT, frozenset({"creator"})),
        # What an applicant wrote goes to the order's creator (and admins), and the chat to
        # the other party (and admins).
        Secret("provider", "application message", APPLICATION_TEXT["provider"],
               frozenset({"creator", "admin"})),
        Secret("other_provider", "application message", APPLICATION_TEXT["other_provider"],
               frozenset({"creator", "admin"})),
        Secret("creator", "chat message", CHAT_TEXT, frozenset({"provider", "admin"})),
        # The order's place: its participants and admins (it is no longer pending).
        Secret("creator", "order's exact place", ORDER_AT, frozenset({"provider", "admin"})),
    ]
    return found


def leaks(body: Any, caller: str, secrets: list[Secret]) -> list[str]:
    """The secrets of other people in ``body`` (parsed JSON, or text) that ``caller`` may
    not see, walking every nested value."""
    found: list[str] = []
    for secret in secrets:
        if secret.owner == caller or caller in secret.seen_by:
            continue
        if any(_matches(value, secret.value) for value in _leaves(body)):
            found.append(f"{secret.owner}'s {secret.label}")
    return found


def _leaves(node: Any) -> Iterator[Any]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield key
            yield from _leaves(value)
    elif isinstance(node, list):
        for value in node:
            yield from _leaves(value)
    else:
        yield node


def _matches(leaf: Any, value: str | tuple[float, float]) -> bool:
    if isinstance(value, str):
        return isinstance(leaf, str) and value in leaf
    # A coordinate: as a number to within ~1 m, or written into a string (a URL, a label).
    if isinstance(leaf, bool):
        return False
    if isinstance(leaf, int | float):
        return any(abs(float(leaf) - part) < 1e-5 for part in value)
    return isinstance(leaf, str) and any(f"{part:.5f}"[:-1] in leaf for part in value)
