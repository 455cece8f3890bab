"""A recorded-HTTP fake of the Stripe API at the SDK's transport (a ``stripe.HTTPClient``), for
what localstripe lacks: Connect (accounts, account links, transfers, connected accounts'
payouts) and idempotent replays.

The response bodies are Stripe's documented object shapes (API reference examples, trimmed to
the fields we read). Like Stripe, a repeated ``Idempotency-Key`` replays the first response
(with ``Idempotent-Replayed: true``) instead of creating anything; ``fail_next(n)`` answers
the next ``n`` requests with 429 ``rate_limit``. Every request is recorded for assertions.
"""

from __future__ import annotations

import json
import urllib.parse
from dataclasses import dataclass
from typing import Any

import stripe

KNOWN_ACCOUNT = "acct_1Recorded0000001"


@dataclass
class Recorded:
    method: str
    path: str
    params: dict[str, str]
    idempotency_key: str | None
    stripe_account: str | None = None


def _error(status: int, code: str, message: str, kind: str = "invalid_request_error") -> tuple[
        str, int, dict[str, str]]:
    return json.dumps({"error": {"type": kind, "code": code, "message": message}}), status, {}


class RecordedStripe(stripe.HTTPClient):
    name = "recorded"

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[Recorded] = []
        self.transfers: dict[str, dict[str, Any]] = {}
        self.accounts: dict[str, dict[str, Any]] = {}  # made through POST /v1/accounts
        self.payouts: dict[str, dict[str, Any]] = {}  # of connected accounts
        self._replies: dict[str, tuple[str, int, dict[str, str]]] = {}
        self._fail = 0

    def fail_next(self, count: int) -> None:
        self._fail = count

    def request(self, method: str, url: str, headers: Any, post_data: Any = None,
                *, _usage: Any = None) -> tuple[str, int, dict[str, str]]:
        parsed = urllib.parse.urlsplit(url)
        raw = post_data or parsed.query or ""
        params = dict(urllib.parse.parse_qsl(raw if isinstance(raw, str) else raw.decode()))
        key = (headers or {}).get("Idempotency-Key")
        self.requests.append(Recorded(method.upper(), parsed.path, params, key,
                                      (headers or {}).get("Stripe-Account")))
        if self._fail:
            self._fail -= 1
            return _error(429, "rate_limit", "Request rate limit exceeded.")
        if key and key in self._replies:
            body, status, reply_headers = self._replies[key]
            return body, status, {**reply_headers, "Idempotent-Replayed": "true"}
        reply = self._route(method.upper(), parsed.path, params)
        if key and method.upper() == "POST":
            self._replies[key] = reply
        return reply

    def request_stream(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def close(self) -> None:
        pass

    def enable(self, account_id: str) -> None:
        """The provider finished Stripe's onboarding form."""
        self.accounts[account_id].update(payouts_enabled=True, charges_enabled=True,
                                         details_submitted=True)

    def add_payout(self, account_id: str, status: str, created: int,
                   payout_id: str | None = None) -> str:
        pid = payout_id or f"po_1Recorded{len(self.payouts):08d}"
        self.payouts[pid] = {"id": pid, "object": "payout", "amount": 0, "currency": "usd",
                             "status": status, "created": created, "arrival_date": created,
                             "type": "bank_account", "livemode": False,
                             "_account": account_id}
        return pid

    def _route(self, method: str, path: str,
               params: dict[str, str]) -> tuple[str, int, dict[str, str]]:
        if method == "POST" and path == "/v1/accounts":
            account_id = f"acct_1RecordedNew{len(self.accounts):04d}"
            self.accounts[account_id] = {
                "id": account_id, "object": "account", "type": params.get("type"),
                "email": params.get("email"), "country": params.get("country", "US"),
                "charges_enabled": False, "payouts_enabled": False, "details_submitted": False,
                "capabilities": {"transfers": "inactive"},
                "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
                "requirements": {"currently_due": ["external_account", "tos_acceptance.date"]},
            }
            return json.dumps(self.accounts[account_id]), 200, {}
        if method == "GET" and path.startswith("/v1/accounts/") and \
                path.rsplit("/", 1)[1] in self.accounts:
            return json.dumps(self.accounts[path.rsplit("/", 1)[1]]), 200, {}
        if method == "POST" and path == "/v1/account_links":
            if params.get("account") not in self.accounts:
                return _error(400, "resource_missing",
                              f"No such account: '{params.get('account')}'")
            link = {"object": "account_link", "created": 1_764_000_000,
                    "expires_at": 1_764_000_300,
                    "url": f"https://connect.stripe.com/setup/e/{params['account']}/"
                           f"Rec{len(self.requests):06d}"}
            return json.dumps(link), 200, {}
        if method == "GET" and path.startswith("/v1/payouts/"):
            payout = self.payouts.get(path.rsplit("/", 1)[1])
            account = self.requests[-1].stripe_account
            if payout is None or payout["_account"] != account:
                return _error(404, "resource_missing", "No such payout")
            return json.dumps({k: v for k, v in payout.items() if k != "_account"}), 200, {}
        if method == "GET" and path.startswith("/v1/accounts/"):
            account = path.rsplit("/", 1)[1]
            if account != KNOWN_ACCOUNT:
                return _error(404, "resource_missing", f"No such account: '{account}'")
            return json.dumps({"id": account, "object": "account", "type": "express",
                               "charges_enabled": True, "payouts_enabled": True,
                               "details_submitted": True, "country": "US",
                               "default_currency": "usd"}), 200, {}
        if method == "POST" and path == "/v1/transfers":
            if params.get("destination") != KNOWN_ACCOUNT:
                return _error(400, "resource_missing",
                              f"No such destination: '{params.get('destination')}'")
            transfer = {
                "id": f"tr_1Recorded{len(self.transfers):08d}", "object": "transfer",
                "amount": int(params["amount"]), "amount_reversed": 0,
                "currency": params["currency"], "destination": params["destination"],
                "transfer_group": params.get("transfer_group"), "livemode": False,
                "metadata": {k[9:-1]: v for k, v in params.items() if k.startswith("metadata[")},
                "created": 1_764_000_000, "reversed": False, "reversals": {
                    "object": "list", "data": [], "has_more": False, "total_count": 0,
                    "url": "/v1/transfers/x/reversals"},
            }
            self.transfers[transfer["id"]] = transfer
            return json.dumps(transfer), 200, {}
        if method == "GET" and path.startswith("/v1/transfers/"):
            transfer_id = path.rsplit("/", 1)[1]
            if transfer_id not in self.transfers:
                return _error(404, "resource_missing", f"No such transfer: '{transfer_id}'")
            return json.dumps(self.transfers[transfer_id]), 200, {}
        return _error(404, "resource_missing", f"Unrecognized request URL ({method} {path}).")
