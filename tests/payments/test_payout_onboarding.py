"""Payout onboarding (issue 17): the connected account is made through the processor's form, its
link refreshed when it expires, payouts enabled from ``account.updated`` or a re-read; the
offline processor walks the same path through its own form served by the API."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from db.models import PayoutAccount, User
from db.queries import payments as queries
from domain.payments import capture, keys, settlement
from domain.payments.offline import OfflineGateway
from domain.payments.stripe_gateway import StripeGateway
from services import Payments
from tests.api.orders_helpers import call
from tests.payments.conftest import (
    CONFIG,
    WEBHOOK_SECRET,
    Clock,
    accepted,
    deliver,
    escrow_of,
)
from tests.payments.recorded_stripe import RecordedStripe
from tests.payments.test_webhooks_reconciliation import _post


def _start(client: FlaskClient, provider: User, body: dict[str, Any] | None = None) -> Any:
    response = call(client, "POST", "/providers/me/payout-account/onboarding", provider,
                    body or {})
    assert response.status_code == 201, response.json
    return response.json["data"]


def _local(url: str) -> str:
    """A URL the app made (``http://localhost/...``) as the test client's path."""
    parts = urllib.parse.urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _balanced(session: Session) -> None:
    totals: dict[str, int] = {}
    for _account, currency, balance in queries.ledger_balances(session):
        totals[currency] = totals.get(currency, 0) + balance
    assert all(v == 0 for v in totals.values()), totals


def _captured_past_window(client: FlaskClient, people: dict[str, User], pay: Payments,
                          session: Session) -> uuid.UUID:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(session, oid, ago=timedelta(days=4))
    capture.capture(session, pay.gateway, pay.config, oid, datetime.now(UTC))
    session.commit()
    return oid


# ------------------------------------------------------------------------ offline processor


def test_offline_onboarding_walks_the_whole_path(
        client: FlaskClient, people: dict[str, User], pay: Payments, gateway: OfflineGateway,
        clock: Clock, db_session: Session) -> None:
    provider = people["provider"]
    assert call(client, "POST", "/providers/me/payout-account/onboarding",
                people["creator"], {}).status_code == 403
    oid = _captured_past_window(client, people, pay, db_session)

    started = _start(client, provider)
    account = started["payoutAccount"]
    assert account["accountId"].startswith("acct_offline")
    assert account["payoutsEnabled"] is False and account["detailsSubmitted"] is False
    assert started["onboardingUrl"].startswith(
        "http://localhost/api/v1/payments/offline/onboarding/link_")
    # Not enabled yet: settlement waits, as for any provider without payouts.
    assert not settlement.split(db_session, CONFIG, oid, datetime.now(UTC))
    db_session.rollback()

    # Starting again: the same account (one creation at the processor), a new link.
    again = _start(client, provider)
    assert again["payoutAccount"]["accountId"] == account["accountId"]
    assert again["onboardingUrl"] != started["onboardingUrl"]
    assert [op["op"] for op in gateway.operations()].count("account") == 1

    form = client.get(_local(again["onboardingUrl"]))
    assert form.status_code == 200 and account["accountId"] in form.get_data(as_text=True)

    # The link expires: the form sends the browser to refresh_url, which makes a new link.
    clock.now += timedelta(minutes=6)
    expired = client.get(_local(again["onboardingUrl"]))
    assert expired.status_code == 302 and "/payouts/onboarding/refresh?token=" in \
        expired.headers["Location"]
    refreshed = client.get(_local(expired.headers["Location"]))
    assert refreshed.status_code == 302
    new_link = refreshed.headers["Location"]
    assert new_link.startswith("http://localhost/api/v1/payments/offline/onboarding/link_")
    assert new_link not in (started["onboardingUrl"], again["onboardingUrl"])

    submitted = client.post(_local(new_link))
    assert submitted.status_code == 303
    assert "/payouts/onboarding/return?token=" in submitted.headers["Location"]
    # The form stood in for account.updated: the row was re-read and stored.
    db_session.expire_all()
    row = db_session.scalars(select(PayoutAccount).where(
        PayoutAccount.user_id == provider.id)).one()
    assert row.payouts_enabled and row.details_submitted
    back = client.get(_local(submitted.headers["Location"]))
    assert back.status_code == 200 and back.json["data"]["payoutAccount"]["payoutsEnabled"]
    # A used link is spent: back to refresh_url.
    assert client.post(_local(new_link)).status_code == 303
    assert "/refresh?" in client.post(_local(new_link)).headers["Location"]

    # Settlement goes on by itself now, twice is once; the transfer is pending payout.
    for _ in range(2):
        settlement.split(db_session, CONFIG, oid, datetime.now(UTC))
        settlement.pay_out(db_session, pay.gateway, oid, datetime.now(UTC))
        db_session.commit()
    escrow = escrow_of(db_session, oid)
    assert escrow.state == "settled" and escrow.payout_status == "pending"
    transfers = [op for op in gateway.operations() if op["op"] == "transfer"]
    assert len(transfers) == 1
    _balanced(db_session)


def test_onboarding_links_are_signed(client: FlaskClient, people: dict[str, User],
                                     pay: Payments) -> None:
    started = _start(client, people["provider"])
    link = client.get(_local(started["onboardingUrl"]))
    assert link.status_code == 200
    for path in ("/api/v1/payouts/onboarding/refresh", "/api/v1/payouts/onboarding/return"):
        assert client.get(path).status_code == 400  # no token
        forged = client.get(f"{path}?token=" + urllib.parse.quote(
            json.dumps(str(people["provider"].id))))
        assert forged.status_code == 400
        assert forged.json["error"]["code"] == "INVALID_ONBOARDING_TOKEN"
    assert client.get("/api/v1/payments/offline/onboarding/link_nope").status_code == 404


def test_refresh_on_demand_reads_the_processor(
        client: FlaskClient, people: dict[str, User], pay: Payments, gateway: OfflineGateway,
        db_session: Session) -> None:
    provider = people["provider"]
    started = _start(client, provider)
    token = urllib.parse.urlsplit(started["onboardingUrl"]).path.rsplit("/", 1)[1]
    gateway.complete_onboarding(token)  # done at the processor; no event reached us
    stale = call(client, "GET", "/providers/me/payout-account", provider)
    assert stale.json["data"]["payoutAccount"]["payoutsEnabled"] is False
    fresh = call(client, "GET", "/providers/me/payout-account?refresh=true", provider)
    assert fresh.status_code == 200 and fresh.json["data"]["payoutAccount"]["payoutsEnabled"]
    db_session.expire_all()
    assert db_session.scalars(select(PayoutAccount.payouts_enabled).where(
        PayoutAccount.user_id == provider.id)).one() is True  # kept (the GET committed)


def test_account_updated_webhook_enables_payouts_once(
        client: FlaskClient, people: dict[str, User], pay: Payments, gateway: OfflineGateway,
        db_session: Session) -> None:
    provider = people["provider"]
    started = _start(client, provider)
    acct = started["payoutAccount"]["accountId"]
    body = json.dumps({"id": "evt_acct_1", "object": "event", "type": "account.updated",
                       "account": acct, "data": {"object": {
                           "id": acct, "object": "account", "payouts_enabled": True}}}).encode()
    # The event says enabled, the processor does not (yet): the re-read wins.
    assert _post(client, body).json["data"]["outcome"] == "account-synced"
    db_session.expire_all()
    assert not db_session.scalars(select(PayoutAccount.payouts_enabled).where(
        PayoutAccount.user_id == provider.id)).one()
    gateway.complete_onboarding(
        urllib.parse.urlsplit(started["onboardingUrl"]).path.rsplit("/", 1)[1])
    body2 = body.replace(b"evt_acct_1", b"evt_acct_2")
    assert _post(client, body2).json["data"]["outcome"] == "account-synced"
    assert _post(client, body2).json["data"]["outcome"] == "duplicate"
    db_session.expire_all()
    assert db_session.scalars(select(PayoutAccount.payouts_enabled).where(
        PayoutAccount.user_id == provider.id)).one() is True
    other = body.replace(b"evt_acct_1", b"evt_acct_3").replace(acct.encode(), b"acct_notours")
    assert _post(client, other).json["data"]["outcome"] == "unknown-account"


# ----------------------------------------------------------------- Stripe, recorded responses


@pytest.fixture
def transport() -> RecordedStripe:
    return RecordedStripe()


@pytest.fixture
def recorded_pay(app: Flask, transport: RecordedStripe) -> Iterator[Payments]:
    original = app.extensions["taplive"].payments
    app.extensions["taplive"].payments = Payments(
        gateway=StripeGateway("sk_test_recorded", http_client=transport,
                              max_network_retries=0),
        config=CONFIG, webhook_secret=WEBHOOK_SECRET, webhook_tolerance_s=300)
    yield app.extensions["taplive"].payments
    app.extensions["taplive"].payments = original


def test_stripe_connect_onboarding(client: FlaskClient, people: dict[str, User],
                                   recorded_pay: Payments, transport: RecordedStripe,
                                   db_session: Session) -> None:
    provider = people["provider"]
    started = _start(client, provider, {"country": "FR"})
    acct = started["payoutAccount"]["accountId"]
    assert acct in transport.accounts and started["payoutAccount"]["payoutsEnabled"] is False
    assert started["onboardingUrl"].startswith(f"https://connect.stripe.com/setup/e/{acct}/")
    made = [r for r in transport.requests if r.path == "/v1/accounts"]
    assert len(made) == 1 and made[0].idempotency_key == keys.connect_account(provider.id)
    assert made[0].params["type"] == "express" and made[0].params["country"] == "FR"
    assert made[0].params["capabilities[transfers][requested]"] == "true"
    assert made[0].params["metadata[taplive_user]"] == str(provider.id)
    link = next(r for r in transport.requests if r.path == "/v1/account_links")
    assert link.params["type"] == "account_onboarding" and link.params["account"] == acct
    assert "/api/v1/payouts/onboarding/refresh?token=" in link.params["refresh_url"]
    assert "/api/v1/payouts/onboarding/return?token=" in link.params["return_url"]

    # Stripe sends the browser to refresh_url: a new link for the same account, no new account.
    refreshed = client.get(_local(link.params["refresh_url"]))
    assert refreshed.status_code == 302
    assert refreshed.headers["Location"].startswith(f"https://connect.stripe.com/setup/e/{acct}/")
    assert len([r for r in transport.requests if r.path == "/v1/accounts"]) == 1

    # The return before the webhook: re-read, still not enabled; then Stripe's account.updated.
    back = client.get(_local(link.params["return_url"]))
    assert back.status_code == 200 and back.json["data"]["payoutAccount"]["payoutsEnabled"] is False
    transport.enable(acct)
    body = json.dumps({"id": "evt_1", "object": "event", "type": "account.updated",
                       "account": acct, "data": {"object": transport.accounts[acct]}}).encode()
    assert _post(client, body).json["data"]["outcome"] == "account-synced"
    shown = call(client, "GET", "/providers/me/payout-account", provider).json["data"]
    assert shown["payoutAccount"]["payoutsEnabled"] is True
    assert shown["payoutAccount"]["detailsSubmitted"] is True


def test_localstripe_has_no_connect_accounts(localstripe_url: str) -> None:
    """Why onboarding is tested on recorded responses: if localstripe gains accounts and
    account links, this fails and the onboarding tests should move to it."""
    for path in ("/v1/accounts", "/v1/account_links"):
        request = urllib.request.Request(localstripe_url + path, data=b"type=express",
                                         headers={"Authorization": "Bearer sk_test_x"})
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        assert refused.value.code == 404


def test_connect_events_have_their_own_endpoint_and_secret(
        client: FlaskClient, people: dict[str, User], pay: Payments, gateway: OfflineGateway,
        db_session: Session) -> None:
    started = _start(client, people["provider"])
    acct = started["payoutAccount"]["accountId"]
    gateway.complete_onboarding(
        urllib.parse.urlsplit(started["onboardingUrl"]).path.rsplit("/", 1)[1])
    body = json.dumps({"id": "evt_connect_1", "object": "event", "type": "account.updated",
                       "account": acct, "data": {"object": {"id": acct}}}).encode()
    at = int(time.time())

    def post(secret: str) -> Any:
        mac = hmac.new(secret.encode(), b"%d.%s" % (at, body), hashlib.sha256).hexdigest()
        return client.post("/api/v1/webhooks/stripe/connect", data=body, headers={
            "Content-Type": "application/json", "Stripe-Signature": f"t={at},v1={mac}"})

    assert post("whsec_connect").status_code == 503  # not configured
    pay.connect_webhook_secret = "whsec_connect"
    assert post(WEBHOOK_SECRET).json["error"]["code"] == "INVALID_SIGNATURE"
    assert post("whsec_connect").json["data"]["outcome"] == "account-synced"
    db_session.expire_all()
    assert db_session.scalars(select(PayoutAccount.payouts_enabled).where(
        PayoutAccount.user_id == people["provider"].id)).one() is True
