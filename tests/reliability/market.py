"""A seeded market and the clients that drive it through the real HTTP API.

Seeded with ``random.Random(seed)``: creators, verified providers (each with a payout account
on file), order points around a few cities. Each client thread is one creator with a few
providers of its own and runs its share of the orders one after another, each through its
whole lifecycle over HTTP:

* **completed** (most): create -> the provider reports its position at the order point ->
  applies -> the creator accepts with a card (the hold) -> the provider fetches its stream key
  -> nginx-rtmp's ``on_publish`` (the order starts) -> ``on_publish_done`` a second later; the
  beat sweep ``streams.finish_idle`` then completes the order (after ``STREAM_GRACE_S``), which
  captures; the settlement sweep transfers. The stream callbacks are sent as nginx-rtmp sends
  them (form POSTs to ``/internal/rtmp/*`` with the secret), no video is published: the ingest
  itself is tests/streams/'s subject.
* **cancelled while pending**: create, then cancel;
* **cancelled after acceptance**: create, apply, accept (a hold), cancel (the hold released);
* **refunded** (a share taken from the completed ones, alternately in full and a third of it):
  completed as above, then the creator disputes within the run's dispute window (a few
  seconds), waits until the payment is captured and an admin resolves the dispute with
  ``refund`` (``refundAmount`` for the partial one) through the admin endpoint; the
  ``payments.apply_resolution`` task refunds at the processor, settlement pays any rest. The
  wait for the capture is deliberate: a refund decided before the capture only captures less
  (docs/payments.md), which would leave the processor's refund path unexercised.

Every response is recorded (endpoint template, status, latency). A transport error (the
server refused or dropped the connection) counts as an error of status 0.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
import urllib.parse
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from db.models import PayoutAccount, User
from domain.auth.tokens import TokenIssuer
from tests import factories

CITIES = [(40.7128, -74.0060), (51.5074, -0.1278), (48.8566, 2.3522), (35.6762, 139.6503)]
PROVIDERS_PER_CLIENT = 3
# "refund" becomes refund_full and refund_partial in turn (both kinds in even a short run).
OUTCOMES = (("completed", 0.7), ("refund", 0.1), ("cancel_pending", 0.1),
            ("cancel_accepted", 0.1))
REFUNDS = ("refund_full", "refund_partial")
POLL_S = 0.25
# How long a refund flow waits for completion (the streams.finish_idle beat ticks every 10 s)
# and for the capture (the payments queue; a SIGKILLed worker's message returns after the 15 s
# visibility timeout, and payments.retry_captures ticks every 15 s).
COMPLETION_WAIT_S = 45.0
CAPTURE_WAIT_S = 60.0


@dataclass(frozen=True)
class Party:
    id: uuid.UUID
    token: str


@dataclass(frozen=True)
class Plan:
    """One order as the seed decided it."""

    index: int
    outcome: str
    latitude: float
    longitude: float
    amount: str
    refund_minor: int | None = None  # refund outcomes: what goes back to the creator


@dataclass
class Recorder:
    """Every response of every client: (endpoint, status, seconds)."""

    samples: list[tuple[str, int, float]] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)  # unexpected answers, for the report
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, endpoint: str, status: int, seconds: float) -> None:
        with self._lock:
            self.samples.append((endpoint, status, seconds))

    def fail(self, message: str) -> None:
        with self._lock:
            self.failures.append(message)

    def by_endpoint(self) -> dict[str, list[tuple[int, float]]]:
        grouped: dict[str, list[tuple[int, float]]] = defaultdict(list)
        for endpoint, status, seconds in self.samples:
            grouped[endpoint].append((status, seconds))
        return dict(grouped)


def seed_people(engine: Engine, issuer: TokenIssuer, clients: int
                ) -> list[tuple[Party, list[Party]]]:
    """Per client: a creator and its providers (verified, onboarded for payouts)."""
    pairs: list[tuple[User, list[User]]] = []
    with Session(engine, expire_on_commit=False) as session:
        factories.bind(session)
        try:
            for _ in range(clients):
                creator = factories.UserFactory()
                providers = [factories.UserFactory(provider=True, verified=True)
                             for _ in range(PROVIDERS_PER_CLIENT)]
                pairs.append((creator, providers))
            session.flush()
            for _, providers in pairs:
                session.add_all(PayoutAccount(user_id=p.id, gateway="offline",
                                              account_ref=f"acct_{p.id.hex[:16]}",
                                              payouts_enabled=True) for p in providers)
            session.commit()
        finally:
            factories.bind(None)

    def party(user: User) -> Party:
        return Party(user.id, issuer.issue(user))

    return [(party(c), [party(p) for p in ps]) for c, ps in pairs]


def seed_admin(engine: Engine, issuer: TokenIssuer) -> Party:
    """The admin who resolves the run's disputes."""
    with Session(engine, expire_on_commit=False) as session:
        factories.bind(session)
        try:
            admin = factories.UserFactory(admin=True)
            session.commit()
        finally:
            factories.bind(None)
    return Party(admin.id, issuer.issue(admin))


def plan_orders(rng: random.Random, count: int) -> list[Plan]:
    names = [name for name, _ in OUTCOMES]
    weights = [weight for _, weight in OUTCOMES]
    plans = []
    refunds = 0
    for index in range(count):
        lat, lon = rng.choice(CITIES)
        outcome = rng.choices(names, weights)[0]
        latitude = round(lat + rng.uniform(-0.05, 0.05), 6)
        longitude = round(lon + rng.uniform(-0.05, 0.05), 6)
        minor = rng.randint(1500, 9000)
        refund_minor = None
        if outcome == "refund":
            outcome = REFUNDS[refunds % 2]
            refund_minor = minor if outcome == "refund_full" else minor // 3
            refunds += 1
        plans.append(Plan(index, outcome, latitude, longitude, f"{minor / 100:.2f}",
                          refund_minor))
    return plans


class Api:
    """One keep-alive HTTP connection (one per client thread), every call recorded."""

    def __init__(self, base_url: str, recorder: Recorder, timeout_s: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        self._host, self._port = parsed.hostname or "127.0.0.1", parsed.port or 80
        self._timeout = timeout_s
        self._conn: http.client.HTTPConnection | None = None
        self.recorder = recorder

    def call(self, method: str, path: str, endpoint: str, token: str | None = None,
             body: Any = None, form: dict[str, str] | None = None
             ) -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        payload: bytes | None = None
        if form is not None:
            payload = urllib.parse.urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        elif body is not None:
            payload = json.dumps(body).encode()
            headers["Content-Type"] = "application/json"
        began = time.monotonic()
        try:
            if self._conn is None:
                self._conn = http.client.HTTPConnection(self._host, self._port,
                                                        timeout=self._timeout)
            self._conn.request(method, path, body=payload, headers=headers)
            response = self._conn.getresponse()
            raw = response.read()
            status = response.status
        except (OSError, http.client.HTTPException) as exc:
            self.recorder.add(endpoint, 0, time.monotonic() - began)
            self.recorder.fail(f"{method} {endpoint}: transport error {exc!r}")
            self.close()
            return 0, {}
        self.recorder.add(endpoint, status, time.monotonic() - began)
        try:
            parsed = json.loads(raw) if raw else {}
        except ValueError:
            parsed = {"raw": raw[:200].decode(errors="replace")}
        return status, parsed if isinstance(parsed, dict) else {"data": parsed}

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@dataclass
class Client:
    """One creator and its providers, running plans one after another."""

    api: Api
    creator: Party
    providers: list[Party]
    callback_secret: str
    admin: Party | None = None  # resolves the refund outcomes' disputes
    created: dict[str, str] = field(default_factory=dict)  # order id -> planned outcome
    refunds: dict[str, int] = field(default_factory=dict)  # order id -> planned refund (minor)
    finished: set[str] = field(default_factory=set)  # whose flow got every answer it expected
    _turn: Iterator[int] = field(init=False)

    def __post_init__(self) -> None:
        self._turn = iter(range(10**9))

    def _expect(self, what: str, status: int, body: dict[str, Any], *wanted: int) -> bool:
        if status in wanted:
            return True
        error = body.get("error", body) if isinstance(body, dict) else body
        self.api.recorder.fail(f"{what}: {status} {str(error)[:300]}")
        return False

    def _poll(self, what: str, path: str, endpoint: str, token: str,
              ready: Callable[[dict[str, Any]], bool], timeout_s: float) -> bool:
        """GET ``path`` until ``ready(data)``; a failed or refused read is retried."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status, body = self.api.call("GET", path, endpoint, token)
            if status == 200 and ready(body.get("data") or {}):
                return True
            time.sleep(POLL_S)
        self.api.recorder.fail(f"{what}: not within {timeout_s:.0f} s")
        return False

    def _refund(self, plan: Plan, order_id: str) -> bool:
        """Dispute the completed order, then (once captured) resolve it with a refund."""
        assert self.admin is not None and plan.refund_minor is not None
        api, base = self.api, f"/api/v1/orders/{order_id}"
        if not self._poll("completion", base, "GET /orders/{id}", self.creator.token,
                          lambda data: data["order"]["status"] == "completed",
                          COMPLETION_WAIT_S):
            return False
        status, body = api.call("POST", f"{base}/dispute", "POST /orders/{id}/dispute",
                                self.creator.token, {"reason": "the stream was not as agreed"})
        if not self._expect("dispute", status, body, 200):
            return False
        if not self._poll("capture", f"{base}/payments", "GET /orders/{id}/payments",
                          self.creator.token,
                          lambda data: any(item["state"] == "captured"
                                           for item in data["items"]),
                          CAPTURE_WAIT_S):
            return False
        request: dict[str, Any] = {"outcome": "refund", "note": "reliability run"}
        if plan.outcome == "refund_partial":
            request["refundAmount"] = f"{plan.refund_minor / 100:.2f}"
        status, body = api.call("POST", f"/api/v1/admin/orders/{order_id}/resolve",
                                "POST /admin/orders/{id}/resolve", self.admin.token, request)
        return self._expect("resolve", status, body, 200)

    def run(self, plan: Plan) -> None:
        provider = self.providers[next(self._turn) % len(self.providers)]
        api, creator = self.api, self.creator
        status, body = api.call("POST", "/api/v1/orders", "POST /orders", creator.token, {
            "title": f"Load order {plan.index}", "description": "reliability run",
            "location": {"latitude": plan.latitude, "longitude": plan.longitude},
            "serviceRadius": 500, "baseAmount": plan.amount, "currency": "USD"})
        if not self._expect("create", status, body, 201):
            return
        order_id = body["data"]["order"]["id"]
        self.created[order_id] = plan.outcome
        if plan.refund_minor is not None:
            self.refunds[order_id] = plan.refund_minor
        base = f"/api/v1/orders/{order_id}"
        if plan.outcome == "cancel_pending":
            status, body = api.call("POST", f"{base}/cancel", "POST /orders/{id}/cancel",
                                    creator.token, {"reason": "changed my mind"})
            if self._expect("cancel pending", status, body, 200):
                self.finished.add(order_id)
            return
        status, body = api.call("PUT", "/api/v1/providers/me/location",
                                "PUT /providers/me/location", provider.token,
                                {"latitude": plan.latitude, "longitude": plan.longitude})
        if not self._expect("location", status, body, 200):
            return
        status, body = api.call("POST", f"{base}/applications",
                                "POST /orders/{id}/applications", provider.token, {})
        if not self._expect("apply", status, body, 201):
            return
        application_id = body["data"]["application"]["id"]
        status, body = api.call("POST", f"{base}/accept", "POST /orders/{id}/accept",
                                creator.token, {"applicationId": application_id,
                                                "paymentMethodId": "pm_card_visa"})
        if not self._expect("accept", status, body, 200):
            return
        if plan.outcome == "cancel_accepted":
            status, body = api.call("POST", f"{base}/cancel", "POST /orders/{id}/cancel",
                                    creator.token, {"reason": "plans changed"})
            if self._expect("cancel accepted", status, body, 200):
                self.finished.add(order_id)
            return
        status, body = api.call("GET", f"{base}/stream", "GET /orders/{id}/stream",
                                provider.token)
        if not self._expect("stream key", status, body, 200):
            return
        key = body["data"]["stream"]["streamKey"]
        client_id = str(plan.index + 1)
        form = {"app": "live", "name": key, "clientid": client_id, "addr": "127.0.0.1"}
        status, body = api.call(
            "POST", f"/internal/rtmp/on_publish?secret={self.callback_secret}",
            "POST /internal/rtmp/on_publish", form=form | {"call": "publish"})
        if not self._expect("on_publish", status, body, 302):
            return
        time.sleep(1.2)  # past STREAM_MIN_SECONDS (1 s in the run)
        status, body = api.call(
            "POST", f"/internal/rtmp/on_publish_done?secret={self.callback_secret}",
            "POST /internal/rtmp/on_publish_done", form=form | {"call": "publish_done"})
        if not self._expect("on_publish_done", status, body, 200):
            return
        if plan.outcome not in REFUNDS or self._refund(plan, order_id):
            self.finished.add(order_id)


def drive(clients: list[Client], plans: list[Plan]) -> float:
    """Run the plans across the clients' threads (plan i on client i mod n); returns the
    seconds until the last client finished."""
    began = time.monotonic()
    shares = [plans[i::len(clients)] for i in range(len(clients))]

    def work(client: Client, share: list[Plan]) -> None:
        for plan in share:
            try:
                client.run(plan)
            except Exception as exc:  # a bug in the harness must not hide the rest of the run
                client.api.recorder.fail(f"client crashed on order {plan.index}: {exc!r}")
        client.api.close()

    threads = [threading.Thread(target=work, args=(c, s), daemon=True)
               for c, s in zip(clients, shares, strict=True)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.monotonic() - began
