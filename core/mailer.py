"""Outgoing mail: SMTP in production, the log in standalone mode (no SMTP_HOST).

Standard library only (``smtplib``, ``email.message``). A mailer sends one message or raises
``MailError``, saying whether trying again could help (a 4xx reply, a dropped connection) or
not (a 5xx reply, a refused recipient): the outbox retries the first kind only.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Protocol

from core.config import Settings

log = logging.getLogger(__name__)


class MailError(Exception):
    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True)
class Mail:
    recipient: str
    subject: str
    body: str


class Mailer(Protocol):
    def send(self, mail: Mail) -> None: ...


def build_message(sender: str, mail: Mail) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = mail.recipient
    message["Subject"] = mail.subject
    message["Message-ID"] = make_msgid(domain=sender.rsplit("@", 1)[-1].strip(">") or None)
    message.set_content(mail.body)
    return message


class SmtpMailer:
    """One SMTP connection per mail: mails are rare (a reset, a sign-up), and a pooled
    connection would need keep-alive handling for little gain."""

    def __init__(self, *, host: str, port: int, tls: str, username: str | None,
                 password: str | None, sender: str, timeout_s: float) -> None:
        self.host, self.port, self.tls = host, port, tls
        self.username, self.password = username, password
        self.sender, self.timeout_s = sender, timeout_s

    def send(self, mail: Mail) -> None:
        message = build_message(self.sender, mail)
        try:
            with self._connect() as smtp:
                if self.username:
                    smtp.login(self.username, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPRecipientsRefused as exc:
            raise MailError(f"recipient refused: {exc.recipients}", permanent=True) from exc
        except smtplib.SMTPResponseException as exc:
            raise MailError(f"SMTP {exc.smtp_code}: {exc.smtp_error!r}",
                            permanent=exc.smtp_code >= 500) from exc
        except (smtplib.SMTPException, OSError) as exc:  # connection refused, timeout, TLS
            raise MailError(f"{type(exc).__name__}: {exc}", permanent=False) from exc

    def _connect(self) -> smtplib.SMTP:
        context = ssl.create_default_context()
        if self.tls == "ssl":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout_s,
                                    context=context)
        smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
        try:
            if self.tls == "starttls":
                smtp.starttls(context=context)
        except BaseException:
            smtp.close()
            raise
        return smtp


class LogMailer:
    """Standalone mode and development: the mail, link included, goes to the log, which is
    where the person running the service reads it."""

    def __init__(self, sender: str) -> None:
        self.sender = sender

    def send(self, mail: Mail) -> None:
        log.info("email (SMTP_HOST unset, not sent)\nFrom: %s\nTo: %s\nSubject: %s\n\n%s",
                 self.sender, mail.recipient, mail.subject, mail.body,
                 extra={"email_to": mail.recipient, "email_subject": mail.subject})


def make_mailer(settings: Settings) -> Mailer:
    if not settings.smtp_host:
        return LogMailer(settings.email_sender)
    return SmtpMailer(host=settings.smtp_host, port=settings.smtp_port, tls=settings.smtp_tls,
                      username=settings.smtp_username, password=settings.smtp_password,
                      sender=settings.email_sender, timeout_s=settings.smtp_timeout_s)
