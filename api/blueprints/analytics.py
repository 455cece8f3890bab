"""Analytics: a user's own figures and the platform's (admins)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView

from api.auth import authenticated, current_user
from api.blueprints.analytics_schemas import (
    AnalyticsArgsSchema,
    MyAnalyticsSchema,
    PlatformAnalyticsSchema,
)
from api.metrics import queue_depths
from api.services import services
from api.smorest import Blueprint
from domain import analytics
from domain.permissions import Permission

blp = Blueprint("analytics", __name__, description="Analytics")


@blp.route("/analytics/me")
class MyAnalytics(MethodView):
    @authenticated(Permission.VIEW_ANALYTICS)
    @blp.arguments(AnalyticsArgsSchema, location="query")
    @blp.response(200, MyAnalyticsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Your spend and orders (creators) and earnings and rates (providers) in a window."""
        svc, now = services(), datetime.now(UTC)
        window = analytics.resolve_window(args["since"], args["until"], now)
        return analytics.user_analytics(svc.db.session(), svc.redis, current_user(), window,
                                        now)


@blp.route("/admin/analytics")
class PlatformAnalytics(MethodView):
    # VIEW_ANALYTICS is every role's; MANAGE_USERS is what makes this an admin-only report.
    @authenticated(Permission.VIEW_ANALYTICS, Permission.MANAGE_USERS)
    @blp.arguments(AnalyticsArgsSchema, location="query")
    @blp.response(200, PlatformAnalyticsSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """Fill rate, time to accept, GMV and fees, supply by area and queue health."""
        svc, now = services(), datetime.now(UTC)
        window = analytics.resolve_window(args["since"], args["until"], now)
        registry = svc.presence
        return analytics.platform_analytics(
            svc.db.session(), svc.redis, window, now,
            available=lambda: registry.snapshot().records, queue_depths=queue_depths)
