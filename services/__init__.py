"""The composition root: every long-lived collaborator of a process, built once from settings.

Every process kind builds one ``Services`` at start-up and hands it down: the API
(``api.create_app(services=...)``), the Celery worker and beat (``celery_app`` ->
``workers.celery_factory.make_celery``), the CLI, and the processes still to come (the real-time
server, the stream callbacks). Nothing below ``api/`` reaches for Flask to find a database
session: views get the root from the app, tasks from their Celery app, commands as arguments.

Why one object, not module globals: tests build several roots in one process (one per database
or Redis), and every process must register the same after-commit hooks (read-cache invalidation,
token-generation publishing), or a change committed by a worker would leave a stale cache behind.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import redis
from sqlalchemy.orm import Session

from core.config import Settings
from core.mailer import Mailer, make_mailer
from core.notifier import Notifier, SocketIONotifier, order_room
from core.publisher import EventPublisher, RedisEventPublisher
from core.redis import make_redis
from db.pagination import CursorCodec
from db.session import Database, committed_notes, make_engine
from domain.auth import families
from domain.auth.generations import GenerationRegister
from domain.auth.tokens import TokenIssuer, TokenVerifier
from domain.order_cache import OrderReadCache
from domain.payments.config import PaymentConfig, make_gateway
from domain.payments.gateway import PaymentGateway
from domain.presence import LOCATION_UPDATED
from domain.presence_store import PresenceRegistry
from domain.provider_index import ProviderIndexHolder
from domain.push import NotificationPusher
from domain.realtime import Broadcaster


@dataclass
class Payments:
    """The payment collaborators: the gateway chosen by settings and the payment rules' config.
    Tests swap ``gateway`` for a recorded or failing one."""

    gateway: PaymentGateway
    config: PaymentConfig
    webhook_secret: str | None
    webhook_tolerance_s: int
    connect_webhook_secret: str | None = None


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: redis.Redis
    cursors: CursorCodec
    payments: Payments
    events: EventPublisher
    read_cache: OrderReadCache
    token_issuer: TokenIssuer
    token_verifier: TokenVerifier
    notifier: Notifier
    _index: ProviderIndexHolder | None = field(default=None, repr=False)
    _index_lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def generations(self) -> GenerationRegister:
        """The Redis copy of token generations the verifier reads (and commits publish to)."""
        return self.token_verifier.generations

    @property
    def mailer(self) -> Mailer:
        """SMTP, or the log without SMTP_HOST (cheap: one connection per mail anyway)."""
        return make_mailer(self.settings)

    @property
    def presence(self) -> PresenceRegistry:
        return PresenceRegistry(self.redis)

    @property
    def pusher(self) -> NotificationPusher:
        """Pushes stored notifications to sockets and keeps the replay log."""
        return NotificationPusher(self.redis, self.notifier, self.settings.realtime_retention_s)

    @property
    def broadcaster(self) -> Broadcaster:
        """To a user, an order's participants, or the online providers inside a circle."""
        return Broadcaster(self.notifier, lambda: self.provider_index.get())

    @property
    def provider_index(self) -> ProviderIndexHolder:
        """This process's in-memory matching index, created on first use: only matching
        workers ever ask, so an API process never builds one."""
        if self._index is None:
            with self._index_lock:
                if self._index is None:
                    self._index = ProviderIndexHolder(
                        self.presence,
                        max_staleness_s=self.settings.matching_index_max_staleness_s,
                        max_changes=self.settings.matching_index_max_changes,
                        offline_after_s=self.settings.presence_offline_after_s)
        return self._index

    def close(self) -> None:
        """Release pooled connections (tests and orderly shutdown)."""
        self.db.session.remove()
        self.db.engine.dispose()
        self.redis.close()


def build_services(settings: Settings) -> Services:
    """The root for one process. Cheap: no connection is opened until first use."""
    client = make_redis(settings.redis_url, settings.readiness_timeout_s)
    database = Database(make_engine(
        settings.database_url, pool_size=settings.db_pool_size,
        statement_timeout_ms=settings.db_statement_timeout_ms))
    services = Services(
        settings=settings,
        db=database,
        redis=client,
        cursors=CursorCodec(settings.secret_key),
        payments=Payments(
            gateway=make_gateway(settings, client),
            config=PaymentConfig.from_settings(settings),
            webhook_secret=settings.stripe_webhook_secret,
            webhook_tolerance_s=settings.stripe_webhook_tolerance_s,
            connect_webhook_secret=settings.stripe_connect_webhook_secret),
        events=RedisEventPublisher(client),
        read_cache=OrderReadCache(client, settings.read_cache_ttl_s),
        token_issuer=TokenIssuer(settings.jwt_secret_key, settings.jwt_access_ttl_s,
                                 settings.jwt_refresh_ttl_s),
        token_verifier=TokenVerifier(settings.jwt_secret_key, client, database),
        notifier=SocketIONotifier(settings.redis_url),
    )
    _register_commit_hooks(services)
    return services


def push_live_locations(notifier: Notifier, session: Session) -> None:
    """After a committed position report: ``location:updated`` to each tracked order's room
    (live only: a position is stale by the time anyone could replay it)."""
    notifier.emit_many([(note["event"], note, order_room(note["orderId"]), None)
                        for note in committed_notes(session, LOCATION_UPDATED)])


def _register_commit_hooks(services: Services) -> None:
    """What every process must do after a commit, whoever committed: drop the read-cache
    entries the change made stale, publish token-generation bumps and refresh-family
    revocations (a revoked token must stop working on every API process), push live positions
    to the orders' rooms."""
    services.db.on_commit(services.read_cache.invalidate_committed_changes)
    services.db.on_commit(services.generations.publish_committed_bumps)
    services.db.on_commit(families.publisher(services.token_verifier))
    services.db.on_commit(lambda session: push_live_locations(services.notifier, session))
