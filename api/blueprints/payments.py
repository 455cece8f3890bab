"""Payments: the caller's payments, saved payment methods, the provider's payout account, and
the admin's view of the ledger."""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user
from api.blueprints.payment_schemas import (
    LedgerBalancesSchema,
    PaymentListArgsSchema,
    PaymentListSchema,
    PaymentMethodCreateSchema,
    PaymentMethodEnvelopeSchema,
    PaymentMethodListSchema,
    PaymentPageSchema,
    PaymentView,
    PayoutAccountArgsSchema,
    PayoutAccountCreateSchema,
    PayoutAccountEnvelopeSchema,
)
from api.fields import page_payload
from api.services import payments, services
from api.smorest import Blueprint
from core.errors import NotFound
from db.models import PaymentTransaction
from db.pagination import paginate
from db.queries import orders as order_queries
from db.queries import payments as queries
from domain.money import format_minor
from domain.orders import actor_for
from domain.payments import onboarding, processor_accounts
from domain.payments.errors import for_request
from domain.payments.gateway import GatewayError
from domain.permissions import Permission

blp = Blueprint("payments", __name__, description="Payments, payment methods, payouts, ledger")


def _views(txns: list[PaymentTransaction]) -> list[PaymentView]:
    escrows = queries.find_escrows_by_transaction(services().db.session(),
                                                  [t.id for t in txns])
    return [PaymentView(t, escrows.get(t.id)) for t in txns]


@blp.route("/payments")
class Payments(MethodView):
    @authenticated()
    @blp.arguments(PaymentListArgsSchema, location="query")
    @blp.response(200, PaymentPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List my payments (as payer or payee), newest first."""
        session = services().db.session()
        page = paginate(session, queries.select_transactions_for_user(current_user().id),
                        created_col=PaymentTransaction.created_at, id_col=PaymentTransaction.id,
                        codec=services().cursors, limit=args["limit"], cursor=args["cursor"])
        return page_payload(page, _views(page.items))


@blp.route("/orders/<uuid:order_id>/payments")
class OrderPayments(MethodView):
    @authenticated()
    @blp.response(200, PaymentListSchema)
    def get(self, order_id: uuid.UUID) -> dict[str, Any]:
        """An order's payments (its creator, its provider, admins)."""
        session = services().db.session()
        order = order_queries.find_by_id(session, order_id)
        if order is None or actor_for(current_user(), order) is None:
            raise NotFound("Order not found.")
        return {"items": _views(queries.find_transactions_for_order(session, order_id))}


@blp.route("/payments/methods")
class PaymentMethods(MethodView):
    @authenticated(Permission.CREATE_ORDERS)
    @blp.response(200, PaymentMethodListSchema)
    def get(self) -> dict[str, Any]:
        """My saved payment methods (the default first)."""
        methods = queries.find_methods(services().db.session(), current_user().id,
                                       payments().gateway.name)
        return {"items": sorted(methods, key=lambda m: not m.is_default)}

    @authenticated(Permission.CREATE_ORDERS)
    @blp.arguments(PaymentMethodCreateSchema)
    @blp.response(201, PaymentMethodEnvelopeSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Save a payment method made by the client with the processor (it becomes the
        default). Card data never reaches us, only its id."""
        method = processor_accounts.save_method(services().db.session(), payments().gateway,
                                      current_user(), body["paymentMethodId"], datetime.now(UTC))
        return {"paymentMethod": method}


@blp.route("/providers/me/payout-account")
class MyPayoutAccount(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.arguments(PayoutAccountArgsSchema, location="query")
    @blp.response(200, PayoutAccountEnvelopeSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """My payout account (404 until one is registered). ``refresh=true`` re-reads it at
        the processor first (e.g. after onboarding, without waiting for its webhook)."""
        session = services().db.session()
        account = queries.find_payout_account(session, current_user().id,
                                              payments().gateway.name)
        if account is None:
            raise NotFound("No payout account yet.")
        if args["refresh"]:
            try:
                account = onboarding.sync(session, payments().gateway, account.account_ref)
            except GatewayError as exc:
                raise for_request(exc, field="accountId") from exc
            # The unit of work commits writes only; what this GET re-read is kept.
            session.commit()
        return {"payoutAccount": account}

    @authenticated(Permission.APPLY_ORDERS)
    @blp.arguments(PayoutAccountCreateSchema)
    @blp.response(200, PayoutAccountEnvelopeSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Register (or replace) my connected payout account; settlements wait for it."""
        account = processor_accounts.set_payout_account(services().db.session(), payments().gateway,
                                              current_user(), body["accountId"])
        return {"payoutAccount": account}


@blp.route("/admin/ledger/balances")
class LedgerBalances(MethodView):
    # Admin-only: RESOLVE_DISPUTES is the admins' money permission (nobody else holds it).
    @authenticated(Permission.RESOLVE_DISPUTES)
    @blp.response(200, LedgerBalancesSchema)
    def get(self) -> dict[str, Any]:
        """Ledger balances per account and currency; each currency must sum to zero."""
        session = services().db.session()
        totals: dict[str, int] = defaultdict(int)
        balances = []
        for account, currency, balance in queries.ledger_balances(session):
            totals[currency] += balance
            balances.append({"account": account, "currency": currency,
                             "balance": format_minor(balance, currency),
                             "balanceMinor": balance})
        return {
            "balances": balances,
            "totals": [{"currency": c, "sumMinor": s, "balanced": s == 0}
                       for c, s in sorted(totals.items())],
            "lastReconciliation": queries.latest_reconciliation(session),
        }
