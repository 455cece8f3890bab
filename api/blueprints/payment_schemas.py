"""Payment schemas: decimal strings in the payment's currency on the wire, minor units inside."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from marshmallow import fields, validate

from api.fields import PageArgsSchema, PaginationSchema, money_out
from api.smorest import Schema
from db.models import PaymentEscrow, PaymentTransaction

PAYMENT_METHOD_ID = validate.Regexp(r"^pm_[A-Za-z0-9_]{1,200}$",
                                    error="Must be a payment method id (pm_...).")
ACCOUNT_ID = validate.Regexp(r"^acct_[A-Za-z0-9]{1,200}$",
                             error="Must be a connected account id (acct_...).")


@dataclass(frozen=True)
class PaymentView:
    """A payment as shown: the spec's transaction row plus its escrow's progress."""

    txn: PaymentTransaction
    escrow: PaymentEscrow | None


def _money(view: PaymentView, minor: int | None) -> str | None:
    return money_out(minor, view.txn.currency)


def _settlement(view: PaymentView) -> dict[str, Any] | None:
    if view.escrow is None or view.escrow.state not in ("settling", "settled"):
        return None
    t = view.txn
    return {"grossAmount": _money(view, t.gross_amount_minor),
            "platformFee": _money(view, t.platform_fee_minor),
            "processingFee": _money(view, t.processing_fee_minor),
            "netAmount": _money(view, t.net_amount_minor)}


class PaymentSchema(Schema):
    id = fields.Function(lambda v: str(v.txn.id))
    orderId = fields.Function(lambda v: str(v.txn.order_id) if v.txn.order_id else None)
    payerId = fields.Function(lambda v: str(v.txn.payer_id) if v.txn.payer_id else None)
    payeeId = fields.Function(lambda v: str(v.txn.payee_id) if v.txn.payee_id else None)
    status = fields.Function(lambda v: v.txn.status.value)
    state = fields.Function(lambda v: v.escrow.state if v.escrow else None)
    currency = fields.Function(lambda v: v.txn.currency)
    amount = fields.Function(lambda v: _money(v, v.escrow.amount_minor) if v.escrow else None)
    authorizedAmount = fields.Function(
        lambda v: _money(v, v.escrow.authorized_minor) if v.escrow else None)
    capturedAmount = fields.Function(
        lambda v: _money(v, v.escrow.captured_minor) if v.escrow else None)
    refundedAmount = fields.Function(
        lambda v: _money(v, v.escrow.refunded_minor) if v.escrow else None)
    settlement = fields.Function(_settlement)
    flag = fields.Function(lambda v: v.escrow.flag if v.escrow else None)
    # After settlement: where the provider's money is (pending, in_transit, paid, failed).
    payoutStatus = fields.Function(lambda v: v.escrow.payout_status if v.escrow else None)
    payoutStatusAt = fields.Function(
        lambda v: v.escrow.payout_status_at.isoformat()
        if v.escrow and v.escrow.payout_status_at else None)
    holdExpiresAt = fields.Function(
        lambda v: v.escrow.hold_expires_at.isoformat()
        if v.escrow and v.escrow.hold_expires_at else None)
    processedAt = fields.DateTime(attribute="txn.processed_at", allow_none=True)
    settledAt = fields.DateTime(attribute="txn.settled_at", allow_none=True)
    createdAt = fields.DateTime(attribute="txn.created_at")


class PaymentPageSchema(Schema):
    items = fields.List(fields.Nested(PaymentSchema))
    pagination = fields.Nested(PaginationSchema)


class PaymentListSchema(Schema):
    items = fields.List(fields.Nested(PaymentSchema))


class PaymentListArgsSchema(PageArgsSchema):
    pass


class PaymentMethodCreateSchema(Schema):
    paymentMethodId = fields.String(required=True, validate=PAYMENT_METHOD_ID)


class PaymentMethodSchema(Schema):
    id = fields.String(attribute="method_ref")
    brand = fields.String(allow_none=True)
    last4 = fields.String(allow_none=True)
    expMonth = fields.Integer(attribute="exp_month", allow_none=True)
    expYear = fields.Integer(attribute="exp_year", allow_none=True)
    isDefault = fields.Boolean(attribute="is_default")
    createdAt = fields.DateTime(attribute="created_at")


class PaymentMethodEnvelopeSchema(Schema):
    paymentMethod = fields.Nested(PaymentMethodSchema)


class PaymentMethodListSchema(Schema):
    items = fields.List(fields.Nested(PaymentMethodSchema))


class PayoutAccountCreateSchema(Schema):
    accountId = fields.String(required=True, validate=ACCOUNT_ID)


class PayoutAccountSchema(Schema):
    accountId = fields.String(attribute="account_ref")
    payoutsEnabled = fields.Boolean(attribute="payouts_enabled")
    detailsSubmitted = fields.Boolean(attribute="details_submitted")
    createdAt = fields.DateTime(attribute="created_at")
    updatedAt = fields.DateTime(attribute="updated_at")


class PayoutAccountEnvelopeSchema(Schema):
    payoutAccount = fields.Nested(PayoutAccountSchema)


class PayoutAccountArgsSchema(Schema):
    refresh = fields.Boolean(load_default=False,
                             metadata={"description": "Re-read the account at the processor."})


class OnboardingCreateSchema(Schema):
    country = fields.String(load_default=None, allow_none=True,
                            validate=validate.Regexp(r"^[A-Z]{2}$",
                                                     error="An ISO 3166-1 alpha-2 code."))


class OnboardingSchema(Schema):
    payoutAccount = fields.Nested(PayoutAccountSchema)
    onboardingUrl = fields.String()
    expiresAt = fields.DateTime()


class OnboardingLinkArgsSchema(Schema):
    token = fields.String(required=True, validate=validate.Length(1, 500))


class BalanceSchema(Schema):
    account = fields.String()
    currency = fields.String()
    balance = fields.String()
    balanceMinor = fields.Integer()


class CurrencyTotalSchema(Schema):
    currency = fields.String()
    sumMinor = fields.Integer()
    balanced = fields.Boolean()


class ReconciliationSchema(Schema):
    startedAt = fields.DateTime(attribute="started_at")
    checked = fields.Integer()
    drift = fields.List(fields.Dict())


class LedgerBalancesSchema(Schema):
    balances = fields.List(fields.Nested(BalanceSchema))
    totals = fields.List(fields.Nested(CurrencyTotalSchema))
    lastReconciliation = fields.Nested(ReconciliationSchema, allow_none=True)


class WebhookAckSchema(Schema):
    received = fields.Boolean()
    outcome = fields.String()
