"""The benchmark's light client (bench/rt_client.py) against the real server: it must really
authenticate, join, receive and resume, or bench/realtime_bench.py would measure nothing."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from bench.rt_client import Fleet, LightClient, Receipt, Refused
from db.models import User
from tests.api.orders_helpers import order_body
from tests.auth_helpers import access_token
from tests.realtime.conftest import api


@pytest.fixture(autouse=True)
def _committed(live_app: Flask) -> Iterator[None]:
    yield  # live_app truncates what each test committed


async def _until(check: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


def test_the_light_client_authenticates_joins_and_receives(
        realtime_url: str, live_app: Flask, live_users: dict[str, User]) -> None:
    creator = live_users["creator"]
    order_id = str(api(live_app, "POST", "/orders", creator, order_body())["order"]["id"])
    notifier = live_app.extensions["taplive"].notifier

    async def scenario() -> None:
        receipts: dict[str, Receipt] = {}
        bad = LightClient(realtime_url, "not-a-jwt", receipts)
        with pytest.raises(Refused) as refused:
            await bad.connect()
        assert refused.value.data["data"]["code"] == "TOKEN_INVALID"

        client = LightClient(realtime_url, access_token(creator, live_app), receipts,
                             keep_events=True)
        await client.connect()
        assert client.sid and client.pid  # the CONNECT reply, with the recovery session id
        assert await client.call("join", {"orderId": order_id}) == [
            {"ok": True, "room": f"order:{order_id}"}]
        sent = time.time()
        notifier.emit("probe", {"bench": "probe:1", "n": 1}, room=f"order:{order_id}")
        await _until(lambda: "probe:1" in receipts)
        assert client.events == [("probe", [{"bench": "probe:1", "n": 1}])]
        assert receipts["probe:1"].count == 1
        assert sent <= receipts["probe:1"].first < sent + 10
        await client.close()

    asyncio.run(scenario())


def test_the_fleet_counts_every_socket_and_resumes_after_a_forced_disconnect(
        realtime_url: str, live_app: Flask, live_users: dict[str, User]) -> None:
    user = live_users["creator"]
    services = live_app.extensions["taplive"]
    token = access_token(user, live_app)

    def push(n: int) -> None:
        services.pusher.push([(user.id, {"id": f"rec-{n}", "event": "bench:recovery",
                                         "orderId": None, "at": "", "payload": {}})])

    async def scenario() -> None:
        fleet = Fleet()
        connected = await fleet.handle({"op": "connect", "url": realtime_url, "group": "g",
                                        "tokens": [token] * 3, "track": True})
        assert (connected["ok"], connected["failed"]) == (3, 0)
        services.notifier.emit("probe", {"bench": "fan:1"}, room=f"user:{user.id}")
        await _until(lambda: fleet.receipts.get("fan:1", Receipt(0, 0, 0)).count == 3)
        push(0)
        await _until(lambda: all(c.offset for c in fleet.groups["g"]))
        await fleet.handle({"op": "drop", "group": "g"})
        await asyncio.sleep(0.3)
        push(1)
        push(2)
        resumed = await fleet.handle({"op": "reconnect", "group": "g"})
        assert resumed["ok"] == 3, resumed
        await _until(lambda: all(len(c.seen) == 3 for c in fleet.groups["g"]))
        seen = (await fleet.handle({"op": "seen", "group": "g", "prefix": "rec-"}))["seen"]
        assert seen == [["rec-0", "rec-1", "rec-2"]] * 3  # replayed, in order, once
        stats = await fleet.handle({"op": "stats"})
        assert stats["connected"] == 3
        taken = (await fleet.handle({"op": "receipts", "prefix": "fan:"}))["receipts"]
        assert taken["fan:1"][0] == 3
        await fleet.handle({"op": "close"})

    asyncio.run(scenario())
