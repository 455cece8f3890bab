"""Twelve-factor settings: every knob comes from an environment variable.

The README's configuration table is the user-facing copy of this class; keep them in step.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# Dev-only defaults. Production refuses to start while any secret still has one of these.
DEV_SECRET_KEY = "dev-secret-key-change-me-dev-secret-key"
DEV_JWT_SECRET_KEY = "dev-jwt-secret-change-me-dev-jwt-secret"
MIN_SECRET_LENGTH = 32
PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_SQLITE_PATH = PROJECT_ROOT / "var" / "taplive.sqlite3"


class AppEnv(StrEnum):
    STANDALONE = "standalone"
    DEVELOPMENT = "development"
    TEST = "test"
    PRODUCTION = "production"


class ConfigurationError(RuntimeError):
    """The process must not start with this configuration."""


class Settings(BaseSettings):
    """All runtime configuration. Field names map to upper-case environment variables."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore")

    app_env: AppEnv = AppEnv.DEVELOPMENT
    database_url: str = f"sqlite:///{DEFAULT_SQLITE_PATH}"
    redis_url: str = "redis://127.0.0.1:6379/0"
    celery_broker_url: str | None = None
    celery_result_backend: str | None = None
    secret_key: str = DEV_SECRET_KEY
    jwt_secret_key: str = DEV_JWT_SECRET_KEY
    log_level: str = "INFO"
    log_format: str = Field(default="json", pattern="^(json|console)$")
    service_name: str = "taplive-api"
    max_content_length: int = 1_048_576
    db_pool_size: int = 10
    db_statement_timeout_ms: int = 15_000
    readiness_timeout_s: float = 2.0
    page_size_default: int = 20
    # Read caches of GET /orders and GET /orders/{id} (domain/order_cache.py); 0 turns them off.
    read_cache_ttl_s: int = Field(default=60, ge=0, le=3600)
    page_size_max: int = 100
    celery_always_eager: bool = False
    celery_visibility_timeout_s: int = 3600
    idempotency_ttl_hours: int = Field(default=24, ge=24)
    order_min_radius_m: int = 50
    order_max_radius_m: int = 50_000
    order_max_schedule_ahead_days: int = 365
    # A float so a test run can open a window of seconds (the load-and-faults run: 0.002 h).
    dispute_window_hours: float = Field(default=72, ge=0)
    location_max_age_s: int = 300
    order_pending_ttl_hours: int = 24
    order_expiry_grace_minutes: int = 30
    # Orders that hang (issue 17, docs/orders.md "Automatic steps"): an accepted order not
    # started by its scheduled time (unscheduled: NO_SHOW_WINDOW after acceptance) plus the
    # grace is cancelled as the provider's no-show; an active order still running after
    # ORDER_ACTIVE_MAX_HOURS is completed (its stream ran) or escalated; a dispute is escalated
    # to admins after DISPUTE_ESCALATE_AFTER_DAYS and resolved by the default rule after
    # DISPUTE_AUTO_RESOLVE_AFTER_DAYS.
    order_no_show_window_minutes: int = Field(default=60, ge=1)
    order_no_show_grace_minutes: int = Field(default=15, ge=0)
    order_active_max_hours: int = Field(default=6, ge=1)
    dispute_escalate_after_days: int = Field(default=3, ge=1)
    dispute_auto_resolve_after_days: int = Field(default=14, ge=1)
    # Retention of what grows forever (published outbox rows; read notifications, and any
    # notification past the longer age).
    outbox_retention_days: int = Field(default=7, ge=1)
    notification_read_retention_days: int = Field(default=30, ge=1)
    notification_retention_days: int = Field(default=180, ge=1)

    # Real time (docs/realtime.md): the Socket.IO server's port, how long a reconnecting
    # client's missed events are kept for replay, how often live sockets' tokens are re-checked.
    realtime_port: int = Field(default=8001, ge=1, le=65535)
    realtime_retention_s: int = Field(default=300, ge=10, le=86_400)
    realtime_revocation_check_s: float = Field(default=0.5, gt=0, le=10)
    # Engine.IO heartbeat: a dead client is noticed within interval + timeout. Every ping is a
    # wake-up per socket, so with ten thousand held sockets it is idle CPU (docs/benchmarks.md).
    realtime_ping_interval_s: int = Field(default=20, ge=1, le=300)
    realtime_ping_timeout_s: int = Field(default=20, ge=1, le=300)
    # Freeze what start-up allocated out of the cyclic GC and collect less often: with ten
    # thousand sockets a full collection walks every one of them (docs/benchmarks.md).
    realtime_gc_tuning: bool = True
    # Order chat (docs/realtime.md, "Chat").
    chat_message_max_chars: int = Field(default=2000, ge=1, le=10_000)

    # Presence, location history and matching (docs/matching.md, "In the workers").
    # A provider with no location update for this long is offline (dropped from matching).
    presence_offline_after_s: int = Field(default=120, ge=10)
    # Location history: at most one sample per provider per interval, kept this many days.
    location_history_interval_s: int = Field(default=60, ge=1)
    location_history_retention_days: int = Field(default=30, ge=1)
    # Positions shown to anyone but the provider (and their assigned order's creator) are
    # snapped to a grid of cells this wide.
    location_coarsen_m: int = Field(default=500, ge=100)
    # A provider must be this far beyond the radius to "exit" (GPS jitter at the boundary).
    geofence_hysteresis_m: int = Field(default=25, ge=0)
    matching_max_invitations: int = Field(default=10, ge=1, le=100)
    # How long a worker serves matches from its in-memory index before checking Redis for
    # changes (candidates are re-checked against live presence anyway).
    matching_index_max_staleness_s: float = Field(default=2.0, ge=0)
    # Change-log entries a worker applies incrementally; more than that means a full rebuild.
    matching_index_max_changes: int = Field(default=50_000, ge=1)
    matching_rematch_max_candidates: int = Field(default=16, ge=1)
    matching_offer_ttl_s: int = Field(default=60, ge=1)

    # Accounts and authentication (docs/auth.md).
    jwt_access_ttl_s: int = Field(default=900, ge=60)
    jwt_refresh_ttl_s: int = Field(default=1_209_600, ge=300)
    password_min_length: int = Field(default=10, ge=8, le=64)
    # zxcvbn score (0-4) a new password must reach; 2 refuses every common password and its
    # simple variants ("P@ssw0rd2024").
    password_min_strength: int = Field(default=2, ge=0, le=4)
    # Rate limits ("N per W unit" strings, see the ``limits`` package). None: on, except under
    # APP_ENV=test where suites share one client IP (tests enable it explicitly).
    rate_limit_enabled: bool | None = None
    rate_limit_strategy: str = Field(
        default="fixed-window", pattern="^(fixed-window|moving-window|sliding-window-counter)$"
    )
    rate_limit_anonymous: str = "100 per 15 minutes"
    rate_limit_authenticated: str = "1000 per 15 minutes"
    rate_limit_premium: str = "5000 per 15 minutes"
    rate_limit_login_ip: str = "30 per 15 minutes"
    rate_limit_login_account: str = "10 per 15 minutes"
    rate_limit_register_ip: str = "10 per 15 minutes"
    rate_limit_register_account: str = "5 per 15 minutes"
    # Order chat: messages one user may post (all orders together).
    rate_limit_chat_messages: str = "30 per minute"
    # Password reset and email verification requests: per client IP, and per email address
    # (reset) or per user (a new verification mail). Counted whether or not the address has an
    # account, so the limit itself tells a stranger nothing.
    rate_limit_recovery_ip: str = "10 per 15 minutes"
    rate_limit_recovery_account: str = "3 per 15 minutes"
    # Reverse proxies in front of the API whose X-Forwarded-For is trusted (0: use the peer).
    trusted_proxy_count: int = Field(default=0, ge=0, le=5)

    # Account links and the mail that carries them (docs/auth.md, "Recovery"). The link is
    # APP_PUBLIC_URL + the path, "{token}" replaced by the token.
    app_public_url: str = "http://127.0.0.1:8000"
    password_reset_path: str = Field(default="/reset-password?token={token}",
                                     pattern=r"^/.*\{token\}")
    email_verification_path: str = Field(default="/verify-email?token={token}",
                                         pattern=r"^/.*\{token\}")
    password_reset_ttl_s: int = Field(default=3600, ge=300, le=86_400)
    email_verification_ttl_s: int = Field(default=172_800, ge=3600, le=30 * 86_400)
    # Outgoing mail. No SMTP_HOST: mails are written to the log (standalone mode, development).
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_tls: str = Field(default="starttls", pattern="^(none|starttls|ssl)$")
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_timeout_s: float = Field(default=10.0, gt=0, le=120)
    email_sender: str = "TapLive <no-reply@taplive.invalid>"
    # Sending attempts per mail before it is given up (temporary SMTP errors are retried).
    email_max_attempts: int = Field(default=5, ge=1, le=20)

    # Payments (docs/payments.md). "offline" is the no-network emulator of standalone mode and
    # tests; production refuses it.
    payment_gateway: str = Field(default="offline", pattern="^(offline|stripe)$")
    stripe_secret_key: str | None = None
    stripe_webhook_secret: str | None = None
    # The Connect endpoint's own signing secret (connected accounts' events: account.updated,
    # payout.*), received at /api/v1/webhooks/stripe/connect.
    stripe_connect_webhook_secret: str | None = None
    stripe_api_base: str | None = None  # None: Stripe's own; tests point it at localstripe
    stripe_webhook_tolerance_s: int = Field(default=300, ge=1, le=3600)
    stripe_max_network_retries: int = Field(default=2, ge=0, le=10)
    # Fees in basis points of the gross (1500 = 15 %), plus the processor's fixed fee in minor
    # units (one number for every currency, or a JSON object per currency which then must list
    # every currency orders use). Rounding: domain.money.split_fees.
    platform_fee_bps: int = Field(default=1500, ge=0, le=10_000)
    processing_fee_bps: int = Field(default=290, ge=0, le=10_000)
    processing_fee_fixed_minor: int = Field(default=30, ge=0)
    processing_fee_fixed_by_currency: dict[str, int] = Field(default_factory=dict)
    payment_hold_days: int = Field(default=7, ge=1, le=30)
    payment_hold_renew_before_hours: int = Field(default=24, ge=1)
    payment_authorize_lead_hours: int = Field(default=24, ge=1)
    payment_settlement_grace_minutes: int = Field(default=10, ge=0)
    payment_settlement_batch: int = Field(default=100, ge=1, le=1000)
    payment_orphan_hold_grace_minutes: int = Field(default=30, ge=1)
    payment_rate_limit_retries: int = Field(default=5, ge=0, le=20)
    # The processor calls per second each catch-up chain (retry_captures, settle_due) may make
    # while it drains a backlog (tasks/catchup.py). Stripe's live limit is 100 requests/s per
    # account, shared by everything: two chains at 40 leave 20 for the request path
    # (acceptances' holds, refunds, webhooks' reads). Test mode's limit is 25: set it lower.
    payment_gateway_rate_per_s: float = Field(default=40.0, gt=0, le=10_000)
    # An acceptance whose card wants 3-D Secure waits this long for the creator (issue 17).
    payment_authentication_timeout_minutes: int = Field(default=30, ge=1, le=24 * 60)
    payment_reconcile_lookback_hours: int = Field(default=48, ge=1)
    # Accepting an offer needs a card (given or saved). None: on, except under APP_ENV=test,
    # whose lifecycle suites accept without one (the payments suites turn it on).
    payment_method_required: bool | None = None

    # Live streams (docs/streaming.md): nginx-rtmp's ports, the public URLs clients get, the
    # callback secret and allow-list, and the rules that make the stream the evidence.
    stream_rtmp_port: int = Field(default=1935, ge=1, le=65535)
    stream_http_port: int = Field(default=8088, ge=1, le=65535)
    # Public bases. None: derived from the ports on 127.0.0.1 (standalone, tests).
    stream_rtmp_url: str | None = None  # e.g. rtmp://ingest.example.com:1935/live
    stream_hls_url: str | None = None  # e.g. https://video.example.com/hls
    # Where the workers read nginx-rtmp's statistics (loopback or the private network).
    stream_stat_url: str | None = None
    # The secret in nginx's callback URLs. None: derived from SECRET_KEY (one less setting to
    # forget; rotate SECRET_KEY, rotate this).
    stream_callback_secret: str | None = None
    # Peers allowed to call the callbacks (CIDRs, comma-separated).
    stream_callback_allow: str = "127.0.0.1/32,::1/128"
    # A stream must have run this long before the order may complete; a dropped publisher
    # may resume within the grace, after which the order completes by itself.
    stream_min_seconds: int = Field(default=60, ge=0, le=86_400)
    # Completion (and so capture) needs that stream. None: on, except under APP_ENV=test, whose
    # lifecycle suites complete without streaming (the stream suites turn it on).
    stream_proof_required: bool | None = None
    stream_grace_s: int = Field(default=120, ge=1, le=3600)
    # nginx-rtmp run as a process of its own (core/rtmp_server.py, `taplive rtmp`): where it
    # reaches the API's callbacks (None: the API on 127.0.0.1:8000), where it writes the HLS
    # files (None: var/hls), and who may read its /stat (the workers' sampler).
    stream_callback_url: str | None = None  # e.g. http://api:8000/internal/rtmp
    stream_hls_dir: str | None = None
    stream_stat_allow: str = "127.0.0.1/32,::1/128"

    @property
    def stream_rtmp_base(self) -> str:
        return self.stream_rtmp_url or f"rtmp://127.0.0.1:{self.stream_rtmp_port}/live"

    @property
    def stream_hls_base(self) -> str:
        return self.stream_hls_url or f"http://127.0.0.1:{self.stream_http_port}/hls"

    @property
    def stream_callback_key(self) -> str:
        if self.stream_callback_secret:
            return self.stream_callback_secret
        import hashlib
        import hmac

        return hmac.new(self.secret_key.encode(), b"stream-callback", hashlib.sha256).hexdigest()

    @property
    def stream_stat_endpoint(self) -> str:
        return self.stream_stat_url or f"http://127.0.0.1:{self.stream_http_port}/stat"

    @property
    def stream_callback_base(self) -> str:
        return (self.stream_callback_url or "http://127.0.0.1:8000/internal/rtmp").rstrip("/")

    @property
    def stream_hls_path(self) -> Path:
        return Path(self.stream_hls_dir) if self.stream_hls_dir else PROJECT_ROOT / "var" / "hls"

    @field_validator(
        "rate_limit_anonymous", "rate_limit_authenticated", "rate_limit_premium",
        "rate_limit_login_ip", "rate_limit_login_account", "rate_limit_register_ip",
        "rate_limit_register_account", "rate_limit_chat_messages", "rate_limit_recovery_ip",
        "rate_limit_recovery_account",
    )
    @classmethod
    def _parse_rate_limit(cls, value: str) -> str:
        from limits import parse_many

        parse_many(value)  # raises ValueError on a malformed limit: refuse to start
        return value

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Settings:
        if self.app_env is AppEnv.PRODUCTION:
            problems = []
            for name, default in (
                ("SECRET_KEY", DEV_SECRET_KEY),
                ("JWT_SECRET_KEY", DEV_JWT_SECRET_KEY),
            ):
                value = getattr(self, name.lower())
                if not value or value == default:
                    problems.append(f"{name} is missing or still the development default")
                elif len(value) < MIN_SECRET_LENGTH:
                    problems.append(f"{name} must be at least {MIN_SECRET_LENGTH} characters")
            if self.database_url.startswith("sqlite"):
                problems.append("DATABASE_URL must point at PostgreSQL in production")
            if self.payment_gateway != "stripe":
                problems.append("PAYMENT_GATEWAY must be stripe in production")
            for name in ("STRIPE_SECRET_KEY", "STRIPE_WEBHOOK_SECRET"):
                if not getattr(self, name.lower()):
                    problems.append(f"{name} is missing")
            if problems:
                raise ConfigurationError("refusing to start: " + "; ".join(problems))
        return self

    @cached_property
    def broker_url(self) -> str:
        return self.celery_broker_url or self.redis_url

    @cached_property
    def result_backend(self) -> str:
        return self.celery_result_backend or self.redis_url

    @property
    def is_production(self) -> bool:
        return self.app_env is AppEnv.PRODUCTION

    @property
    def payment_method_required_at_accept(self) -> bool:
        if self.payment_method_required is not None:
            return self.payment_method_required
        return self.app_env is not AppEnv.TEST

    @property
    def stream_proof_required_to_complete(self) -> bool:
        if self.stream_proof_required is not None:
            return self.stream_proof_required
        return self.app_env is not AppEnv.TEST

    @property
    def rate_limits_on(self) -> bool:
        if self.rate_limit_enabled is not None:
            return self.rate_limit_enabled
        return self.app_env is not AppEnv.TEST


def load_settings(**overrides: object) -> Settings:
    """Read the environment; keyword overrides win (tests and the standalone launcher use them)."""
    return Settings(**overrides)  # type: ignore[arg-type]
