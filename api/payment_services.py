"""The payment collaborators of one app: the gateway chosen by settings and the payment
config. Stored in ``app.extensions["payments"]`` beside ``Services`` (tests swap the gateway)."""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, current_app, request

from core.config import Settings
from domain.payments.config import PaymentConfig, make_gateway
from domain.payments.gateway import PaymentGateway

EXTENSION_KEY = "payments"


@dataclass
class PaymentServices:
    gateway: PaymentGateway
    config: PaymentConfig
    webhook_secret: str | None
    webhook_tolerance_s: int


def init_payments(app: Flask, settings: Settings) -> None:
    app.extensions[EXTENSION_KEY] = PaymentServices(
        gateway=make_gateway(settings, app.extensions["taplive"].redis),
        config=PaymentConfig.from_settings(settings),
        webhook_secret=settings.stripe_webhook_secret,
        webhook_tolerance_s=settings.stripe_webhook_tolerance_s,
    )
    limiter = app.extensions.get("taplive_limiter")
    if limiter is not None:
        # The processor delivers events in bursts from a few addresses: its signature, not
        # the anonymous per-IP budget, guards this endpoint (and a 429 would only delay money).
        limiter.request_filter(lambda: request.blueprint == "webhooks")


def payments() -> PaymentServices:
    svc: PaymentServices = current_app.extensions[EXTENSION_KEY]
    return svc
