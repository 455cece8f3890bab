"""The payment endpoints: who may call them, what bad input gets, whose objects are visible."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db.models import PaymentCustomer, PayoutAccount, SavedPaymentMethod, User
from services import Payments
from tests.api.orders_helpers import call
from tests.payments.conftest import accepted

BAD_PM = ["", "card_1", "pm_", "pm_" + "a" * 201, "pm_a b", 7, None, ["pm_card_visa"]]
BAD_ACCOUNT = ["", "acct_", "ba_123", "acct_a-b", 12, None, {"id": "acct_1"}]


def _count(session: Session, model: type) -> int:
    return int(session.scalar(select(func.count()).select_from(model)) or 0)


@pytest.mark.parametrize(("method", "path", "body"), [
    ("GET", "/payments", None),
    ("GET", "/payments/methods", None),
    ("POST", "/payments/methods", {"paymentMethodId": "pm_card_visa"}),
    ("GET", "/providers/me/payout-account", None),
    ("POST", "/providers/me/payout-account", {"accountId": "acct_1"}),
    ("GET", f"/orders/{uuid.uuid4()}/payments", None),
    ("GET", "/admin/ledger/balances", None),
])
def test_every_endpoint_needs_a_token(client: FlaskClient, pay: Payments, method: str,
                                      path: str, body: Any) -> None:
    assert call(client, method, path, None, body).status_code == 401


def test_roles(client: FlaskClient, people: dict[str, User], pay: Payments) -> None:
    provider, creator, admin = people["provider"], people["creator"], people["admin"]
    assert call(client, "POST", "/payments/methods", provider,
                {"paymentMethodId": "pm_card_visa"}).status_code == 403
    assert call(client, "GET", "/payments/methods", admin).status_code == 403
    assert call(client, "POST", "/providers/me/payout-account", creator,
                {"accountId": "acct_1"}).status_code == 403
    assert call(client, "GET", "/admin/ledger/balances", creator).status_code == 403
    assert call(client, "GET", "/admin/ledger/balances", provider).status_code == 403
    assert call(client, "GET", "/admin/ledger/balances", admin).status_code == 200


def test_payment_methods(client: FlaskClient, people: dict[str, User], pay: Payments,
                         db_session: Session) -> None:
    creator = people["creator"]
    for bad in BAD_PM:
        response = call(client, "POST", "/payments/methods", creator, {"paymentMethodId": bad})
        assert response.status_code == 400, bad
        assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert call(client, "POST", "/payments/methods", creator, {}).status_code == 400
    assert call(client, "POST", "/payments/methods", creator,
                {"paymentMethodId": "pm_card_visa", "extra": 1}).status_code == 400
    unknown = call(client, "POST", "/payments/methods", creator,
                   {"paymentMethodId": "pm_not_a_card"})
    assert unknown.status_code == 400 and "paymentMethodId" in unknown.json["error"]["details"]
    assert _count(db_session, SavedPaymentMethod) == 0
    assert _count(db_session, PaymentCustomer) == 0  # nothing half-written

    first = call(client, "POST", "/payments/methods", creator, {"paymentMethodId": "pm_card_visa"})
    assert first.status_code == 201, first.json
    assert first.json["data"]["paymentMethod"] | {"createdAt": None} == {
        "id": "pm_card_visa", "brand": "visa", "last4": "4242", "expMonth": 12,
        "expYear": first.json["data"]["paymentMethod"]["expYear"], "isDefault": True,
        "createdAt": None}
    call(client, "POST", "/payments/methods", creator, {"paymentMethodId": "pm_card_amex"})
    again = call(client, "POST", "/payments/methods", creator, {"paymentMethodId": "pm_card_visa"})
    assert again.status_code == 201
    listed = call(client, "GET", "/payments/methods", creator).json["data"]["items"]
    assert [(m["id"], m["isDefault"]) for m in listed] == [("pm_card_visa", True),
                                                          ("pm_card_amex", False)]
    assert call(client, "GET", "/payments/methods", people["stranger"]).json["data"][
        "items"] == []
    attaches = [op for op in pay.gateway.operations()]  # type: ignore[attr-defined]
    assert attaches == []  # attaching moves no money: nothing in the money log


def test_payout_account(client: FlaskClient, people: dict[str, User], pay: Payments,
                        db_session: Session) -> None:
    provider = people["provider"]
    for bad in BAD_ACCOUNT:
        response = call(client, "POST", "/providers/me/payout-account", provider,
                        {"accountId": bad})
        assert response.status_code == 400, bad
        assert response.json["error"]["code"] == "VALIDATION_ERROR"
    assert _count(db_session, PayoutAccount) == 0
    assert call(client, "GET", "/providers/me/payout-account", provider).status_code == 404
    made = call(client, "POST", "/providers/me/payout-account", provider,
                {"accountId": "acct_first"})
    assert made.status_code == 200
    replaced = call(client, "POST", "/providers/me/payout-account", provider,
                    {"accountId": "acct_disabledSecond"})
    assert replaced.json["data"]["payoutAccount"] | {"createdAt": 0, "updatedAt": 0} == {
        "accountId": "acct_disabledSecond", "payoutsEnabled": False,
        "detailsSubmitted": True, "createdAt": 0, "updatedAt": 0}
    assert _count(db_session, PayoutAccount) == 1
    # Another provider sees only their own (none).
    assert call(client, "GET", "/providers/me/payout-account",
                people["rival"]).status_code == 404


def test_payment_listings_show_only_the_callers_payments(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    mine = call(client, "GET", "/payments", people["creator"])
    assert mine.status_code == 200
    [item] = mine.json["data"]["items"]
    assert item["orderId"] == order["id"] and item["status"] == "processing"
    assert (item["state"], item["amount"], item["authorizedAmount"]) == ("authorized",
                                                                         "30.00", "30.00")
    assert item["settlement"] is None and mine.json["data"]["pagination"]["totalCount"] == 1
    assert call(client, "GET", "/payments", people["provider"]).json["data"][
        "pagination"]["totalCount"] == 1
    assert call(client, "GET", "/payments", people["stranger"]).json["data"]["items"] == []
    assert call(client, "GET", "/payments?limit=0", people["creator"]).status_code == 400
    assert call(client, "GET", "/payments?cursor=forged", people["creator"]).status_code == 400

    path = f"/orders/{order['id']}/payments"
    for who in ("creator", "provider", "admin"):
        response = call(client, "GET", path, people[who])
        assert response.status_code == 200 and len(response.json["data"]["items"]) == 1, who
    for who in ("stranger", "rival"):
        assert call(client, "GET", path, people[who]).status_code == 404, who
    assert call(client, "GET", f"/orders/{uuid.uuid4()}/payments",
                people["creator"]).status_code == 404
    assert call(client, "GET", "/orders/not-a-uuid/payments",
                people["creator"]).status_code == 404


def test_admin_ledger_balances(client: FlaskClient, people: dict[str, User],
                               pay: Payments, db_session: Session) -> None:
    from domain.payments import ledger

    ledger.post(db_session, key=f"test/{uuid.uuid4()}", kind="capture", order_id=None,
                currency="KWD", legs=ledger.capture_legs(1500))
    db_session.commit()
    data = call(client, "GET", "/admin/ledger/balances", people["admin"]).json["data"]
    assert {"account": "escrow", "currency": "KWD", "balance": "1.500",
            "balanceMinor": 1500} in data["balances"]
    assert {"currency": "KWD", "sumMinor": 0, "balanced": True} in data["totals"]
