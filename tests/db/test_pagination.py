"""Cursor pagination: complete, duplicate-free and stable while rows are inserted between pages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import Order
from db.pagination import CursorCodec, InvalidCursor, Page, paginate
from tests.factories import OrderFactory, UserFactory

CODEC = CursorCodec("pagination-test-secret")
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _page(session: Session, cursor: str | None = None, limit: int = 10,
          codec: CursorCodec = CODEC) -> Page[Order]:
    return paginate(session, select(Order), created_col=Order.created_at, id_col=Order.id,
                    codec=codec, limit=limit, cursor=cursor)


def _seed(count: int, start: datetime, same_instant_every: int = 3) -> list[Order]:
    creator = UserFactory()
    orders = []
    for i in range(count):
        # Several rows share a timestamp: the id must break the tie.
        with freeze_time(start + timedelta(seconds=i // same_instant_every)):
            orders.append(OrderFactory(creator=creator))
    return orders


def test_pages_cover_everything_once_despite_inserts(any_session: Session) -> None:
    original = _seed(25, T0)
    seen: list[Order] = []
    page = _page(any_session)
    assert page.total_count == 25 and page.has_next_page and not page.has_previous_page
    seen += page.items
    # New orders arrive while the client reads page 1 (newer than everything) ...
    _seed(4, T0 + timedelta(days=1))
    while page.has_next_page:
        page = _page(any_session, page.next_cursor)
        seen += page.items
    ids = [o.id for o in seen]
    assert len(ids) == len(set(ids)) == 25
    assert set(ids) == {o.id for o in original}
    keys = [(o.created_at, o.id) for o in seen]
    assert keys == sorted(keys, reverse=True)
    assert page.next_cursor is None and page.has_previous_page


def test_previous_cursor_returns_the_same_page(any_session: Session) -> None:
    _seed(23, T0)
    first = _page(any_session, limit=7)
    second = _page(any_session, first.next_cursor, limit=7)
    assert second.has_previous_page and second.previous_cursor
    back = _page(any_session, second.previous_cursor, limit=7)
    assert [o.id for o in back.items] == [o.id for o in first.items]
    assert back.has_next_page and not back.has_previous_page


def test_empty_list(any_session: Session) -> None:
    page = _page(any_session)
    assert page.items == [] and page.total_count == 0
    assert not page.has_next_page and not page.has_previous_page


@pytest.mark.parametrize("cursor", ["garbage", "", "eyJ4IjoxfQ.bad"])
def test_tampered_cursor_is_refused(any_session: Session, cursor: str) -> None:
    _seed(3, T0)
    if cursor == "":
        assert _page(any_session, cursor).total_count == 3  # empty means "from the start"
        return
    with pytest.raises(InvalidCursor):
        _page(any_session, cursor)


def test_cursor_signed_with_another_secret_is_refused(any_session: Session) -> None:
    _seed(12, T0)
    foreign = _page(any_session, codec=CursorCodec("someone-else"))
    with pytest.raises(InvalidCursor):
        _page(any_session, foreign.next_cursor)
