"""Payout onboarding: the provider's connected account made through the processor's own form.

The provider calls ``POST /providers/me/payout-account/onboarding`` and opens the URL it
answers. The processor sends the browser back to two of our URLs, without our bearer token, so
they carry a signed token naming the provider instead (``itsdangerous``, the app's secret,
valid ``LINK_TOKEN_MAX_AGE``): ``refresh`` (the link expired or was used: a new link, by
redirect) and ``return`` (the form was left: the account is re-read). The offline processor's
form is served here too, so standalone mode walks the same path.
"""

from __future__ import annotations

import html
import uuid
from datetime import timedelta
from typing import Any

from flask import current_app, redirect, url_for
from flask.views import MethodView
from itsdangerous import BadData, URLSafeTimedSerializer
from werkzeug.wrappers import Response

from api.auth import authenticated, current_user
from api.blueprints.payment_schemas import (
    OnboardingCreateSchema,
    OnboardingLinkArgsSchema,
    OnboardingSchema,
    PayoutAccountEnvelopeSchema,
)
from api.services import payments, services
from api.smorest import Blueprint
from core.errors import NotFound, ValidationFailed
from db.models import PayoutAccount, User
from domain.payments import onboarding
from domain.payments.gateway import AccountLink, ObjectMissing
from domain.payments.offline import LinkExpired, OfflineGateway
from domain.permissions import Permission

blp = Blueprint("payouts", __name__, description="Payout onboarding (Stripe Connect)")

#: How long the refresh/return URLs handed to the processor stay usable.
LINK_TOKEN_MAX_AGE = timedelta(days=7)


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"],
                                  salt="taplive.payout-onboarding")


def _provider_of(token: str) -> User:
    try:
        user_id = _serializer().loads(token, max_age=int(LINK_TOKEN_MAX_AGE.total_seconds()))
        user = services().db.session().get(User, uuid.UUID(str(user_id)))
    except (BadData, ValueError) as exc:
        raise ValidationFailed("This onboarding link is not valid (or too old): start again "
                               "from the app.", code="INVALID_ONBOARDING_TOKEN") from exc
    if user is None:
        raise NotFound("No such provider.")
    return user


def _new_link(user: User, country: str | None = None) -> tuple[PayoutAccount, AccountLink]:
    token = _serializer().dumps(str(user.id))
    return onboarding.start(
        services().db.session(), payments().gateway, user, country=country,
        refresh_url=url_for("payouts.OnboardingRefresh", token=token, _external=True),
        return_url=url_for("payouts.OnboardingReturn", token=token, _external=True))


def _commit() -> None:
    """The unit of work commits writes only; these GETs are the processor's redirects of the
    browser (it cannot POST), and what they store must be kept."""
    services().db.session().commit()


@blp.route("/providers/me/payout-account/onboarding")
class Onboarding(MethodView):
    @authenticated(Permission.APPLY_ORDERS)
    @blp.arguments(OnboardingCreateSchema)
    @blp.response(201, OnboardingSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Start (or continue) payout onboarding: creates my connected account the first time
        and answers a fresh single-use onboarding URL (it expires within minutes; calling
        again gives a new one). Settlements wait until the account can receive payouts."""
        account, link = _new_link(current_user(), body.get("country"))
        return {"payoutAccount": account, "onboardingUrl": link.url,
                "expiresAt": link.expires_at}


@blp.route("/payouts/onboarding/refresh")
class OnboardingRefresh(MethodView):
    @blp.arguments(OnboardingLinkArgsSchema, location="query")
    @blp.response(302)
    def get(self, args: dict[str, Any]) -> Response:
        """The processor's ``refresh_url``: the link expired or was used; redirect to a new
        one for the same account."""
        _account, link = _new_link(_provider_of(args["token"]))
        _commit()
        return redirect(link.url, code=302)


@blp.route("/payouts/onboarding/return")
class OnboardingReturn(MethodView):
    @blp.arguments(OnboardingLinkArgsSchema, location="query")
    @blp.response(200, PayoutAccountEnvelopeSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """The processor's ``return_url``: the provider left the form; re-read the account
        (the ``account.updated`` webhook says the same, whichever comes first)."""
        user = _provider_of(args["token"])
        pay = payments()
        row = services().db.session().query(PayoutAccount).filter_by(
            user_id=user.id, gateway=pay.gateway.name).one_or_none()
        if row is None:
            raise NotFound("No payout account yet.")
        synced = onboarding.sync(services().db.session(), pay.gateway, row.account_ref)
        _commit()
        return {"payoutAccount": synced}


# ------------------------------------------------------------------ offline processor's form


def _offline() -> OfflineGateway:
    gateway = payments().gateway
    if not isinstance(gateway, OfflineGateway):
        raise NotFound("Not found.")  # the real processor hosts its own form
    return gateway


_FORM = """<!doctype html><html><head><meta charset="utf-8">
<title>Payout onboarding (offline processor)</title></head><body>
<h1>Payout onboarding</h1>
<p>Offline payment processor (standalone mode): this stands in for the card processor's
onboarding form of connected account <code>{account}</code>.</p>
<form method="post"><button type="submit">Submit details and enable payouts</button></form>
</body></html>"""


@blp.route("/payments/offline/onboarding/<string:token>")
class OfflineOnboardingForm(MethodView):
    @blp.response(200)
    def get(self, token: str) -> Response:
        """The offline processor's onboarding form (standalone mode only)."""
        gateway = _offline()
        try:
            link = gateway.onboarding_link(token)
        except LinkExpired as exc:
            return redirect(exc.refresh_url, code=302)
        except ObjectMissing as exc:
            raise NotFound("No such onboarding link.") from exc
        return Response(_FORM.format(account=html.escape(link["account"])),
                        mimetype="text/html")

    @blp.response(303)
    def post(self, token: str) -> Response:
        """Submit the offline form: the account can receive payouts. Like the processor's
        ``account.updated`` webhook, the account is re-read and stored; then the browser goes
        to the ``return_url``."""
        gateway = _offline()
        try:
            link = gateway.complete_onboarding(token)
        except LinkExpired as exc:
            return redirect(exc.refresh_url, code=303)
        except ObjectMissing as exc:
            raise NotFound("No such onboarding link.") from exc
        onboarding.sync(services().db.session(), gateway, link["account"])
        return redirect(link["return_url"], code=303)
