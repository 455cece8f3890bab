"""Production refuses to start with default or missing secrets; everything comes from env."""

from __future__ import annotations

import pytest

from core.config import DEV_SECRET_KEY, AppEnv, ConfigurationError, load_settings

STRONG = "s" * 40
PG = "postgresql://app@db/taplive"


def test_environment_variables_configure_the_service(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", PG)
    monkeypatch.setenv("REDIS_URL", "redis://cache:6379/2")
    monkeypatch.setenv("PAGE_SIZE_MAX", "50")
    settings = load_settings()
    assert settings.database_url == PG
    assert settings.broker_url == "redis://cache:6379/2"  # broker defaults to REDIS_URL
    assert settings.page_size_max == 50


@pytest.mark.parametrize(("overrides", "message"), [
    ({}, "SECRET_KEY is missing"),
    ({"secret_key": DEV_SECRET_KEY, "jwt_secret_key": STRONG}, "SECRET_KEY is missing"),
    ({"secret_key": "short", "jwt_secret_key": STRONG}, "at least 32"),
    ({"secret_key": STRONG}, "JWT_SECRET_KEY is missing"),
    ({"secret_key": STRONG, "jwt_secret_key": STRONG, "database_url": "sqlite:///x.db"},
     "PostgreSQL"),
])
def test_production_refuses_unsafe_settings(overrides: dict[str, str], message: str,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SECRET_KEY", "JWT_SECRET_KEY", "DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
    values = {"app_env": AppEnv.PRODUCTION, "database_url": PG, **overrides}
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**values)


STRIPE = {"payment_gateway": "stripe", "stripe_secret_key": "sk_live_x",
          "stripe_webhook_secret": "whsec_x"}


def test_production_starts_with_real_secrets() -> None:
    settings = load_settings(app_env=AppEnv.PRODUCTION, database_url=PG,
                             secret_key=STRONG, jwt_secret_key=STRONG + "x", **STRIPE)
    assert settings.is_production


@pytest.mark.parametrize(("overrides", "message"), [
    ({"payment_gateway": "offline"}, "PAYMENT_GATEWAY must be stripe"),
    ({"stripe_secret_key": None}, "STRIPE_SECRET_KEY is missing"),
    ({"stripe_webhook_secret": ""}, "STRIPE_WEBHOOK_SECRET is missing"),
])
def test_production_refuses_offline_payments_and_missing_stripe_secrets(
        overrides: dict[str, object], message: str) -> None:
    values: dict[str, object] = {"app_env": AppEnv.PRODUCTION, "database_url": PG,
                                 "secret_key": STRONG, "jwt_secret_key": STRONG + "x",
                                 **STRIPE, **overrides}
    with pytest.raises(ConfigurationError, match=message):
        load_settings(**values)
