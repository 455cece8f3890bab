"""Payment settings as one value object, and the gateway chosen from settings."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import TYPE_CHECKING

from core.config import Settings
from domain.money import FeePolicy
from domain.payments.escrow import HoldTiming

if TYPE_CHECKING:
    import redis

    from domain.payments.gateway import PaymentGateway


@dataclass(frozen=True)
class PaymentConfig:
    fee_policy: FeePolicy = field(default_factory=lambda: FeePolicy(1500, 290, 30))
    timing: HoldTiming = field(default_factory=HoldTiming)
    dispute_window: timedelta = timedelta(hours=72)
    settlement_grace: timedelta = timedelta(minutes=10)
    settlement_batch: int = 100
    require_method_at_accept: bool = True
    orphan_grace: timedelta = timedelta(minutes=30)
    rate_limit_retries: int = 5
    # Processor calls per second one catch-up chain may make (PAYMENT_GATEWAY_RATE_PER_S).
    gateway_rate_per_s: float = 40.0
    # How long an acceptance waits for the creator's 3-D Secure before the order goes back to
    # pending (the hold attempt is cancelled).
    authentication_timeout: timedelta = timedelta(minutes=30)

    @classmethod
    def from_settings(cls, settings: Settings) -> PaymentConfig:
        fixed: dict[str, int] | int = settings.processing_fee_fixed_minor
        if settings.processing_fee_fixed_by_currency:
            fixed = dict(settings.processing_fee_fixed_by_currency)
        return cls(
            fee_policy=FeePolicy(settings.platform_fee_bps, settings.processing_fee_bps, fixed),
            timing=HoldTiming(
                validity=timedelta(days=settings.payment_hold_days),
                renew_before=timedelta(hours=settings.payment_hold_renew_before_hours),
                authorize_lead=timedelta(hours=settings.payment_authorize_lead_hours),
            ),
            dispute_window=timedelta(hours=settings.dispute_window_hours),
            settlement_grace=timedelta(minutes=settings.payment_settlement_grace_minutes),
            settlement_batch=settings.payment_settlement_batch,
            require_method_at_accept=settings.payment_method_required_at_accept,
            orphan_grace=timedelta(minutes=settings.payment_orphan_hold_grace_minutes),
            rate_limit_retries=settings.payment_rate_limit_retries,
            gateway_rate_per_s=settings.payment_gateway_rate_per_s,
            authentication_timeout=timedelta(
                minutes=settings.payment_authentication_timeout_minutes),
        )


def make_gateway(settings: Settings, redis_client: redis.Redis) -> PaymentGateway:
    """``PAYMENT_GATEWAY=stripe`` -> Stripe (the secret key is required); ``offline`` -> the
    in-house emulator whose state lives in the app's Redis (shared by API and workers)."""
    if settings.payment_gateway == "stripe":
        from domain.payments.stripe_gateway import StripeGateway

        if not settings.stripe_secret_key:
            raise ValueError("PAYMENT_GATEWAY=stripe needs STRIPE_SECRET_KEY")
        return StripeGateway(settings.stripe_secret_key, api_base=settings.stripe_api_base,
                             max_network_retries=settings.stripe_max_network_retries)
    from domain.payments.offline import OfflineGateway, RedisStore

    return OfflineGateway(RedisStore(redis_client),
                          hold_validity=timedelta(days=settings.payment_hold_days))
