"""Celery entry point: ``celery -A celery_app worker`` / ``celery -A celery_app beat``.

Builds the composition root and the Celery app from settings, and nothing of the HTTP layer."""

from core.config import load_settings
from core.logging import configure_logging
from services import build_services
from workers.celery_factory import make_celery

settings = load_settings()
configure_logging(settings.service_name, settings.log_level, settings.log_format)
celery = make_celery(build_services(settings))
