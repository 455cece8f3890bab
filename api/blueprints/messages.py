"""Order chat: the conversation of an order's creator and its assigned provider."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from flask.views import MethodView
from marshmallow import fields

from api.auth import authenticated, current_caller
from api.blueprints.orders import may_apply
from api.fields import PageArgsSchema, PaginationSchema, page_payload
from api.services import services
from api.smorest import NON_BLANK_TEXT_PATTERN, Blueprint, Schema, Serialized
from domain import messages

blp = Blueprint("messages", __name__, description="Order chat")


class MessageCreateSchema(Schema):
    # Length and characters are the domain's rule (domain.messages.clean_body: the limit is a
    # setting, CHAT_MESSAGE_MAX_CHARS); a wrong JSON type stops here.
    body = fields.String(required=True, metadata={
        "pattern": NON_BLANK_TEXT_PATTERN,
        "description": "1 to CHAT_MESSAGE_MAX_CHARS (default 2000) characters after stripping; "
                       "no control characters other than newline and tab."})


class MessageSchema(Schema):
    """A message as sent: the OpenAPI declaration of ``domain.projections.message_view``
    (never dumped itself; tests/api/test_messages.py holds the two equal on real responses)."""

    id = fields.UUID()
    orderId = fields.UUID()
    senderId = fields.UUID()
    body = fields.String(allow_none=True, metadata={
        "description": "Null once the sender's account was erased (then deleted is true)."})
    createdAt = fields.DateTime()
    deleted = fields.Boolean()


class MessageEnvelopeSchema(Schema):
    message = fields.Nested(MessageSchema)


class MessagePageSchema(Schema):
    items = fields.List(fields.Nested(MessageSchema))
    pagination = fields.Nested(PaginationSchema)


@blp.route("/<uuid:order_id>/messages")
class Messages(MethodView):
    # Posting is limited per user (RATE_LIMIT_CHAT_MESSAGES, api/auth/ratelimit.py); reading
    # only counts against the caller's API-wide budget.
    rate_limit_guards = ("chat",)

    @authenticated()
    @blp.arguments(PageArgsSchema, location="query")
    @blp.response(200, MessagePageSchema)
    def get(self, args: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Read the order's chat, newest first (its creator, its provider, admins)."""
        page = messages.history(services().db.session(), order_id, current_caller(),
                                may_apply=may_apply(), codec=services().cursors,
                                limit=args["limit"], cursor=args["cursor"])
        return Serialized(page_payload(page, page.items))

    @authenticated()
    @blp.arguments(MessageCreateSchema)
    @blp.response(201, MessageEnvelopeSchema)
    def post(self, body: dict[str, Any], order_id: uuid.UUID) -> dict[str, Any]:
        """Send a message to the other party (once a provider is assigned, until cancelled)."""
        message = messages.post_message(
            services().db.session(), order_id, current_caller(), body["body"],
            max_chars=services().settings.chat_message_max_chars, may_apply=may_apply(),
            now=datetime.now(UTC))
        return Serialized({"message": message})
