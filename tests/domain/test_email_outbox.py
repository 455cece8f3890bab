"""The outbox's state machine on both databases (SQLite is standalone mode's): a mail is
claimed once, its body is gone once sent or given up, stuck sends are given up, not resent."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from db.models import EmailMessage
from domain import email_outbox


def _queued(session: Session) -> EmailMessage:
    row = email_outbox.queue(session, user_id=None, kind="test", recipient="a@example.test",
                             subject="Hi", body="link: https://x.test/?token=abc\n")
    session.flush()
    return row


def test_a_mail_is_claimed_once_and_forgets_its_body(any_session: Session) -> None:
    row = _queued(any_session)
    now = datetime.now(UTC)
    claimed = email_outbox.claim(any_session, row.id, now)
    assert claimed is not None and claimed.attempts == 1 and "token=abc" in claimed.body
    assert email_outbox.claim(any_session, row.id, now) is None  # a second run: nothing
    email_outbox.mark_sent(any_session, row.id, now)
    any_session.expire_all()
    stored = any_session.get(EmailMessage, row.id)
    assert stored is not None and (stored.state, stored.body) == ("sent", None)
    assert email_outbox.claim(any_session, row.id, now) is None


def test_retries_until_the_last_attempt(any_session: Session) -> None:
    row = _queued(any_session)
    now = datetime.now(UTC)
    for attempt in (1, 2):
        assert email_outbox.claim(any_session, row.id, now) is not None
        again = email_outbox.mark_failed(any_session, row.id, "451 later", permanent=False,
                                         max_attempts=2)
        assert again is (attempt < 2)
    assert (row.state, row.attempts, row.body) == ("failed", 2, None)


def test_due_and_stuck(any_session: Session) -> None:
    now = datetime.now(UTC)
    fresh, lost, stuck = _queued(any_session), _queued(any_session), _queued(any_session)
    lost.created_at = now - timedelta(minutes=5)
    assert email_outbox.claim(any_session, stuck.id, now - timedelta(hours=1))
    any_session.flush()
    assert email_outbox.due(any_session, now - timedelta(seconds=30), 10) == [lost.id]
    assert email_outbox.abandon_stuck(any_session, now - timedelta(minutes=10)) == 1
    any_session.expire_all()
    gone = any_session.get(EmailMessage, stuck.id)
    assert gone is not None and (gone.state, gone.body) == ("failed", None)
    assert gone.last_error == email_outbox.UNKNOWN_OUTCOME
    assert any_session.get(EmailMessage, fresh.id).state == "queued"  # type: ignore[union-attr]
