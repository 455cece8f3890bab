"""The access matrix (issue 14): every route the app serves x seven callers, the exact status
each gets, and no response carrying another person's private data or exact position.

The routes come from the app's own ``url_map``: a route added without a row here fails
``test_every_route_has_a_row`` (and a row whose route is gone fails it too).

A row: the route (method and ``url_map`` rule), the exact status of each caller in ``CALLERS``
order (anonymous, creator, other creator, assigned provider, other provider, unverified
provider, admin), the callers ``allowed`` (letters ``nABPQUM``, same order), and a well-formed
request (body, query, which of the world's ids fill the path), so what is tested is the
permission, not validation. An allowed caller may get a domain refusal (409 for a state that
does not allow it, 400 for a link that is not one); a caller not allowed gets 401 (no token),
403 (the role or verification does not allow it) or 404 (the project hides that the thing
exists: another person's order and everything under it; docs/auth.md, "Object-level checks").

Every case runs in a fresh world on a rolled-back transaction (``access_world``), so a call
that changes state never changes the next one. Run:

    bash scripts/test.sh -q -p no:randomly tests/reliability/test_access_matrix.py
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from domain.presence import coarsen
from tests.api.orders_helpers import order_body
from tests.auth_helpers import STRONG_PASSWORD, register_body
from tests.conftest import TEST_REDIS_URL, empty_tables
from tests.factories import PASSWORD
from tests.reliability.access_world import (
    CALLERS,
    LETTERS,
    PROVIDER_AT,
    World,
    build_world,
    commit_world,
    leaks,
)

#: A path parameter of a url_map rule (``<uuid:order_id>``).
PARAMETER = re.compile(r"<(?:\w+:)?(\w+)>")
Body = dict[str, Any] | Callable[[World, str], dict[str, Any]] | None

#: Refusals: what a caller outside a row's allowed set may get.
REFUSALS = frozenset({401, 403, 404})
#: Methods every route has for free (Flask answers them itself).
IMPLICIT = frozenset({"HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Row:
    method: str
    rule: str  # as in app.url_map
    expect: str  # seven statuses, CALLERS order
    allowed: str  # letters of the allowed callers (nABPQUM)
    body: Body = None
    query: str = ""
    #: path parameter -> a World.ids() name, or "=literal"
    ids: dict[str, str] = field(default_factory=dict)
    token: str = "accessToken"  # which of the caller's tokens is sent
    #: The order's state is checked before the caller's part in it (``check_transition``:
    #: "a participant asking for an impossible move learns why"), so every participant gets
    #: 409 here; the same route in a state that allows the move says who may make it.
    state_first: bool = False

    @property
    def statuses(self) -> dict[str, int]:
        return dict(zip(CALLERS, (int(s) for s in self.expect.split()), strict=True))

    @property
    def allowed_callers(self) -> frozenset[str]:
        return frozenset(LETTERS[letter] for letter in self.allowed)

    @property
    def name(self) -> str:
        template = PARAMETER.sub(r"{\1}", self.rule).removeprefix(V1)
        return f"{self.method} {template}"


def _own_email(world: World, caller: str) -> dict[str, Any]:
    return {"email": world.emails.get(caller, "nobody@example.test")}


def _own_login(world: World, caller: str) -> dict[str, Any]:
    return _own_email(world, caller) | {"password": PASSWORD}


def _own_refresh(world: World, caller: str) -> dict[str, Any]:
    return {"refreshToken": world.tokens[caller]["refreshToken"]} if caller in world.tokens \
        else {}


def _new_name(world: World, caller: str) -> dict[str, Any]:
    return {"username": f"renamed{caller.replace('_', '')}"}


V1 = "/api/v1"
ORDER = f"{V1}/orders/<uuid:order_id>"
PENDING = {"order_id": "pending"}
ACTIVE = {"order_id": "active"}
REASON = {"reason": "The weather turned"}

ROWS: tuple[Row, ...] = (
    # ---------------------------------------------------------- outside the JSON API
    # (/ready, /metrics and /internal/* are not routed by nginx: deploy/nginx/taplive.conf.)
    Row("GET", "/health", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", "/ready", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", "/metrics", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", f"{V1}/openapi.json", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", f"{V1}/docs", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", f"{V1}/redoc", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", f"{V1}/docs/assets/<path:filename>", "200 200 200 200 200 200 200", "nABPQUM",
        ids={"filename": "=docs/docs.css"}),
    # The watch page holds nothing secret; its script asks the API with the creator's token.
    Row("GET", "/watch/<uuid:order_id>", "200 200 200 200 200 200 200", "nABPQUM"),
    Row("GET", "/watch/assets/<path:filename>", "200 200 200 200 200 200 200", "nABPQUM",
        ids={"filename": "=watch/watch.js"}),
    # nginx-rtmp's callbacks: a shared secret and a peer allow-list, never a bearer token.
    Row("POST", "/internal/rtmp/on_publish", "403 403 403 403 403 403 403", ""),
    Row("POST", "/internal/rtmp/on_publish_done", "403 403 403 403 403 403 403", ""),
    # Signed by the processor (a signature header), never a bearer token: unsigned is refused.
    Row("POST", f"{V1}/webhooks/stripe", "503 503 503 503 503 503 503", "nABPQUM", body={}),
    Row("POST", f"{V1}/webhooks/stripe/connect", "503 503 503 503 503 503 503", "nABPQUM", body={}),
    # Payout onboarding links: the signed token in the link is the credential.
    Row("GET", f"{V1}/payouts/onboarding/refresh", "400 400 400 400 400 400 400", "nABPQUM",
        query="token=not-a-link"),
    Row("GET", f"{V1}/payouts/onboarding/return", "400 400 400 400 400 400 400", "nABPQUM",
        query="token=not-a-link"),
    Row("GET", f"{V1}/payments/offline/onboarding/<string:token>", "404 404 404 404 404 404 404",
        "nABPQUM", ids={"token": "=not-a-link"}),
    Row("POST", f"{V1}/payments/offline/onboarding/<string:token>", "404 404 404 404 404 404 404",
        "nABPQUM", ids={"token": "=not-a-link"}),
    # ------------------------------------------------------------------------- auth
    Row("POST", f"{V1}/auth/register", "201 201 201 201 201 201 201", "nABPQUM",
        body=lambda w, c: register_body()),
    Row("POST", f"{V1}/auth/login", "401 200 200 200 200 200 200", "ABPQUM", body=_own_login),
    Row("POST", f"{V1}/auth/refresh", "401 200 200 200 200 200 200", "ABPQUM",
        token="refreshToken"),
    Row("POST", f"{V1}/auth/logout", "401 200 200 200 200 200 200", "ABPQUM", body=_own_refresh),
    Row("POST", f"{V1}/auth/logout-all", "401 200 200 200 200 200 200", "ABPQUM"),
    Row("POST", f"{V1}/auth/password-reset", "202 202 202 202 202 202 202", "nABPQUM",
        body=_own_email),
    Row("POST", f"{V1}/auth/password-reset/confirm", "400 400 400 400 400 400 400", "nABPQUM",
        body={"token": "0123.notalink", "newPassword": STRONG_PASSWORD}),
    Row("POST", f"{V1}/auth/email-verification", "401 202 202 202 202 202 202", "ABPQUM"),
    Row("POST", f"{V1}/auth/email-verification/confirm", "400 400 400 400 400 400 400", "nABPQUM",
        body={"token": "0123.notalink"}),
    # ------------------------------------------------------------------------ users
    Row("GET", f"{V1}/users/me", "401 200 200 200 200 200 200", "ABPQUM"),
    Row("PATCH", f"{V1}/users/me", "401 200 200 200 200 200 200", "ABPQUM", body=_new_name),
    Row("DELETE", f"{V1}/users/me", "401 409 200 409 409 200 200", "ABPQUM",
        body={"password": PASSWORD}),
    Row("POST", f"{V1}/users/me/password", "401 200 200 200 200 200 200", "ABPQUM",
        body={"currentPassword": PASSWORD, "newPassword": STRONG_PASSWORD}),
    Row("GET", f"{V1}/users/me/export", "401 200 200 200 200 200 200", "ABPQUM"),
    # ------------------------------------------------------------------------ admin
    Row("GET", f"{V1}/admin/users", "401 403 403 403 403 403 200", "M"),
    Row("POST", f"{V1}/admin/users/<uuid:user_id>/verification", "401 403 403 403 403 403 200", "M",
        body={"status": "verified", "reason": "Documents checked"},
        ids={"user_id": "user:unverified"}),
    Row("PUT", f"{V1}/admin/users/<uuid:user_id>/tier", "401 403 403 403 403 403 200", "M",
        body={"tier": "premium"}, ids={"user_id": "user:other_creator"}),
    Row("DELETE", f"{V1}/admin/users/<uuid:user_id>/tier", "401 403 403 403 403 403 200", "M",
        ids={"user_id": "user:other_creator"}),
    Row("GET", f"{V1}/analytics/me", "401 200 200 200 200 200 200", "ABPQUM"),
    Row("GET", f"{V1}/admin/analytics", "401 403 403 403 403 403 200", "M"),
    Row("GET", f"{V1}/admin/ledger/balances", "401 403 403 403 403 403 200", "M"),
    # ----------------------------------------------------------------------- orders
    Row("GET", f"{V1}/orders", "401 200 200 200 200 200 200", "ABPQUM"),
    Row("POST", f"{V1}/orders", "401 201 201 403 403 403 403", "AB", body=order_body()),
    Row("GET", f"{V1}/orders/nearby", "401 200 200 200 200 200 200", "ABPQUM",
        query="latitude=51.5074&longitude=-0.1278&radius=5000"),
    Row("GET", ORDER, "401 200 404 200 404 404 200", "APM"),
    Row("GET", ORDER, "401 200 404 200 200 200 200", "APQUM", ids=PENDING),
    Row("PUT", ORDER, "401 200 404 403 403 403 403", "A",
        body={"title": "Harbour at dusk"}, ids=PENDING),
    Row("DELETE", ORDER, "401 200 404 403 403 403 403", "A", ids=PENDING),
    Row("GET", f"{ORDER}/applications", "401 200 404 200 404 404 200", "APM"),
    # A pending order: any provider may list, and sees their own application only.
    Row("GET", f"{ORDER}/applications", "401 200 404 200 200 200 200", "APQUM", ids=PENDING),
    Row("POST", f"{ORDER}/applications", "401 403 403 201 409 403 403", "PQ", body={}, ids=PENDING),
    Row("POST", f"{ORDER}/applications/<uuid:application_id>/withdraw",
        "401 403 403 409 404 404 403", "P"),
    Row("POST", f"{ORDER}/accept", "401 200 404 403 403 403 403", "A",
        body=lambda w, c: {"applicationId": w.offer, "paymentMethodId": "pm_card_visa"},
        ids=PENDING),
    Row("POST", f"{ORDER}/payment/confirm", "401 200 404 403 403 403 403", "A"),
    Row("POST", f"{ORDER}/start", "401 403 404 200 404 404 403", "P"),
    Row("POST", f"{ORDER}/start", "401 409 404 409 404 404 409", "P", ids=ACTIVE, state_first=True),
    Row("POST", f"{ORDER}/complete", "401 409 404 409 404 404 409", "P", state_first=True),
    Row("POST", f"{ORDER}/complete", "401 403 404 200 404 404 403", "P", ids=ACTIVE),
    Row("POST", f"{ORDER}/cancel", "401 200 404 200 404 404 200", "APM", body=REASON),
    Row("POST", f"{ORDER}/cancel", "401 200 404 404 404 404 200", "AM", body=REASON, ids=PENDING),
    Row("POST", f"{ORDER}/reopen", "401 409 404 403 403 403 403", "A"),
    Row("POST", f"{ORDER}/dispute", "401 409 404 403 403 403 403", "A", body=REASON),
    Row("POST", f"{V1}/admin/orders/<uuid:order_id>/resolve", "401 403 403 403 403 403 409", "M",
        body={"outcome": "release", "note": "Streamed as agreed"}),
    Row("GET", f"{ORDER}/matches", "401 200 404 404 404 404 200", "AM", ids=PENDING),
    Row("PUT", f"{ORDER}/dispatch", "401 200 404 403 403 403 403", "A", body={"enabled": True},
        ids=PENDING),
    Row("GET", f"{ORDER}/provider-location", "401 200 404 200 404 404 200", "APM"),
    Row("GET", f"{ORDER}/messages", "401 200 404 200 404 404 200", "APM"),
    Row("POST", f"{ORDER}/messages", "401 201 404 201 404 404 403", "AP",
        body={"body": "Five minutes"}),
    Row("GET", f"{ORDER}/payments", "401 200 404 200 404 404 200", "APM"),
    Row("GET", f"{ORDER}/stream", "401 200 404 200 404 404 200", "APM"),
    Row("GET", f"{ORDER}/provider-location", "401 200 404 200 404 404 200", "APM", ids=ACTIVE),
    # -------------------------------------------------------------------- providers
    Row("GET", f"{V1}/providers/me/invitations", "401 403 403 200 200 200 403", "PQU"),
    Row("POST", f"{V1}/providers/me/invitations/<uuid:match_id>/decline",
        "401 403 403 200 404 404 403", "P"),
    Row("POST", f"{V1}/providers/me/invitations/<uuid:match_id>/accept",
        "401 403 403 409 404 403 403", "P"),
    Row("PUT", f"{V1}/providers/me/location", "401 403 403 200 200 200 403", "PQU",
        body={"latitude": 51.5, "longitude": -0.12, "accuracy": 8.0}),
    Row("GET", f"{V1}/providers/me/availability", "401 403 403 200 200 200 403", "PQU"),
    Row("PUT", f"{V1}/providers/me/availability", "401 403 403 200 200 403 403", "PQ",
        body={"online": True}),
    # --------------------------------------------------------------------- payments
    Row("GET", f"{V1}/payments", "401 200 200 200 200 200 200", "ABPQUM"),
    Row("GET", f"{V1}/payments/methods", "401 200 200 403 403 403 403", "AB"),
    Row("POST", f"{V1}/payments/methods", "401 201 201 403 403 403 403", "AB",
        body={"paymentMethodId": "pm_card_visa"}),
    Row("GET", f"{V1}/providers/me/payout-account", "401 403 403 200 404 404 403", "PQU"),
    Row("POST", f"{V1}/providers/me/payout-account", "401 403 403 200 200 200 403", "PQU",
        body={"accountId": "acct_1NewAccount"}),
    Row("POST", f"{V1}/providers/me/payout-account/onboarding",
        "401 403 403 422 201 201 403", "PQU",
        body={}),
    # ------------------------------------------------------------------ notifications
    Row("GET", f"{V1}/notifications", "401 200 200 200 200 200 200", "ABPQUM"),
    Row("POST", f"{V1}/notifications/read", "401 200 200 200 200 200 200", "ABPQUM",
        body={"all": True}),
)


def _fill(rule: str, row: Row, world: World) -> str:
    ids = world.ids()

    def one(match: re.Match[str]) -> str:
        name = row.ids.get(match.group(1), match.group(1).removesuffix("_id"))
        return name[1:] if name.startswith("=") else ids[name]

    return PARAMETER.sub(one, rule)


def _served_routes(app: Flask) -> set[tuple[str, str]]:
    return {(method, rule.rule) for rule in app.url_map.iter_rules()
            if rule.endpoint != "static"
            for method in (rule.methods or set()) - IMPLICIT}


def test_every_route_has_a_row(app: Flask) -> None:
    """New endpoints join the matrix: a served route without a row (or a row without a
    route) fails here."""
    rows = {(row.method, row.rule) for row in ROWS}
    assert sorted(_served_routes(app) - rows) == [], "routes without a row in the matrix"
    assert sorted(rows - _served_routes(app)) == [], "rows for routes the app does not serve"


def test_rows_are_consistent() -> None:
    """Allowed callers are never refused for who they are; the others always are."""
    for row in ROWS:
        for caller, status in row.statuses.items():
            if caller in row.allowed_callers:
                assert status not in {401, 403}, (row.name, caller, status)
            else:
                refusals = REFUSALS | {409} if row.state_first else REFUSALS
                assert status in refusals, (row.name, caller, status)


def _cases(reads: bool) -> Iterator[Any]:
    for row in ROWS:
        if (row.method == "GET") != reads:
            continue
        for caller in CALLERS:
            suffix = f" [{next(iter(row.ids.values()))}]" if row.ids else ""
            yield pytest.param(row, caller, id=f"{row.name}{suffix} as {caller}")


@pytest.fixture(scope="module")
def committed_world(app: Flask) -> Iterator[World]:
    """One world, committed, for every read: the reads change nothing another case sees (the
    few that write, such as the export's audit record, run on the test's rolled-back
    connection like any request of ``client``)."""
    world = commit_world(app, TEST_REDIS_URL)
    yield world
    empty_tables(app)


@pytest.fixture
def fresh_world(app: Flask, db_session: Session) -> World:
    """A world of the test's own, rolled back afterwards: for the calls that change state.
    (``client`` binds the app to the same rolled-back connection.)"""
    return build_world(app, db_session, TEST_REDIS_URL)


@pytest.mark.parametrize(("row", "caller"), list(_cases(reads=True)))
def test_read(client: FlaskClient, committed_world: World, row: Row, caller: str) -> None:
    _check(client, committed_world, row, caller)


@pytest.mark.parametrize(("row", "caller"), list(_cases(reads=False)))
def test_write(request: pytest.FixtureRequest, client: FlaskClient, committed_world: World,
               row: Row, caller: str) -> None:
    # A caller who may make the call changes the world: a fresh one. A refused caller changes
    # nothing (and a wrongly allowed one fails here, its writes rolled back with the test):
    # the shared world, which saves two thirds of the worlds built.
    allowed = caller in row.allowed_callers
    _check(client, request.getfixturevalue("fresh_world") if allowed else committed_world,
           row, caller)


def _check(client: FlaskClient, world: World, row: Row, caller: str) -> None:
    """The exact status, and none of another person's private values in the answer."""
    headers = ({"Authorization": f"Bearer {world.tokens[caller][row.token]}"}
               if caller in world.tokens else {})
    body = row.body(world, caller) if callable(row.body) else row.body
    path = _fill(row.rule, row, world) + (f"?{row.query}" if row.query else "")
    response: TestResponse = client.open(path, method=row.method, json=body, headers=headers)
    content = response.get_json(silent=True)
    payload = content if content is not None else response.get_data(as_text=True)
    assert response.status_code == row.statuses[caller], payload
    # The headers too: a redirect's Location, a cookie, a link would carry it there.
    assert leaks([payload, dict(response.headers)], caller, world.secrets) == [], payload


def test_stream_credentials_reach_their_holder_only(client: FlaskClient,
                                                    committed_world: World) -> None:
    """The stream's secrets, beyond the status: the key to publish goes to the assigned
    provider alone, the playlist to the creator alone; an admin gets the facts only."""
    path = f"{V1}/orders/{committed_world.order}/stream"
    seen = {}
    for caller in ("creator", "provider", "admin"):
        token = committed_world.tokens[caller]["accessToken"]
        stream = client.get(path, headers={"Authorization": f"Bearer {token}"}).json["data"]
        seen[caller] = {name for name in ("ingestUrl", "streamKey", "playbackUrl")
                        if name in stream["stream"]}
    assert seen == {"creator": {"playbackUrl"}, "provider": {"ingestUrl", "streamKey"},
                    "admin": set()}


def test_the_leak_walk_finds_what_it_looks_for(committed_world: World) -> None:
    """The walk is not vacuous: an exact position deep in a body (as a number or inside a
    string) is found, its 500 m coarsening is not, and the owner may see their own."""
    secrets = committed_world.secrets
    lat, lon = PROVIDER_AT
    assert leaks({"items": [{"location": {"latitude": lat}}]}, "other_creator", secrets) == [
        "provider's exact position"]
    assert leaks([f"geo:{lat:.6f},{lon:.6f}"], "admin", secrets) == ["provider's exact position"]
    assert leaks({"location": dict(zip(("latitude", "longitude"),
                                       coarsen(lat, lon, 500), strict=True))},
                 "admin", secrets) == []
    assert leaks({"latitude": lat}, "provider", secrets) == []
    email = committed_world.emails["creator"]
    assert leaks({"user": {"email": email}}, "provider", secrets) == ["creator's email"]
    assert leaks({"user": {"email": email}}, "admin", secrets) == []
