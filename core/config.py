"""Twelve-factor settings: every knob comes from an environment variable.

The README's configuration table is the user-facing copy of this class; keep them in step.
"""

from __future__ import annotations

from enum import StrEnum
from functools import cached_property
from pathlib import Path

from pydantic import Field, model_validator
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
    page_size_max: int = 100
    celery_always_eager: bool = False
    celery_visibility_timeout_s: int = 3600

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


def load_settings(**overrides: object) -> Settings:
    """Read the environment; keyword overrides win (tests and the standalone launcher use them)."""
    return Settings(**overrides)  # type: ignore[arg-type]
