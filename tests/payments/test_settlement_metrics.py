"""Settled amounts are counted by currency once the settlement commits, and only once."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskClient
from prometheus_client import REGISTRY
from sqlalchemy.orm import Session

from db.models import User
from domain.payments import capture, settlement
from services import Payments
from tests.payments.conftest import accepted, deliver, escrow_of, onboard


def _settled(currency: str) -> float:
    return REGISTRY.get_sample_value("taplive_settlement_amount_minor_total",
                                     {"currency": currency}) or 0.0


def test_settlement_counts_the_net_once_after_commit(
        client: FlaskClient, people: dict[str, User], pay: Payments,
        db_session: Session) -> None:
    now = datetime.now(UTC)
    oid = uuid.UUID(accepted(client, people, proposed="30.00")["id"])
    deliver(db_session, oid, ago=timedelta(hours=1))
    capture.capture(db_session, pay.gateway, pay.config, oid, now)
    escrow_of(db_session, oid).settle_after = now - timedelta(seconds=1)
    onboard(db_session, people["provider"])
    db_session.commit()
    before = _settled("USD")
    assert settlement.split(db_session, pay.config, oid, now)
    db_session.commit()
    assert settlement.pay_out(db_session, pay.gateway, oid, now)
    assert _settled("USD") == before  # not before the commit
    db_session.commit()
    assert _settled("USD") == before + 2433  # 3000 less 450 platform and 117 processing fees
    assert not settlement.pay_out(db_session, pay.gateway, oid, now)  # settled: no second count
    db_session.commit()
    assert _settled("USD") == before + 2433
