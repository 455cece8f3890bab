"""The Stripe adapter, on the official SDK (``stripe.StripeClient``).

``api_base`` points the client elsewhere (tests: localstripe); ``http_client`` swaps the SDK's
transport (tests: a recorded-HTTP fake for what localstripe lacks). Every mutating call carries
our idempotency key; the SDK's own network retries reuse it, so a retried POST never doubles.

Emulator note: localstripe omits ``amount_received`` on PaymentIntents and books the released
remainder of a partial capture as a Refund without metadata. Real Stripe has the field and no
such refund. ``_amount_received`` and ``list_refunds`` read the emulator's shape only when the
field is absent, so production code paths see Stripe's documented objects.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import stripe

from domain.payments.gateway import (
    AccountLink,
    CardDeclined,
    CardDetails,
    ConnectedAccount,
    GatewayError,
    Intent,
    InvalidRequest,
    InvalidSignature,
    ObjectMissing,
    Payout,
    RateLimited,
    Refund,
    Transfer,
    Unavailable,
    WebhookEvent,
)

T = TypeVar("T")
METADATA_ORDER = "taplive_order"


def _translate(exc: stripe.StripeError) -> GatewayError:
    message = exc.user_message or str(exc) or type(exc).__name__
    status = exc.http_status
    if isinstance(exc, stripe.CardError):
        error = exc.error
        intent = getattr(error, "payment_intent", None) if error is not None else None
        intent_id = intent.get("id") if isinstance(intent, dict) else getattr(intent, "id", None)
        return CardDeclined(message, code=exc.code or "card_declined",
                            decline_code=getattr(error, "decline_code", None) if error else None,
                            intent_id=intent_id)
    if isinstance(exc, stripe.RateLimitError) or status == 429:
        retry_after = None
        headers = exc.headers or {}
        if headers.get("Retry-After"):
            try:
                retry_after = float(headers["Retry-After"])
            except ValueError:
                retry_after = None
        return RateLimited(message, retry_after=retry_after)
    if isinstance(exc, stripe.APIConnectionError) or (status is not None and status >= 500):
        return Unavailable(message, code=exc.code, http_status=status)
    if status == 404 or exc.code == "resource_missing":
        return ObjectMissing(message, code=exc.code, http_status=status)
    if isinstance(exc, stripe.InvalidRequestError):
        return InvalidRequest(message, code=exc.code, http_status=status)
    return GatewayError(message, code=exc.code, http_status=status)


def _call(fn: Callable[[], T]) -> T:
    try:
        return fn()
    except stripe.StripeError as exc:
        raise _translate(exc) from exc


def _get(obj: Any, name: str, default: Any = None) -> Any:
    if isinstance(obj, dict):
        return obj.get(name, default)
    data = obj.to_dict() if hasattr(obj, "to_dict") else {}
    return data.get(name, default)


def _amount_received(pi: dict[str, Any]) -> int:
    if pi.get("amount_received") is not None:
        return int(pi["amount_received"])
    charge = pi.get("latest_charge")  # emulator shape: the charge is embedded
    if not isinstance(charge, dict) or not charge.get("captured"):
        return 0
    released = sum(r["amount"] for r in (charge.get("refunds") or {}).get("data", [])
                   if not r.get("metadata"))
    return int(charge["amount"]) - released


def _intent(obj: Any) -> Intent:
    pi: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    error = pi.get("last_payment_error") or {}
    created = pi.get("created")
    return Intent(
        id=pi["id"], status=pi["status"], amount=int(pi["amount"]),
        amount_received=_amount_received(pi), currency=str(pi["currency"]).upper(),
        order_id=(pi.get("metadata") or {}).get(METADATA_ORDER),
        created=datetime.fromtimestamp(created, UTC) if created else None,
        decline_code=error.get("decline_code") or error.get("code"),
        client_secret=pi.get("client_secret"),
        next_action=(pi.get("next_action") or {}).get("type"),
    )


def _account(obj: Any) -> ConnectedAccount:
    return ConnectedAccount(id=str(_get(obj, "id")),
                            payouts_enabled=bool(_get(obj, "payouts_enabled", False)),
                            details_submitted=bool(_get(obj, "details_submitted", False)))


def _transfer(obj: Any) -> Transfer:
    t: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return Transfer(id=t["id"], amount=int(t["amount"]), currency=str(t["currency"]).upper(),
                    destination=t["destination"], transfer_group=t.get("transfer_group"),
                    reversed_amount=int(t.get("amount_reversed") or 0))


class StripeGateway:
    name = "stripe"

    def __init__(self, secret_key: str, *, api_base: str | None = None,
                 max_network_retries: int = 2,
                 http_client: stripe.HTTPClient | None = None) -> None:
        options: dict[str, Any] = {"max_network_retries": max_network_retries}
        if api_base:
            options["base_addresses"] = {"api": api_base}
        if http_client is not None:
            options["http_client"] = http_client
        self.client = stripe.StripeClient(secret_key, **options)

    @property
    def _v1(self) -> Any:
        return self.client.v1

    def ensure_customer(self, *, user_id: str, email: str, idempotency_key: str) -> str:
        customer = _call(lambda: self._v1.customers.create(
            params={"email": email, "metadata": {"taplive_user": user_id}},
            options={"idempotency_key": idempotency_key}))
        return str(customer.id)

    def attach_payment_method(self, *, customer_id: str, payment_method_id: str,
                              idempotency_key: str) -> CardDetails:
        pm = _call(lambda: self._v1.payment_methods.attach(
            payment_method_id, params={"customer": customer_id},
            options={"idempotency_key": idempotency_key}))
        card = _get(pm, "card") or {}
        return CardDetails(id=pm.id, brand=card.get("brand"), last4=card.get("last4"),
                           exp_month=card.get("exp_month"), exp_year=card.get("exp_year"))

    def retrieve_account(self, account_id: str) -> ConnectedAccount:
        return _account(_call(lambda: self._v1.accounts.retrieve(account_id)))

    def create_account(self, *, user_id: str, email: str, country: str | None,
                       idempotency_key: str) -> ConnectedAccount:
        params: dict[str, Any] = {
            "type": "express", "email": email,
            "capabilities": {"transfers": {"requested": True}},
            "metadata": {"taplive_user": user_id},
        }
        if country:
            params["country"] = country
        return _account(_call(lambda: self._v1.accounts.create(
            params=params, options={"idempotency_key": idempotency_key})))

    def create_account_link(self, account_id: str, *, refresh_url: str,
                            return_url: str) -> AccountLink:
        # No idempotency key: a link is single-use, and a new one is what a retry wants.
        link = _call(lambda: self._v1.account_links.create(params={
            "account": account_id, "type": "account_onboarding",
            "refresh_url": refresh_url, "return_url": return_url}))
        return AccountLink(url=str(link.url),
                           expires_at=datetime.fromtimestamp(int(link.expires_at), UTC))

    def retrieve_payout(self, payout_id: str, *, account_id: str) -> Payout:
        p = _call(lambda: self._v1.payouts.retrieve(
            payout_id, options={"stripe_account": account_id})).to_dict()
        return Payout(id=p["id"], status=str(p["status"]), account=account_id,
                      created=datetime.fromtimestamp(int(p["created"]), UTC),
                      amount=int(p.get("amount") or 0),
                      currency=str(p.get("currency") or "").upper())

    def create_hold(self, *, amount: int, currency: str, customer_id: str | None,
                    payment_method_id: str, order_id: str, off_session: bool,
                    idempotency_key: str) -> Intent:
        params: dict[str, Any] = {
            "amount": amount, "currency": currency.lower(), "payment_method": payment_method_id,
            "capture_method": "manual", "confirm": True,
            "metadata": {METADATA_ORDER: order_id},
        }
        if customer_id:
            params["customer"] = customer_id
        if off_session:
            params["off_session"] = True
        return _intent(_call(lambda: self._v1.payment_intents.create(
            params=params, options={"idempotency_key": idempotency_key})))

    def retrieve_intent(self, intent_id: str) -> Intent:
        return _intent(_call(lambda: self._v1.payment_intents.retrieve(intent_id)))

    def capture(self, intent_id: str, *, amount: int, idempotency_key: str) -> Intent:
        return _intent(_call(lambda: self._v1.payment_intents.capture(
            intent_id, params={"amount_to_capture": amount},
            options={"idempotency_key": idempotency_key})))

    def cancel(self, intent_id: str, *, idempotency_key: str) -> Intent:
        return _intent(_call(lambda: self._v1.payment_intents.cancel(
            intent_id, options={"idempotency_key": idempotency_key})))

    def refund(self, intent_id: str, *, amount: int, order_id: str,
               idempotency_key: str) -> Refund:
        r = _call(lambda: self._v1.refunds.create(
            params={"payment_intent": intent_id, "amount": amount,
                    "metadata": {METADATA_ORDER: order_id}},
            options={"idempotency_key": idempotency_key}))
        return Refund(id=r.id, intent_id=intent_id, amount=int(r.amount), status=str(r.status))

    def list_refunds(self, intent_id: str) -> list[Refund]:
        pi = _call(lambda: self._v1.payment_intents.retrieve(intent_id)).to_dict()
        emulator = pi.get("amount_received") is None
        page = _call(lambda: self._v1.refunds.list(
            params={"payment_intent": intent_id, "limit": 100}))
        refunds = []
        for r in page.auto_paging_iter():
            data = r.to_dict()
            if emulator and not data.get("metadata"):
                continue  # localstripe's booking of a partial capture's released remainder
            refunds.append(Refund(id=data["id"], intent_id=intent_id,
                                  amount=int(data["amount"]), status=str(data["status"])))
        return refunds

    def transfer(self, *, amount: int, currency: str, destination: str, transfer_group: str,
                 idempotency_key: str) -> Transfer:
        return _transfer(_call(lambda: self._v1.transfers.create(
            params={"amount": amount, "currency": currency.lower(), "destination": destination,
                    "transfer_group": transfer_group,
                    "metadata": {METADATA_ORDER: transfer_group}},
            options={"idempotency_key": idempotency_key})))

    def retrieve_transfer(self, transfer_id: str) -> Transfer:
        return _transfer(_call(lambda: self._v1.transfers.retrieve(transfer_id)))

    def list_intents_since(self, since: datetime) -> list[Intent]:
        page = _call(lambda: self._v1.payment_intents.list(
            params={"created": {"gte": int(since.timestamp())}, "limit": 100}))
        return [_intent(pi) for pi in page.auto_paging_iter()]


def parse_event(payload: bytes, signature_header: str | None, secret: str,
                tolerance_s: int) -> WebhookEvent:
    """Verify a webhook's ``Stripe-Signature`` (HMAC-SHA256 of ``t.payload`` with the
    endpoint secret, timestamp within ``tolerance_s``) on the RAW body, then read it."""
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature_header or "",
                                              secret, tolerance_s)
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, UnicodeDecodeError, ValueError) as exc:
        raise InvalidSignature(str(exc) or "invalid signature", code="invalid_signature") from exc
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise InvalidSignature("not an event", code="invalid_payload")
    obj = (event.get("data") or {}).get("object") or {}
    return WebhookEvent(id=event["id"], type=str(event.get("type", "")),
                        object_id=obj.get("id") if isinstance(obj, dict) else None,
                        object_type=obj.get("object") if isinstance(obj, dict) else None,
                        data=obj if isinstance(obj, dict) else {},
                        account=event.get("account") if isinstance(event.get("account"), str)
                        else None)
