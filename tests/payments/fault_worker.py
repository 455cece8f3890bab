"""The crash test's payments worker: the production worker (``celery_app``) plus hooks that
SIGKILL the process at one named step of capture or settlement.

``celery -A tests.payments.fault_worker worker ...`` with ``TAPLIVE_FAULT_POINT`` naming the
step. The hooks are installed from outside, on the process's own root: a gateway wrapper for
the steps around a processor call, and a SQLAlchemy flush listener for the steps right after a
ledger posting (mid-transaction, uncommitted). Production code carries no test switch.
SIGKILL, not an exception: nothing may clean up, as when a machine loses power.
"""

from __future__ import annotations

import os
import signal
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from celery_app import celery
from db.models import LedgerTransaction
from domain.payments.gateway import PaymentGateway

ENV = "TAPLIVE_FAULT_POINT"
POINT = os.environ.get(ENV, "")
# Around a processor call: (gateway method, before or after).
GATEWAY_POINTS = {
    "capture.before_gateway": ("capture", "before"),
    "capture.after_gateway": ("capture", "after"),
    "settle.before_transfer": ("transfer", "before"),
    "settle.after_transfer": ("transfer", "after"),
}
# Right after a ledger posting of this kind is written, before its transaction commits.
LEDGER_POINTS = {"capture.after_ledger": "capture", "settle.after_split": "settle"}


def _die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


class FaultyGateway:
    """The real gateway, but the process dies before or after one of its calls."""

    def __init__(self, inner: PaymentGateway, method: str, when: str) -> None:
        self._inner, self._method, self._when = inner, method, when

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._inner, name)
        if name != self._method:
            return attr

        def call(*args: Any, **kwargs: Any) -> Any:
            if self._when == "before":
                _die()
            result = attr(*args, **kwargs)
            _die()
            return result

        return call


def _install() -> None:
    payments = celery.services.payments
    if POINT in GATEWAY_POINTS:
        payments.gateway = FaultyGateway(payments.gateway, *GATEWAY_POINTS[POINT])  # type: ignore[assignment]
    elif POINT in LEDGER_POINTS:
        kind = LEDGER_POINTS[POINT]

        @event.listens_for(Session, "after_flush")
        def _after_posting(session: Session, _context: Any) -> None:
            if any(isinstance(obj, LedgerTransaction) and obj.kind == kind
                   for obj in session.new):
                _die()
    elif POINT:
        raise SystemExit(f"unknown fault point {POINT!r}")


_install()
