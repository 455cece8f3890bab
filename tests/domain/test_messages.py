"""The chat commands on both databases (standalone mode runs on SQLite): a post and its event,
pages of the conversation, and erasure's scrub of messages and of the events that carried
them. The HTTP rules are in tests/api/test_messages.py."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.enums import OrderStatus
from core.errors import ValidationFailed
from db.models import Base, OrderMessage, OutboxMessage
from db.pagination import CursorCodec
from db.queries import messages as queries
from domain import messages
from tests.factories import OrderFactory, UserFactory

NOW = datetime(2026, 12, 1, 12, tzinfo=UTC)
CODEC = CursorCodec("test-secret")


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::sqlalchemy.exc.SAWarning")
def test_migration_0008_matches_the_model(any_session: Session) -> None:
    context = MigrationContext.configure(any_session.connection(),
                                         opts={"compare_type": False})
    diffs = [d for d in compare_metadata(context, Base.metadata)
             if "order_messages" in repr(d)]
    assert diffs == []


def test_post_page_and_erase(any_session: Session) -> None:
    creator, provider = UserFactory(), UserFactory(provider=True, verified=True)
    order = OrderFactory(creator=creator, provider_id=provider.id, status=OrderStatus.ACTIVE)
    for i in range(5):
        sender = creator if i % 2 == 0 else provider
        messages.post_message(any_session, order.id, sender, f"message {i}", max_chars=50,
                              may_apply=False, now=NOW + timedelta(seconds=i))
    first = messages.history(any_session, order.id, provider, may_apply=True, codec=CODEC,
                             limit=3, cursor=None)
    assert [m["body"] for m in first.items] == ["message 4", "message 3", "message 2"]
    rest = messages.history(any_session, order.id, provider, may_apply=True, codec=CODEC,
                            limit=3, cursor=first.next_cursor)
    assert [m["body"] for m in rest.items] == ["message 1", "message 0"]
    assert rest.total_count == 5 and not rest.has_next_page

    messages.erase_sent_by(any_session, creator.id, NOW + timedelta(days=1))
    any_session.expire_all()
    rows = any_session.scalars(select(OrderMessage).order_by(OrderMessage.created_at)).all()
    assert [(r.body, r.deleted_at is not None) for r in rows] == [
        (None, True), ("message 1", False), (None, True), ("message 3", False), (None, True)]
    events = any_session.scalars(select(OutboxMessage).where(
        OutboxMessage.topic == queries.MESSAGE_CREATED).order_by(OutboxMessage.id)).all()
    assert [e.payload["message"]["body"] for e in events] == [
        None, "message 1", None, "message 3", None]
    assert [e.payload["message"]["deleted"] for e in events] == [True, False, True, False, True]
    assert [e.payload["recipientId"] for e in events] == [
        str(provider.id), str(creator.id)] * 2 + [str(provider.id)]


@pytest.mark.parametrize(("text", "stored"), [
    ("  hi  ", "hi"), ("a\r\nb", "a\nb"), ("tab\there", "tab\there"), ("ééé", "ééé")])
def test_clean_body_keeps(text: str, stored: str) -> None:
    assert messages.clean_body(text, 3 if stored == "ééé" else 100) == stored


@pytest.mark.parametrize("text", ["", "   ", "abcd", "a\rb", "\x00", "\u0085", "\ud800"])
def test_clean_body_refuses(text: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        messages.clean_body(text, 3)
    assert list(refused.value.details) == ["body"]
