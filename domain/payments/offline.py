"""The offline gateway: Stripe's PaymentIntent/Refund/Transfer state machine, without a network.

Used by standalone mode (``PAYMENT_GATEWAY=offline``) and by tests that need a processor in
several processes at once. Its state lives in a ``Store``: Redis in the app (the API, the
workers and beat share it, like they would share Stripe), a dict in unit tests.

It behaves like Stripe where it matters to us:
* idempotency keys: a repeated key gets the first answer (a decline included), never a
  second action;
* test payment methods: ``pm_card_visa``, ``pm_card_mastercard``, ``pm_card_amex`` succeed;
  ``pm_card_chargeDeclined``, ``pm_card_visa_chargeDeclined``, ``pm_card_chargeCustomerFail``
  attach fine and are declined when charged; ``pm_card_authenticationRequired`` needs 3-D
  Secure (``requires_action``, with a client secret), which ``authenticate`` then passes or
  fails as the cardholder's bank would; anything else is "no such payment method";
* holds lapse after ``hold_validity`` (the intent becomes ``canceled``);
* connected accounts are any ``acct_...`` id; ``acct_disabled...`` has payouts disabled;
  accounts it creates itself (``create_account``) start disabled and are enabled by walking
  their onboarding link: ``create_account_link`` answers a URL on the service that asked
  (the origin of its ``return_url``, path ``OFFLINE_ONBOARDING_PATH``), which the API serves
  and which calls ``complete_onboarding`` (an expired link sends the browser to
  ``refresh_url``, as Stripe does);
* payouts of connected accounts to their banks do not happen by themselves (there is no
  bank): ``record_payout`` makes or moves one, for tests and demos.
Every action actually performed (not replayed) is appended to an operations log, which the
crash tests count to prove that nothing happened twice.
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import redis

from domain.payments.gateway import (
    AccountLink,
    CardDeclined,
    CardDetails,
    ConnectedAccount,
    GatewayError,
    Intent,
    IntentStatus,
    InvalidRequest,
    ObjectMissing,
    Payout,
    Refund,
    Transfer,
)

T = TypeVar("T")
_TEST_CARDS: dict[str, tuple[str, str, str]] = {  # id -> (brand, last4, behaviour)
    "pm_card_visa": ("visa", "4242", "ok"),
    "pm_card_mastercard": ("mastercard", "4444", "ok"),
    "pm_card_amex": ("amex", "8431", "ok"),
    "pm_card_chargeDeclined": ("visa", "0002", "decline"),
    "pm_card_visa_chargeDeclined": ("visa", "0002", "decline"),
    "pm_card_chargeCustomerFail": ("visa", "0341", "decline"),
    "pm_card_authenticationRequired": ("visa", "3184", "action"),
}
_ACCOUNT = re.compile(r"^acct_[A-Za-z0-9]{1,64}$")
#: Where the API serves the emulated onboarding form (``api.blueprints.payouts``).
OFFLINE_ONBOARDING_PATH = "/api/v1/payments/offline/onboarding/"
#: Stripe's account links expire after a few minutes.
ACCOUNT_LINK_TTL = timedelta(minutes=5)


class LinkExpired(GatewayError):
    """An emulated onboarding link used after it expired (or after it was used)."""

    def __init__(self, message: str, *, refresh_url: str) -> None:
        super().__init__(message, code="account_link_expired", http_status=410)
        self.refresh_url = refresh_url


class Store(Protocol):
    def get(self, key: str) -> dict[str, Any] | None: ...
    def put(self, key: str, value: dict[str, Any]) -> None: ...
    def append(self, name: str, value: dict[str, Any]) -> None: ...
    def members(self, name: str) -> list[dict[str, Any]]: ...
    def lock(self, name: str) -> AbstractContextManager[object]: ...


class MemoryStore:
    """For unit tests in one process."""

    def __init__(self) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        self._lists: dict[str, list[dict[str, Any]]] = {}
        self._lock = threading.RLock()

    def get(self, key: str) -> dict[str, Any] | None:
        value = self._data.get(key)
        return json.loads(json.dumps(value)) if value is not None else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._data[key] = json.loads(json.dumps(value))

    def append(self, name: str, value: dict[str, Any]) -> None:
        self._lists.setdefault(name, []).append(value)

    def members(self, name: str) -> list[dict[str, Any]]:
        return list(self._lists.get(name, []))

    def lock(self, name: str) -> AbstractContextManager[object]:
        return self._lock


class RedisStore:
    """Shared by every process of one deployment (standalone: the embedded Redis)."""

    PREFIX = "taplive:offline_gateway:"

    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def get(self, key: str) -> dict[str, Any] | None:
        raw = self._redis.get(self.PREFIX + key)
        return json.loads(raw) if raw else None

    def put(self, key: str, value: dict[str, Any]) -> None:
        self._redis.set(self.PREFIX + key, json.dumps(value))

    def append(self, name: str, value: dict[str, Any]) -> None:
        self._redis.rpush(self.PREFIX + name, json.dumps(value))

    def members(self, name: str) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self._redis.lrange(self.PREFIX + name, 0, -1)]

    @contextmanager
    def lock(self, name: str) -> Iterator[object]:
        with self._redis.lock(self.PREFIX + "lock:" + name, timeout=30, blocking_timeout=30):
            yield None


def _new_id(prefix: str) -> str:
    return prefix + uuid.uuid4().hex[:24]


def _intent(data: dict[str, Any]) -> Intent:
    return Intent(id=data["id"], status=data["status"], amount=data["amount"],
                  amount_received=data["amount_received"], currency=data["currency"],
                  order_id=data.get("order_id"),
                  created=datetime.fromisoformat(data["created"]),
                  decline_code=data.get("decline_code"),
                  client_secret=data.get("client_secret"),
                  next_action=data.get("next_action"))


class OfflineGateway:
    name = "offline"

    def __init__(self, store: Store, *, hold_validity: timedelta = timedelta(days=7),
                 clock: Callable[[], datetime] | None = None) -> None:
        self.store = store
        self.hold_validity = hold_validity
        self._now = clock or (lambda: datetime.now(UTC))

    # ------------------------------------------------------------------ plumbing

    def _idempotent(self, key: str, run: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """Stripe's rule: the first answer to a key is THE answer, errors included."""
        with self.store.lock("idem:" + key):
            seen = self.store.get("idem:" + key)
            if seen is None:
                try:
                    seen = {"ok": run()}
                except CardDeclined as exc:
                    seen = {"declined": {"message": exc.message, "intent": exc.intent_id,
                                         "decline_code": exc.decline_code}}
                self.store.put("idem:" + key, seen)
        if "declined" in seen:
            d = seen["declined"]
            raise CardDeclined(d["message"], decline_code=d["decline_code"],
                               intent_id=d["intent"])
        result: dict[str, Any] = seen["ok"]
        return result

    def _log(self, op: str, **details: Any) -> None:
        self.store.append("operations", {"op": op, "at": self._now().isoformat(), **details})

    def operations(self) -> list[dict[str, Any]]:
        """Every action performed (replays excluded), oldest first."""
        return self.store.members("operations")

    def _load_intent(self, intent_id: str) -> dict[str, Any]:
        data = self.store.get("pi:" + intent_id)
        if data is None:
            raise ObjectMissing(f"No such payment_intent: {intent_id}", code="resource_missing",
                                http_status=404)
        if (data["status"] == IntentStatus.REQUIRES_CAPTURE
                and self._now() >= datetime.fromisoformat(data["expires_at"])):
            data["status"] = IntentStatus.CANCELED  # the authorisation lapsed
            data["cancellation_reason"] = "automatic"
            self.store.put("pi:" + intent_id, data)
        return data

    # ------------------------------------------------------------------ customers

    def ensure_customer(self, *, user_id: str, email: str, idempotency_key: str) -> str:
        def run() -> dict[str, Any]:
            cid = _new_id("cus_")
            self.store.put("cus:" + cid, {"id": cid, "user_id": user_id, "methods": []})
            return {"id": cid}

        return str(self._idempotent(idempotency_key, run)["id"])

    def attach_payment_method(self, *, customer_id: str, payment_method_id: str,
                              idempotency_key: str) -> CardDetails:
        card = _TEST_CARDS.get(payment_method_id)
        if card is None:
            raise ObjectMissing(f"No such PaymentMethod: '{payment_method_id}'",
                                code="resource_missing", http_status=400)

        def run() -> dict[str, Any]:
            customer = self.store.get("cus:" + customer_id)
            if customer is None:
                raise ObjectMissing(f"No such customer: {customer_id}", code="resource_missing")
            customer["methods"] = sorted({*customer["methods"], payment_method_id})
            self.store.put("cus:" + customer_id, customer)
            return {"id": payment_method_id}

        self._idempotent(idempotency_key, run)
        return CardDetails(id=payment_method_id, brand=card[0], last4=card[1], exp_month=12,
                           exp_year=self._now().year + 3)

    def retrieve_account(self, account_id: str) -> ConnectedAccount:
        if not _ACCOUNT.match(account_id):
            raise ObjectMissing(f"No such account: {account_id}", code="resource_missing")
        made = self.store.get("acct:" + account_id)
        if made is not None:  # one of ours: as far as its onboarding went
            return ConnectedAccount(id=account_id, payouts_enabled=made["payouts_enabled"],
                                    details_submitted=made["details_submitted"])
        return ConnectedAccount(id=account_id,
                                payouts_enabled=not account_id.startswith("acct_disabled"))

    def create_account(self, *, user_id: str, email: str, country: str | None,
                       idempotency_key: str) -> ConnectedAccount:
        def run() -> dict[str, Any]:
            data: dict[str, Any] = {
                    "id": _new_id("acct_offline"), "user_id": user_id, "email": email,
                    "country": country, "payouts_enabled": False, "details_submitted": False}
            self.store.put("acct:" + data["id"], data)
            self._log("account", account=data["id"], user=user_id, key=idempotency_key)
            return data

        return self.retrieve_account(str(self._idempotent(idempotency_key, run)["id"]))

    def create_account_link(self, account_id: str, *, refresh_url: str,
                            return_url: str) -> AccountLink:
        if self.store.get("acct:" + account_id) is None:
            raise InvalidRequest(f"{account_id} was not created by this platform.",
                                 code="account_invalid")
        token = _new_id("link_")
        expires = self._now() + ACCOUNT_LINK_TTL
        self.store.put("link:" + token, {"account": account_id, "refresh_url": refresh_url,
                                         "return_url": return_url, "used": False,
                                         "expires_at": expires.isoformat()})
        origin = urllib.parse.urlsplit(return_url)
        url = urllib.parse.urlunsplit((origin.scheme, origin.netloc,
                                       OFFLINE_ONBOARDING_PATH + token, "", ""))
        return AccountLink(url=url, expires_at=expires)

    def onboarding_link(self, token: str) -> dict[str, Any]:
        """The link's account and URLs; LinkExpired (with its refresh URL) when stale."""
        link = self.store.get("link:" + token)
        if link is None:
            raise ObjectMissing("No such account link.", code="resource_missing",
                                http_status=404)
        if link["used"] or self._now() >= datetime.fromisoformat(link["expires_at"]):
            raise LinkExpired("This onboarding link has expired.",
                              refresh_url=link["refresh_url"])
        return link

    def complete_onboarding(self, token: str) -> dict[str, Any]:
        """The provider submitted the emulated form: the account can receive payouts now.
        The link is spent (Stripe's links are single-use). Returns the link."""
        with self.store.lock("link:" + token):
            link = self.onboarding_link(token)
            link["used"] = True
            self.store.put("link:" + token, link)
        account = self.store.get("acct:" + link["account"])
        assert account is not None
        account.update(payouts_enabled=True, details_submitted=True)
        self.store.put("acct:" + link["account"], account)
        self._log("onboarded", account=link["account"])
        return link

    # -------------------------------------------------------------------- payouts

    def record_payout(self, account_id: str, status: str, *,
                      payout_id: str | None = None) -> Payout:
        """Make (or move) a payout of a connected account to its bank: there is no bank here."""
        pid = payout_id or _new_id("po_")
        data = self.store.get("po:" + pid) or {"id": pid, "account": account_id,
                                                "created": self._now().isoformat()}
        data["status"] = status
        self.store.put("po:" + pid, data)
        return self.retrieve_payout(pid, account_id=account_id)

    def retrieve_payout(self, payout_id: str, *, account_id: str) -> Payout:
        data = self.store.get("po:" + payout_id)
        if data is None or data["account"] != account_id:
            raise ObjectMissing(f"No such payout: {payout_id}", code="resource_missing")
        return Payout(id=data["id"], status=data["status"], account=data["account"],
                      created=datetime.fromisoformat(data["created"]))

    # -------------------------------------------------------------------- intents

    def create_hold(self, *, amount: int, currency: str, customer_id: str | None,
                    payment_method_id: str, order_id: str, off_session: bool,
                    idempotency_key: str) -> Intent:
        card = _TEST_CARDS.get(payment_method_id)
        if card is None:
            raise ObjectMissing(f"No such PaymentMethod: '{payment_method_id}'",
                                code="resource_missing", http_status=400)

        def run() -> dict[str, Any]:
            now = self._now()
            data: dict[str, Any] = {
                "id": _new_id("pi_"), "amount": amount, "amount_received": 0,
                "currency": currency.upper(), "order_id": order_id, "customer": customer_id,
                "payment_method": payment_method_id, "created": now.isoformat(),
                "expires_at": (now + self.hold_validity).isoformat(), "decline_code": None,
                "status": IntentStatus.REQUIRES_CAPTURE, "refunded": 0,
                "next_action": None,
            }
            data["client_secret"] = f"{data['id']}_secret_{uuid.uuid4().hex[:16]}"
            if card[2] == "decline":
                data.update(status=IntentStatus.REQUIRES_PAYMENT_METHOD,
                            decline_code="generic_decline")
            elif card[2] == "action":
                data.update(status=IntentStatus.REQUIRES_ACTION, next_action="use_stripe_sdk")
            self.store.put("pi:" + data["id"], data)
            self.store.append("intents", {"id": data["id"], "created": data["created"]})
            self._log("hold", intent=data["id"], order=order_id, amount=amount,
                      status=data["status"], key=idempotency_key)
            if card[2] == "decline":
                raise CardDeclined("Your card was declined.", decline_code="generic_decline",
                                   intent_id=data["id"])
            return data

        return _intent(self._idempotent(idempotency_key, run))

    def retrieve_intent(self, intent_id: str) -> Intent:
        return _intent(self._load_intent(intent_id))

    def authenticate(self, intent_id: str, client_secret: str, *, success: bool = True
                     ) -> Intent:
        """The cardholder's side of 3-D Secure (what Stripe.js and the bank do; localstripe's
        ``POST /v1/payment_intents/{id}/_authenticate``): passed, the funds are held
        (``requires_capture``); failed, the intent wants another payment method."""
        with self.store.lock("pi:" + intent_id):
            data = self._load_intent(intent_id)
            if client_secret != data.get("client_secret"):
                raise InvalidRequest("The client secret does not match.", code="unauthorized",
                                     http_status=401)
            if data["status"] != IntentStatus.REQUIRES_ACTION:
                raise InvalidRequest(f"The PaymentIntent is {data['status']}.",
                                     code="payment_intent_unexpected_state")
            data["next_action"] = None
            if success:
                data.update(status=IntentStatus.REQUIRES_CAPTURE,
                            expires_at=(self._now() + self.hold_validity).isoformat())
            else:
                data.update(status=IntentStatus.REQUIRES_PAYMENT_METHOD,
                            decline_code="payment_intent_authentication_failure")
            self.store.put("pi:" + intent_id, data)
            self._log("authenticate", intent=intent_id, order=data["order_id"],
                      success=success)
            return _intent(data)

    def capture(self, intent_id: str, *, amount: int, idempotency_key: str) -> Intent:
        def run() -> dict[str, Any]:
            with self.store.lock("pi:" + intent_id):
                data = self._load_intent(intent_id)
                if data["status"] != IntentStatus.REQUIRES_CAPTURE:
                    raise InvalidRequest(
                        f"This PaymentIntent could not be captured because it has a status "
                        f"of {data['status']}.", code="payment_intent_unexpected_state")
                if not 0 < amount <= data["amount"]:
                    raise InvalidRequest("amount_to_capture is out of range",
                                         code="parameter_invalid_integer")
                data.update(status=IntentStatus.SUCCEEDED, amount_received=amount)
                self.store.put("pi:" + intent_id, data)
                self._log("capture", intent=intent_id, order=data["order_id"], amount=amount,
                          key=idempotency_key)
                return data

        return _intent(self._idempotent(idempotency_key, run))

    def cancel(self, intent_id: str, *, idempotency_key: str) -> Intent:
        def run() -> dict[str, Any]:
            with self.store.lock("pi:" + intent_id):
                data = self._load_intent(intent_id)
                if data["status"] in (IntentStatus.SUCCEEDED, IntentStatus.CANCELED):
                    raise InvalidRequest(
                        f"You cannot cancel this PaymentIntent because it has a status of "
                        f"{data['status']}.", code="payment_intent_unexpected_state")
                data.update(status=IntentStatus.CANCELED, next_action=None)
                self.store.put("pi:" + intent_id, data)
                self._log("cancel", intent=intent_id, order=data["order_id"],
                          key=idempotency_key)
                return data

        return _intent(self._idempotent(idempotency_key, run))

    # -------------------------------------------------------------------- refunds

    def refund(self, intent_id: str, *, amount: int, order_id: str,
               idempotency_key: str) -> Refund:
        def run() -> dict[str, Any]:
            with self.store.lock("pi:" + intent_id):
                data = self._load_intent(intent_id)
                if data["status"] != IntentStatus.SUCCEEDED:
                    raise InvalidRequest("Cannot refund an uncaptured payment.",
                                         code="charge_not_captured")
                if not 0 < amount <= data["amount_received"] - data["refunded"]:
                    raise InvalidRequest("Refund amount is greater than unrefunded amount.",
                                         code="amount_too_large")
                data["refunded"] += amount
                self.store.put("pi:" + intent_id, data)
                refund = {"id": _new_id("re_"), "intent_id": intent_id, "amount": amount,
                          "status": "succeeded"}
                self.store.append("refunds:" + intent_id, refund)
                self._log("refund", intent=intent_id, order=order_id, amount=amount,
                          key=idempotency_key)
                return refund

        return Refund(**self._idempotent(idempotency_key, run))

    def list_refunds(self, intent_id: str) -> list[Refund]:
        return [Refund(**r) for r in self.store.members("refunds:" + intent_id)]

    # ------------------------------------------------------------------ transfers

    def transfer(self, *, amount: int, currency: str, destination: str, transfer_group: str,
                 idempotency_key: str) -> Transfer:
        account = self.retrieve_account(destination)
        if not account.payouts_enabled:
            raise InvalidRequest("The destination account cannot receive transfers.",
                                 code="account_invalid")

        def run() -> dict[str, Any]:
            data = asdict(Transfer(id=_new_id("tr_"), amount=amount, currency=currency.upper(),
                                   destination=destination, transfer_group=transfer_group))
            self.store.put("tr:" + data["id"], data)
            self._log("transfer", transfer=data["id"], order=transfer_group, amount=amount,
                      key=idempotency_key)
            return data

        return Transfer(**self._idempotent(idempotency_key, run))

    def retrieve_transfer(self, transfer_id: str) -> Transfer:
        data = self.store.get("tr:" + transfer_id)
        if data is None:
            raise ObjectMissing(f"No such transfer: {transfer_id}", code="resource_missing")
        return Transfer(**data)

    def list_intents_since(self, since: datetime) -> list[Intent]:
        found = []
        for ref in self.store.members("intents"):
            if datetime.fromisoformat(ref["created"]) >= since:
                found.append(self.retrieve_intent(ref["id"]))
        return found


__all__ = ["GatewayError", "LinkExpired", "MemoryStore", "OfflineGateway", "RedisStore"]
