"""The access matrix's real-time part: a real Socket.IO server process and real clients, the
seven callers of ``access_world`` joining the rooms of each of the creator's orders.

Only an order's creator and assigned provider enter its room; a provider with an open
invitation enters the order's invitation room; nobody else enters either (an admin neither:
admins read orders over the API). Nothing any client receives carries another person's private
values."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import socketio
from flask import Flask

from tests.conftest import TEST_REDIS_URL, empty_tables
from tests.realtime.conftest import Recorder, start_server, stop_server
from tests.reliability.access_world import CALLERS, World, commit_world, leaks

pytestmark = pytest.mark.slow  # starts the real-time server

#: order -> what each signed-in caller's join gets: the room's kind, or the refusal's code.
JOINS = {
    "order": dict(creator="order", other_creator="FORBIDDEN", provider="order",
                  other_provider="FORBIDDEN", unverified="FORBIDDEN", admin="FORBIDDEN"),
    "active": dict(creator="order", other_creator="FORBIDDEN", provider="order",
                   other_provider="FORBIDDEN", unverified="FORBIDDEN", admin="FORBIDDEN"),
    # The provider is invited; the other provider applied, which is no invitation.
    "pending": dict(creator="order", other_creator="FORBIDDEN", provider="invited",
                    other_provider="FORBIDDEN", unverified="FORBIDDEN", admin="FORBIDDEN"),
}


@pytest.fixture(scope="module")
def socket_world(app: Flask) -> Iterator[World]:
    world = commit_world(app, TEST_REDIS_URL)
    yield world
    empty_tables(app)


@pytest.fixture(scope="module")
def server_url(pg_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log: Path = tmp_path_factory.mktemp("access-realtime") / "server.log"
    proc, url = start_server(pg_url, log)
    yield url
    stop_server(proc)


def test_no_token_no_socket(server_url: str) -> None:
    client = Recorder(server_url)
    with pytest.raises(socketio.exceptions.ConnectionError):
        client.connect()
    assert client.connect_error["data"]["code"] == "UNAUTHORIZED"


@pytest.mark.parametrize("caller", [c for c in CALLERS if c != "anonymous"])
def test_order_rooms(server_url: str, socket_world: World, caller: str) -> None:
    client = Recorder(server_url).connect(socket_world.tokens[caller]["accessToken"])
    try:
        ids = socket_world.ids()
        got = {}
        for order in JOINS:
            answer = client.call("join", {"orderId": ids[order]})
            got[order] = (("invited" if answer["room"].endswith(":invited") else "order")
                          if answer["ok"] else answer["error"]["code"])
            assert leaks(answer, caller, socket_world.secrets) == []
        assert got == {order: expected[caller] for order, expected in JOINS.items()}
        # Whatever the server sent this socket meanwhile (its session, missed events...).
        assert leaks([list(args) for _, args in client.events], caller,
                     socket_world.secrets) == []
    finally:
        client.close()
