"""The official JavaScript client (socket.io-client, run by the machine's Node.js) against the
real server: what a browser or mobile app built on it sees, including Socket.IO's own
connection-state recovery after a dropped connection."""

from __future__ import annotations

import json
import queue
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from celery import Celery
from flask import Flask

from core.config import PROJECT_ROOT
from db.models import User
from tests.api.orders_helpers import order_body
from tests.auth_helpers import access_token
from tests.realtime.conftest import api

JS_DIR = PROJECT_ROOT / "tests" / "realtime" / "js"
pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not (JS_DIR / "node_modules" / "socket.io-client").exists(),
    reason="Node.js or socket.io-client missing (scripts/ensure_js_client.sh installs it)")


class JsClient:
    """``node client.mjs``: commands in on stdin, what happened out as JSON lines."""

    def __init__(self, url: str, token: str) -> None:
        self.proc = subprocess.Popen(["node", str(JS_DIR / "client.mjs"), url, token],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, text=True, bufsize=1)
        self.seen: list[dict[str, Any]] = []
        self._lines: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            try:
                self._lines.put(json.loads(line))
            except json.JSONDecodeError:
                self._lines.put({"type": "output", "line": line})

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(command) + "\n")
        self.proc.stdin.flush()

    def wait_for(self, match: Callable[[dict[str, Any]], bool],
                 timeout: float = 10.0) -> dict[str, Any]:
        for line in self.seen:
            if match(line):
                return line
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self._lines.get(timeout=0.05)
            except queue.Empty:
                continue
            self.seen.append(line)
            if match(line):
                return line
        raise AssertionError(f"not seen within {timeout} s; seen {self.seen!r}")

    def events(self, name: str) -> list[list[Any]]:
        while not self._lines.empty():
            self.seen.append(self._lines.get())
        return [line["args"] for line in self.seen
                if line["type"] == "event" and line["name"] == name]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.send(cmd="quit")
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture
def js(realtime_url: str) -> Iterator[Callable[[str], JsClient]]:
    made: list[JsClient] = []

    def make(token: str) -> JsClient:
        made.append(JsClient(realtime_url, token))
        return made[-1]

    yield make
    for client in made:
        client.close()


def _event(name: str, order_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda line: (line["type"] == "event" and line["name"] == name
                         and line["args"][0].get("orderId") == order_id)


def test_the_js_client_is_refused_without_a_valid_token(
        js: Callable[[str], JsClient], live_app: Flask) -> None:
    for token, code in (("", "UNAUTHORIZED"), ("forged", "TOKEN_INVALID")):
        refused = js(token).wait_for(lambda line: line["type"] == "connect_error")
        assert refused["data"]["code"] == code
        assert refused["message"] == refused["data"]["message"]


def test_the_js_client_receives_a_workers_event_joins_its_order_and_reports_a_position(
        js: Callable[[str], JsClient], live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    creator = js(access_token(live_users["creator"], live_app))
    creator.wait_for(lambda line: line["type"] == "connect")
    order_id = str(api(live_app, "POST", "/orders", live_users["creator"],
                       order_body())["order"]["id"])
    created = creator.wait_for(_event("order:created", order_id))
    event, offset = created["args"]
    assert event["payload"]["order"]["id"] == order_id and isinstance(offset, str)
    creator.send(cmd="emit", event="join", data={"orderId": order_id})
    ack = creator.wait_for(lambda line: line["type"] == "ack")
    assert ack["answer"] == {"ok": True, "room": f"order:{order_id}"}
    provider = js(access_token(live_users["provider"], live_app))
    provider.wait_for(lambda line: line["type"] == "connect")
    provider.send(cmd="emit", event="location:update", data={"latitude": 91, "longitude": 0})
    refused = provider.wait_for(lambda line: line["type"] == "ack")
    assert refused["answer"]["error"]["code"] == "VALIDATION_ERROR"


def test_the_js_client_recovers_what_it_missed_through_socket_io_recovery(
        js: Callable[[str], JsClient], live_app: Flask, live_users: dict[str, User],
        live_worker: Celery) -> None:
    creator = js(access_token(live_users["creator"], live_app))
    first = creator.wait_for(lambda line: line["type"] == "connect")
    assert first["recovered"] is False
    order_id = str(api(live_app, "POST", "/orders", live_users["creator"],
                       order_body())["order"]["id"])
    creator.wait_for(_event("order:created", order_id))
    creator.send(cmd="pause")
    creator.wait_for(lambda line: line["type"] == "disconnect")
    # While it is away: two applications, pushed to nobody.
    missed = {api(live_app, "POST", f"/orders/{order_id}/applications", live_users[name],
                  {})["application"]["id"] for name in ("provider", "rival")}
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and sum(
            n["event"] == "application:created" for n in api(
                live_app, "GET", "/notifications?limit=50", live_users["creator"])["items"]) < 2:
        time.sleep(0.05)
    time.sleep(0.2)  # pushed (the rows are marked just after the push)
    creator.send(cmd="resume")
    again = creator.wait_for(lambda line: line["type"] == "connect" and line is not first)
    assert again["recovered"] is True  # the client's own flag: the pid came back
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and len(creator.events("application:created")) < 2:
        time.sleep(0.05)
    replayed = creator.events("application:created")
    assert {args[0]["payload"]["applicationId"] for args in replayed} == missed
    # Exactly once, and nothing from before the drop again.
    assert len(replayed) == 2
    assert len([a for a in creator.events("order:created") if a[0]["orderId"] == order_id]) == 1
