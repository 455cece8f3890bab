"""The beat job that re-drives captures whose task gave up: captures once, then finds nothing."""

from __future__ import annotations

import uuid
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from db.models import User
from services import Payments
from tests.payments.conftest import accepted, deliver, escrow_of


def test_retry_captures_captures_missed_orders_once(
        app: Flask, client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    order = accepted(client, people, proposed="30.00")
    oid = uuid.UUID(order["id"])
    deliver(db_session, oid, ago=timedelta(minutes=10))  # completed; no worker ran the capture
    assert escrow_of(db_session, oid).state == "authorized"
    retry = app.extensions["celery"].tasks["payments.retry_captures"]
    assert retry.apply().get() == 1
    assert retry.apply().get() == 0  # the next tick finds nothing to do
    escrow = escrow_of(db_session, oid)
    assert (escrow.state, escrow.captured_minor) == ("captured", 3000)
    captures = [op for op in pay.gateway.operations() if op["op"] == "capture"]  # type: ignore[attr-defined]
    assert len(captures) == 1
