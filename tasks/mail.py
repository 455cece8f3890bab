"""Sending the email outbox (queue ``notifications``; the guarantee is in
``domain.email_outbox``: at most once per mail).

A reset request is accepted by the API blind (``domain.account_links``) and handed to
``mail_password_reset`` here, which looks the address up and queues the mail.
``send_email`` is sent by the commit that queued the mail (``send_after_commit``, a
``Database.on_commit`` hook of every process that builds the Celery app) and sends that one
mail; ``sweep_email`` (beat) sends mails whose after-commit send was lost and gives up mails
whose sender died mid-send.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from celery import Celery, shared_task
from sqlalchemy.orm import Session

from core.mailer import Mail, MailError
from db.session import committed_notes
from domain import account_links, email_outbox
from tasks.base import ServicesTask
from tasks.matching import RETRY, parse_id

log = logging.getLogger(__name__)
SEND_TASK = "notifications.send_email"
RESET_TASK = "notifications.mail_password_reset"
#: A queued mail this old lost its after-commit send (that send leaves within milliseconds).
SWEEP_GRACE_S = 30
#: A mail ``sending`` this long has no live sender: the SMTP timeout is far shorter.
STUCK_AFTER_S = 600
SWEEP_BATCH = 100
#: Temporary SMTP errors: try again after 30 s, 1 min, 2 min, 4 min... (EMAIL_MAX_ATTEMPTS).
RETRY_BASE_S = 30


@shared_task(name=SEND_TASK, bind=True, time_limit=120, soft_time_limit=100,
             ignore_result=True)
def send_email(self: ServicesTask, message_id: str) -> bool:
    """Send one queued mail. True: sent by this run; False: nothing to do (already claimed,
    sent, given up, gone) or a failure (recorded on the row; temporary ones retried)."""
    mid = parse_id(message_id)
    if mid is None:
        return False
    svc = self.services
    with svc.db.transaction() as session:
        claimed = email_outbox.claim(session, mid, datetime.now(UTC))
    if claimed is None:  # committed above: from here on, no other run will send this row
        return False
    try:
        svc.mailer.send(Mail(claimed.recipient, claimed.subject, claimed.body))
    except MailError as exc:
        with svc.db.transaction() as session:
            again = email_outbox.mark_failed(session, mid, str(exc), permanent=exc.permanent,
                                             max_attempts=svc.settings.email_max_attempts)
        log.warning("email not sent", extra={"email_id": message_id, "attempt":
                    claimed.attempts, "retry": again, "error": str(exc)})
        if again:
            self.apply_async(args=[message_id],
                             countdown=RETRY_BASE_S * 2 ** (claimed.attempts - 1))
        return False
    with svc.db.transaction() as session:
        email_outbox.mark_sent(session, mid, datetime.now(UTC))
    log.info("email sent", extra={"email_id": message_id})
    return True


@shared_task(name=RESET_TASK, bind=True, time_limit=30, soft_time_limit=20,
             ignore_result=True, **RETRY)
def mail_password_reset(self: ServicesTask, email: str) -> bool:
    """Follow-up of an accepted reset request: a link for the address's account, if it has
    one, queued in the outbox (and sent after this commit). A duplicate run mails a second
    link that retires the first: harmless."""
    svc = self.services
    with svc.db.transaction() as session:
        return account_links.mail_password_reset(
            session, email, account_links.LinkConfig.from_settings(svc.settings))


@shared_task(name="notifications.sweep_email", bind=True, time_limit=60, soft_time_limit=50,
             ignore_result=True)
def sweep_email(self: ServicesTask) -> int:
    """Beat: send the queued mails whose send was lost; give up the ones stuck mid-send.
    Returns how many sends were started."""
    svc = self.services
    now = datetime.now(UTC)
    with svc.db.transaction() as session:
        stuck = email_outbox.abandon_stuck(session, now - timedelta(seconds=STUCK_AFTER_S))
        due = email_outbox.due(session, now - timedelta(seconds=SWEEP_GRACE_S), SWEEP_BATCH)
    if stuck:
        log.error("emails given up: their sender stopped mid-send", extra={"count": stuck})
    for mid in due:
        self.app.send_task(SEND_TASK, args=[str(mid)], ignore_result=True)
    return len(due)


def send_after_commit(celery: Celery, session: Session) -> None:
    """``Database.on_commit`` hook: send the mails this commit queued, and hand the reset
    requests it accepted to a worker. retry=False: a dead broker must not stall the request;
    the sweep sends queued mails later (a reset request lost with the broker is asked again
    by its person: the answer promised nothing)."""
    for mid in committed_notes(session, email_outbox.EMAIL_QUEUED):
        celery.send_task(SEND_TASK, args=[str(mid)], ignore_result=True, retry=False)
    for email in committed_notes(session, account_links.RESET_REQUESTED):
        celery.send_task(RESET_TASK, args=[email], ignore_result=True, retry=False)
