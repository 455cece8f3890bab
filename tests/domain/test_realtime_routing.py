"""Who learns of what (domain/realtime.py), the replay log (domain/push.py) and the
broadcaster's geofence (the matching index), on PostgreSQL and real Redis."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session

from core.notifier import invited_room, user_room
from domain.dispatch import MatchStatus
from domain.push import NotificationPusher, stream_key
from domain.realtime import Broadcaster, OutboxEvent, route
from matching.index import ProviderIndex
from tests.factories import OrderFactory, UserFactory

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


def _event(topic: str, payload: dict[str, Any], row_id: int = 7) -> OutboxEvent:
    return OutboxEvent(row_id, topic, payload.get("orderId", "x"), payload, NOW)


def _told(session: Session, topic: str, payload: dict[str, Any]) -> set[tuple[str, str]]:
    return {(str(d.recipient_id), d.event) for d in route(session, _event(topic, payload))
            .deliveries}


def test_order_transitions_reach_the_creator_and_the_assigned_provider(
        db_session: Session) -> None:
    creator, provider = str(uuid.uuid4()), str(uuid.uuid4())
    payload = {"orderId": str(uuid.uuid4()), "creatorId": creator, "providerId": provider,
               "status": "active"}
    for topic in ("order:started", "order:completed", "order:disputed", "order:resolved"):
        assert _told(db_session, topic, payload) == {(creator, topic), (provider, topic)}
    pending = payload | {"providerId": None}
    assert _told(db_session, "order:created", pending) == {(creator, "order:created")}


def test_invitation_related_changes_also_go_live_to_the_invitation_room(
        db_session: Session) -> None:
    order_id = str(uuid.uuid4())
    payload = {"orderId": order_id, "creatorId": str(uuid.uuid4()), "providerId": None}
    for topic in ("order:updated", "order:accepted", "order:cancelled", "order:expired",
                  "order:deleted"):
        live = route(db_session, _event(topic, payload)).live
        assert [(e, room) for e, _, room in live] == [(topic, invited_room(order_id))]
    for topic in ("order:started", "order:matched", "order:completed"):
        assert route(db_session, _event(topic, payload)).live == []


def test_rooms_close_when_the_order_has_no_tracked_provider_any_more(
        db_session: Session) -> None:
    order_id = str(uuid.uuid4())
    payload = {"orderId": order_id, "creatorId": str(uuid.uuid4()), "providerId": None}
    for topic in ("order:completed", "order:cancelled", "order:expired", "order:resolved"):
        assert route(db_session, _event(topic, payload)).closed_rooms == [
            f"order:{order_id}", invited_room(order_id)]
    assert route(db_session, _event("order:accepted", payload)).closed_rooms == [
        invited_room(order_id)]
    assert route(db_session, _event("order:started", payload)).closed_rooms == []


def test_payments_tell_the_payer_and_the_payee_only_about_their_money(
        db_session: Session) -> None:
    creator, provider = str(uuid.uuid4()), str(uuid.uuid4())
    base = {"orderId": str(uuid.uuid4()), "creatorId": creator, "providerId": provider}
    assert _told(db_session, "payment:failed", base | {"stage": "authorization"}) == {
        (creator, "payment:failed")}
    assert _told(db_session, "payment:processing", base | {"stage": "authorized"}) == {
        (creator, "payment:processing")}
    assert _told(db_session, "payment:completed", base | {"stage": "captured"}) == {
        (creator, "payment:completed"), (provider, "payment:completed")}
    assert _told(db_session, "payment:completed", base | {"stage": "refunded"}) == {
        (creator, "payment:completed")}


def test_applications_and_declines_reach_the_creator_read_from_the_order(
        db_session: Session) -> None:
    order = OrderFactory()
    provider = UserFactory(provider=True)
    db_session.flush()
    withdrawn = {"orderId": str(order.id), "providerId": str(provider.id),
                 "applicationId": str(uuid.uuid4())}  # no creatorId in this payload
    assert _told(db_session, "application:withdrawn", withdrawn) == {
        (str(order.creator_id), "application:withdrawn"),
        (str(provider.id), "application:withdrawn")}
    assert _told(db_session, "invitation:declined", {"orderId": str(order.id),
                                                      "providerId": str(provider.id)}) == {
        (str(order.creator_id), "invitation:declined")}


def test_chat_and_geofence_events(db_session: Session) -> None:
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    assert _told(db_session, "message:created", {"orderId": str(uuid.uuid4()), "senderId": a,
                                                 "recipientId": b}) == {
        (a, "message:sent"), (b, "message:received")}
    routes = route(db_session, _event("message:created", {"senderId": a, "recipientId": b}))
    # One fact, two events: each has its own id, both derived from the outbox row's.
    assert sorted(d.event_id for d in routes.deliveries) == [
        "evt_7:message:received", "evt_7:message:sent"]
    fence = {"orderId": str(uuid.uuid4()), "creatorId": a, "providerId": b,
             "distanceMeters": 40}
    assert _told(db_session, "location:geofence_entered", fence) == {
        (a, "location:geofence_entered"), (b, "location:geofence_entered")}


def test_events_with_their_own_notifications_and_unknown_topics_route_nowhere(
        db_session: Session) -> None:
    for topic in ("dispatch:offered", "notification:order:created", "something:else"):
        routes = route(db_session, _event(topic, {"orderId": str(uuid.uuid4()),
                                                  "creatorId": str(uuid.uuid4())}))
        assert routes.deliveries == [] and routes.live == []


def test_invited_providers_are_the_open_matches(db_session: Session) -> None:
    from db.models import OrderMatch
    from domain.realtime import invited_provider_ids

    order = OrderFactory()
    people = [UserFactory(provider=True) for _ in range(3)]
    db_session.flush()
    for rank, (user, status) in enumerate(zip(
            people, (MatchStatus.INVITED, MatchStatus.OFFERED, MatchStatus.DECLINED),
            strict=True)):
        db_session.add(OrderMatch(order_id=order.id, provider_id=user.id, source="order_created",
                                  status=status.value, rank=rank + 1, score=1.0,
                                  distance_m=10.0, breakdown={}, index_version=1,
                                  created_at=NOW, updated_at=NOW))
    db_session.flush()
    assert invited_provider_ids(db_session, order.id) == {people[0].id, people[1].id}


# ----------------------------------------------------------------------------- replay log
class _Captured:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any], str, str | None]] = []

    def emit(self, event: str, data: Any, *, room: str, offset: str | None = None) -> None:
        self.sent.append((event, data, room, offset))

    def emit_many(self, messages: Any) -> None:
        self.sent.extend(messages)

    def close_room(self, room: str) -> None:
        self.sent.append(("close", {}, room, None))


def test_the_replay_log_returns_exactly_what_came_after_an_offset(
        redis_client: redis.Redis) -> None:
    captured = _Captured()
    pusher = NotificationPusher(redis_client, captured, retention_s=60)
    user = uuid.uuid4()
    pusher.push([(user, {"id": f"evt_{i}", "event": "order:updated"}) for i in range(5)])
    offsets = [offset for *_, offset in captured.sent]
    assert [room for _, _, room, _ in captured.sent] == [user_room(user)] * 5
    assert offsets == sorted(offsets) and len(set(offsets)) == 5
    after = pusher.replay(user, offsets[1])
    assert after is not None
    assert [event["id"] for _, event in after] == ["evt_2", "evt_3", "evt_4"]
    assert [offset for offset, _ in after] == offsets[2:]
    assert pusher.replay(user, offsets[-1]) == []
    # Out of the window, in the future, or not an offset at all: catch up over REST.
    old = f"{int(time.time() * 1000) - 61_000}-0"
    assert pusher.replay(user, old) is None
    assert pusher.replay(user, f"{int(time.time() * 1000) + 3_600_000}-0") is None
    for junk in ("", "abc", "1-2-3", "-1", "9" * 40):
        assert pusher.replay(user, junk) is None
    # The log forgets a user who is never pushed to again.
    assert 0 < redis_client.pttl(stream_key(user)) <= 60_000
    stored = redis_client.xrange(stream_key(user))
    assert json.loads(stored[0][1]["e"])["id"] == "evt_0"


def test_the_geofence_broadcast_asks_the_matching_index(redis_client: redis.Redis) -> None:
    captured = _Captured()
    near, far = str(uuid.uuid4()), str(uuid.uuid4())
    index = ProviderIndex([near, far], [40.7128, 40.8128], [-74.0060, -74.0060])
    broadcaster = Broadcaster(captured, lambda: index)
    told = broadcaster.to_geofence(40.7130, -74.0060, 1_000, "area:alert", {"x": 1})
    assert told == [near]
    assert captured.sent == [("area:alert", {"x": 1}, user_room(near), None)]


@pytest.mark.parametrize("provider_id", [None, "not-a-uuid"])
def test_a_missing_or_bad_recipient_is_skipped(db_session: Session,
                                               provider_id: str | None) -> None:
    creator = str(uuid.uuid4())
    assert _told(db_session, "order:updated", {"orderId": str(uuid.uuid4()),
                                               "creatorId": creator,
                                               "providerId": provider_id}) == {
        (creator, "order:updated")}
