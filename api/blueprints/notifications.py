"""A user's notifications: catch up on what was pushed (or missed) and mark it read
(docs/realtime.md, "Notifications that are never lost")."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import marshmallow as ma
from flask.views import MethodView
from marshmallow import fields, validate

from api.auth import authenticated, current_caller
from api.blueprints.providers import StrictBoolean
from api.fields import PageArgsSchema, PaginationSchema, page_payload
from api.services import services
from api.smorest import Blueprint, Schema
from domain import notifications

blp = Blueprint("notifications", __name__,
                description="What a user was told: list, catch up, mark read")


class NotificationSchema(Schema):
    id = fields.String(metadata={"description": "The event's id: the same for every "
                                 "recipient and every replay of it (de-duplicate on it)."})
    event = fields.String()
    orderId = fields.String(allow_none=True)
    # ``wire`` gives the pushed event as it is; these are its ISO 8601 strings.
    at = fields.String(metadata={"format": "date-time"})
    payload = fields.Dict()
    notificationId = fields.UUID(metadata={"description": "This notification (mark it read)."})
    readAt = fields.String(allow_none=True, metadata={"format": "date-time"})


class NotificationPageSchema(Schema):
    items = fields.List(fields.Nested(NotificationSchema))
    pagination = fields.Nested(PaginationSchema)


class NotificationListArgsSchema(PageArgsSchema):
    unread = fields.Boolean(load_default=False, truthy={"true"}, falsy={"false"})


class MarkReadSchema(Schema):
    # Exactly one of the two ways, as the check below says.
    OPENAPI_EXTRA = {"oneOf": [
        {"required": ["ids"], "properties": {"ids": {"type": "array"},
                                             "all": {"enum": [False]}}},
        {"required": ["all"], "properties": {"all": {"enum": [True]}},
         "not": {"required": ["ids"]}}]}

    ids = fields.List(fields.UUID(), validate=validate.Length(1, 500), load_default=None)
    all = StrictBoolean(load_default=False)

    @ma.validates_schema
    def _one_of(self, data: dict[str, Any], **_: Any) -> None:
        if (data["ids"] is None) == (not data["all"]):
            raise ma.ValidationError('Send either "ids" (1 to 500) or "all": true.',
                                     field_name="ids")


class MarkReadResultSchema(Schema):
    marked = fields.Integer()


@blp.route("")
class Notifications(MethodView):
    @authenticated()
    @blp.arguments(NotificationListArgsSchema, location="query")
    @blp.response(200, NotificationPageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """My notifications, newest first (``?unread=true`` for the unread only)."""
        svc = services()
        found = notifications.page_for(svc.db.session(), current_caller().id, svc.cursors,
                                       limit=args["limit"], cursor=args["cursor"],
                                       unread_only=args["unread"])
        return page_payload(found, [notifications.wire(row) for row in found.items])


@blp.route("/read")
class MarkRead(MethodView):
    @authenticated()
    @blp.arguments(MarkReadSchema)
    @blp.response(200, MarkReadResultSchema)
    def post(self, body: dict[str, Any]) -> dict[str, Any]:
        """Mark my notifications read: the listed ones (ids of other people's are ignored), or
        all of them."""
        marked = notifications.mark_read(services().db.session(), current_caller().id,
                                         datetime.now(UTC),
                                         ids=None if body["all"] else body["ids"])
        return {"marked": marked}
