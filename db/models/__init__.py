"""Every table's model, one module per subject; import them from here (``from db.models import
Order``). Importing this package registers every table on ``Base.metadata``."""

from db.models.accounts import AuditEvent, RefreshTokenFamily, User
from db.models.areas import OperatingArea
from db.models.base import Base, TimestampMixin
from db.models.email import AccountLink, EmailMessage
from db.models.idempotency import IdempotencyRecord
from db.models.matching import (
    DISPATCH_STATUSES,
    MATCH_SOURCES,
    MATCH_STATUSES,
    OrderAssignment,
    OrderDispatch,
    OrderMatch,
)
from db.models.messages import OrderMessage
from db.models.notifications import Notification
from db.models.orders import (
    LOCATION_POINT_SQL,
    Order,
    OrderApplication,
    OrderEvent,
    ProviderNoShow,
)
from db.models.outbox import OutboxMessage
from db.models.payments import (
    LedgerEntry,
    LedgerTransaction,
    PaymentCustomer,
    PaymentEscrow,
    PaymentTransaction,
    PayoutAccount,
    ProcessedWebhookEvent,
    ReconciliationRun,
    SavedPaymentMethod,
)
from db.models.presence import GeofenceState, LocationSample
from db.models.streams import StreamSegment, StreamSession

__all__ = [
    "DISPATCH_STATUSES", "LOCATION_POINT_SQL", "MATCH_SOURCES", "MATCH_STATUSES", "AccountLink",
    "AuditEvent", "Base", "EmailMessage", "GeofenceState", "IdempotencyRecord", "LedgerEntry",
    "LedgerTransaction", "LocationSample", "Notification", "OperatingArea", "Order",
    "OrderApplication", "OrderAssignment", "OrderDispatch", "OrderEvent", "OrderMatch",
    "OrderMessage", "OutboxMessage", "PaymentCustomer", "PaymentEscrow", "PaymentTransaction",
    "PayoutAccount", "ProcessedWebhookEvent", "ProviderNoShow", "ReconciliationRun",
    "RefreshTokenFamily",
    "SavedPaymentMethod",
    "StreamSegment", "StreamSession", "TimestampMixin", "User",
]
