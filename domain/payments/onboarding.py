"""Payout onboarding: a provider gets a connected account (Stripe Connect Express) through
the processor's own onboarding form, instead of pasting an ``acct_...`` id.

    start    the first call creates the connected account (payouts disabled, keyed per user so
             a retried request finds the same account) and stores it; every call answers a
             fresh single-use onboarding link (the processor's links expire within minutes).
    refresh  the processor sends the browser to our ``refresh_url`` when a link has expired or
             was used: the API makes a new link for the same account (``start`` again).
    sync     re-read the account and store ``payouts_enabled`` / ``details_submitted``: from
             the ``account.updated`` webhook, from the browser's return, from a GET on demand.

Settlement needs nothing new: ``settlement.split`` already waits for ``payouts_enabled``, so
the first beat after the account is enabled settles what was waiting.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from db.models import PayoutAccount, User
from db.queries import payments as queries
from domain.payments import keys
from domain.payments.errors import for_request
from domain.payments.gateway import AccountLink, GatewayError, PaymentGateway


def start(session: Session, gateway: PaymentGateway, user: User, *, refresh_url: str,
          return_url: str, country: str | None = None) -> tuple[PayoutAccount, AccountLink]:
    """The provider's payout account (created on first use) and a new onboarding link."""
    # Two concurrent first calls serialise on the user's row: the second finds the account.
    session.refresh(user, with_for_update=True)
    row = queries.find_payout_account(session, user.id, gateway.name)
    try:
        if row is None:
            account = gateway.create_account(user_id=str(user.id), email=user.email,
                                             country=country,
                                             idempotency_key=keys.connect_account(user.id))
            row = PayoutAccount(user_id=user.id, gateway=gateway.name, account_ref=account.id,
                                payouts_enabled=account.payouts_enabled,
                                details_submitted=account.details_submitted)
            session.add(row)
            session.flush()
        link = gateway.create_account_link(row.account_ref, refresh_url=refresh_url,
                                           return_url=return_url)
    except GatewayError as exc:
        raise for_request(exc, field="accountId") from exc
    return row, link


def sync(session: Session, gateway: PaymentGateway, account_ref: str) -> PayoutAccount | None:
    """Re-read a connected account and store what it allows. None: not one of ours. Safe to
    run twice and in any order with other syncs (it stores the processor's current answer)."""
    row = queries.find_payout_account_by_ref(session, gateway.name, account_ref,
                                             for_update=True)
    if row is None:
        return None
    account = gateway.retrieve_account(account_ref)
    row.payouts_enabled = account.payouts_enabled
    row.details_submitted = account.details_submitted
    session.flush()
    return row
