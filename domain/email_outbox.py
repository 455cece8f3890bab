"""The email outbox: a mail is a row written with the change that sends it, sent after commit.

Delivery guarantee: **at most once per row.** Sending claims the row first, in a transaction of
its own (``queued`` -> ``sending``, ``attempts`` + 1, committed before SMTP is spoken), and
records the outcome in another (``sent``, or back to ``queued`` after a temporary error, or
``failed``). A second run of the task, a duplicate message or a sweep finds the row no longer
``queued`` and does nothing. A sender that dies between the claim and the outcome leaves the row
``sending``; the sweep gives such a row up (``failed``, ``outcome unknown``) rather than send it
again. Why at most once: these are one-time links, and a person who got none asks again in a
minute, while a duplicate (or a dozen, from a retry loop against a slow server) cannot be
unsent. What a crash can cost is one mail, never a repeated one.

The body holds the link and its secret, so it is emptied as soon as the row is ``sent`` or
``failed``: the secret is at rest in the clear only while the mail waits (normally
milliseconds).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from db.models import EmailMessage
from db.session import note_for_commit

#: ``note_for_commit`` topic: ids of mails this transaction queued (sent after commit).
EMAIL_QUEUED = "email_queued"

QUEUED, SENDING, SENT, FAILED = "queued", "sending", "sent", "failed"
UNKNOWN_OUTCOME = "outcome unknown: the sender stopped while sending; not sent again"


@dataclass(frozen=True)
class ClaimedMail:
    id: uuid.UUID
    recipient: str
    subject: str
    body: str
    attempts: int


def queue(session: Session, *, user_id: uuid.UUID | None, kind: str, recipient: str,
          subject: str, body: str) -> EmailMessage:
    """Add a mail to the caller's transaction; it is sent once that commits."""
    row = EmailMessage(id=uuid.uuid4(), user_id=user_id, kind=kind, recipient=recipient,
                       subject=subject, body=body, state=QUEUED, attempts=0)
    session.add(row)
    note_for_commit(session, EMAIL_QUEUED, row.id)
    return row


def claim(session: Session, message_id: uuid.UUID, now: datetime) -> ClaimedMail | None:
    """Take a queued mail for sending (the caller commits before sending). None: already
    taken, sent, given up or gone, or being claimed by someone else right now."""
    row = session.scalars(
        select(EmailMessage)
        .where(EmailMessage.id == message_id, EmailMessage.state == QUEUED)
        .with_for_update(skip_locked=True)
    ).one_or_none()
    if row is None or row.body is None:
        return None
    row.state, row.sending_at, row.attempts = SENDING, now, row.attempts + 1
    return ClaimedMail(row.id, row.recipient, row.subject, row.body, row.attempts)


def mark_sent(session: Session, message_id: uuid.UUID, now: datetime) -> None:
    session.execute(update(EmailMessage).where(EmailMessage.id == message_id)
                    .values(state=SENT, sent_at=now, body=None, last_error=None))


def mark_failed(session: Session, message_id: uuid.UUID, error: str, *, permanent: bool,
                max_attempts: int) -> bool:
    """Record a failed attempt. True: queued again for a retry; False: given up."""
    row = session.get(EmailMessage, message_id, with_for_update=True)
    if row is None:
        return False
    give_up = permanent or row.attempts >= max_attempts
    row.last_error = error[:500]
    row.state = FAILED if give_up else QUEUED
    if give_up:
        row.body = None
    return not give_up


def due(session: Session, created_before: datetime, limit: int) -> list[uuid.UUID]:
    """Queued mails older than ``created_before``: their after-commit send was lost."""
    return list(session.scalars(
        select(EmailMessage.id)
        .where(EmailMessage.state == QUEUED, EmailMessage.created_at < created_before)
        .order_by(EmailMessage.created_at).limit(limit)))


def abandon_stuck(session: Session, sending_before: datetime) -> int:
    """Give up mails whose sender died mid-send (see the module docstring). Returns how many."""
    result = session.execute(
        update(EmailMessage)
        .where(EmailMessage.state == SENDING, EmailMessage.sending_at < sending_before)
        .values(state=FAILED, body=None, last_error=UNKNOWN_OUTCOME))
    return int(getattr(result, "rowcount", 0) or 0)
