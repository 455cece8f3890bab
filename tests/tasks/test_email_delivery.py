"""The email outbox against a real SMTP server (aiosmtpd, started here on a free port) and a
real Celery worker: request -> task sends -> the message is read from the server -> the link's
token is followed. Also: a mail goes at most once, temporary and permanent SMTP failures, a
sender that died mid-send, and the log instead of SMTP when SMTP_HOST is unset."""

from __future__ import annotations

import email
import logging
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from flask import Flask
from sqlalchemy import update

from api import create_app
from db.models import EmailMessage
from domain import email_outbox
from tasks.mail import SEND_TASK
from tests.auth_helpers import register_body
from tests.conftest import discard_committed_data, make_settings

PUBLIC_URL = "https://taplive.example"
NEW_PASSWORD = "harbour-lantern-quietly-47"


@dataclass
class Inbox:
    """What the SMTP server received, and what it answers to DATA."""

    port: int
    reply: str = "250 Message accepted"
    messages: list[Message] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.reply.startswith("250"):
            with self.lock:
                self.messages.append(email.message_from_bytes(envelope.content))
        return self.reply

    def wait_for(self, count: int, timeout: float = 20.0) -> list[Message]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.messages) >= count:
                    return list(self.messages)
            time.sleep(0.05)
        raise AssertionError(f"{len(self.messages)} of {count} mails arrived")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox(port=_free_port())
    controller = Controller(box, hostname="127.0.0.1", port=box.port)
    controller.start()
    try:
        yield box
    finally:
        controller.stop()


@pytest.fixture
def live_app(pg_url: str, inbox: Inbox) -> Iterator[Flask]:
    """Overrides conftest's: the app (and so ``live_worker``) sends through ``inbox``."""
    app = create_app(make_settings(pg_url, db_pool_size=5, smtp_host="127.0.0.1",
                                   smtp_port=inbox.port, smtp_tls="none",
                                   app_public_url=PUBLIC_URL,
                                   email_sender="TapLive <no-reply@taplive.example>"))
    yield app
    discard_committed_data(app)


def _text(message: Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


def _token(message: Message, path: str) -> str:
    found = re.search(re.escape(PUBLIC_URL + path) + r"\?token=([A-Za-z0-9_.-]+)",
                      _text(message))
    assert found, _text(message)
    return found.group(1)


def _rows(app: Flask) -> list[EmailMessage]:
    with app.extensions["taplive"].db.transaction() as session:
        rows = list(session.query(EmailMessage).order_by(EmailMessage.created_at))
        session.expunge_all()
        return rows


def test_reset_through_a_real_smtp_server(live_app: Flask, live_worker: Any,
                                          inbox: Inbox) -> None:
    client = live_app.test_client()
    body = register_body()
    created = client.post("/api/v1/auth/register", json=body)
    assert created.status_code == 201
    old = {"Authorization": f"Bearer {created.json['data']['accessToken']}"}

    # Registration's verification mail, followed.
    [welcome] = inbox.wait_for(1)
    assert welcome["To"] == body["email"] and welcome["From"].endswith("<no-reply@taplive.example>")
    verified = client.post("/api/v1/auth/email-verification/confirm",
                           json={"token": _token(welcome, "/verify-email")})
    assert verified.status_code == 200
    assert client.get("/api/v1/users/me", headers=old).json["data"]["user"]["emailVerified"]

    # A second session, to see that the reset ends every one of them.
    login = client.post("/api/v1/auth/login", json={"email": body["email"],
                                                    "password": body["password"]})
    other = {"Authorization": f"Bearer {login.json['data']['accessToken']}"}
    refresh = {"Authorization": f"Bearer {login.json['data']['refreshToken']}"}

    assert client.post("/api/v1/auth/password-reset",
                       json={"email": str(body["email"]).upper()}).status_code == 202
    reset_mail = inbox.wait_for(2)[1]
    assert reset_mail["Subject"] == "Reset your TapLive password"
    token = _token(reset_mail, "/reset-password")
    done = client.post("/api/v1/auth/password-reset/confirm",
                       json={"token": token, "newPassword": NEW_PASSWORD})
    assert done.status_code == 200, done.json

    for headers, path in ((old, "/api/v1/users/me"), (other, "/api/v1/users/me"),
                          (refresh, "/api/v1/auth/refresh")):
        method = client.post if path.endswith("refresh") else client.get
        refused = method(path, headers=headers)
        assert refused.status_code == 401 and refused.json["error"]["code"] == "TOKEN_REVOKED"
    assert client.post("/api/v1/auth/login", json={"email": body["email"],
                                                   "password": body["password"]}) \
        .status_code == 401
    assert client.post("/api/v1/auth/login", json={"email": body["email"],
                                                   "password": NEW_PASSWORD}).status_code == 200
    again = client.post("/api/v1/auth/password-reset/confirm",
                        json={"token": token, "newPassword": "other-" + NEW_PASSWORD})
    assert again.json["error"]["code"] == "LINK_USED"

    # Sent once each; the link (its secret) is gone from the outbox once sent.
    rows = _rows(live_app)
    assert [(r.kind, r.state, r.attempts, r.body) for r in rows] == [
        ("email_verification", "sent", 1, None), ("password_reset", "sent", 1, None)]

    # At most once: a duplicate task for a sent mail sends nothing.
    celery = live_worker
    assert celery.tasks[SEND_TASK].apply(args=[str(rows[1].id)]).get() is False
    time.sleep(0.5)
    assert len(inbox.messages) == 2


def test_an_unknown_address_gets_no_mail(live_app: Flask, live_worker: Any,
                                         inbox: Inbox) -> None:
    client = live_app.test_client()
    created = client.post("/api/v1/auth/register", json=register_body())
    inbox.wait_for(1)
    answer = client.post("/api/v1/auth/password-reset", json={"email": "ghost@example.test"})
    assert answer.status_code == 202
    known = client.post("/api/v1/auth/password-reset",
                        json={"email": created.json["data"]["user"]["email"]})
    assert known.json == {**answer.json, "meta": known.json["meta"]}
    inbox.wait_for(2)  # the known address's mail arrives; by then the ghost's task is long done
    time.sleep(0.5)
    assert [m["To"] for m in inbox.messages].count("ghost@example.test") == 0
    assert len(inbox.messages) == 2


def _queue(app: Flask, recipient: str = "someone@example.test") -> uuid.UUID:
    with app.extensions["taplive"].db.transaction() as session:
        row = email_outbox.queue(session, user_id=None, kind="test", recipient=recipient,
                                 subject="Hello", body="A body with a link\n")
        return row.id


def _send(app: Flask, message_id: uuid.UUID) -> bool:
    task = app.extensions["celery"].tasks[SEND_TASK]
    return bool(task.apply(args=[str(message_id)]).get())


def test_a_temporary_failure_is_retried_and_a_permanent_one_gives_up(
        live_app: Flask, inbox: Inbox) -> None:
    mid = _queue(live_app)
    inbox.reply = "451 4.3.0 Try again later"
    assert _send(live_app, mid) is False
    [row] = _rows(live_app)
    assert (row.state, row.attempts, row.body) == ("queued", 1, "A body with a link\n")
    assert row.last_error and "451" in row.last_error

    inbox.reply = "550 5.1.1 No such mailbox"
    assert _send(live_app, mid) is False
    [row] = _rows(live_app)
    assert (row.state, row.attempts, row.body) == ("failed", 2, None)
    assert row.last_error and "550" in row.last_error
    inbox.reply = "250 OK"
    assert _send(live_app, mid) is False  # given up is final
    assert inbox.messages == []


def test_unreachable_server_then_success(live_app: Flask, inbox: Inbox) -> None:
    mid = _queue(live_app)
    settings = live_app.extensions["taplive"].settings
    real_port = settings.smtp_port
    settings.smtp_port = _free_port()  # nobody listens there
    try:
        assert _send(live_app, mid) is False
    finally:
        settings.smtp_port = real_port
    [row] = _rows(live_app)
    assert row.state == "queued" and row.attempts == 1
    assert _send(live_app, mid) is True
    [row] = _rows(live_app)
    assert (row.state, row.attempts, row.body) == ("sent", 2, None)
    assert len(inbox.wait_for(1)) == 1


def test_a_mail_stuck_mid_send_is_given_up_not_resent(live_app: Flask, inbox: Inbox) -> None:
    mid = _queue(live_app)
    database = live_app.extensions["taplive"].db
    with database.transaction() as session:  # a sender claimed it, then died
        assert email_outbox.claim(session, mid, datetime.now(UTC) - timedelta(hours=1))
    assert _send(live_app, mid) is False  # claimed: nobody else sends it
    sweep = live_app.extensions["celery"].tasks["notifications.sweep_email"]
    assert sweep.apply().get() == 0
    [row] = _rows(live_app)
    assert (row.state, row.body) == ("failed", None)
    assert row.last_error == email_outbox.UNKNOWN_OUTCOME
    assert inbox.messages == []


def test_the_sweep_sends_what_lost_its_send(live_app: Flask, live_worker: Any,
                                            inbox: Inbox) -> None:
    mid = _queue(live_app)
    # As if the after-commit send had been lost: a worker may or may not have taken it yet.
    inbox.wait_for(1)
    database = live_app.extensions["taplive"].db
    with database.transaction() as session:
        session.execute(update(EmailMessage).where(EmailMessage.id == mid).values(
            state="queued", body="Lost and found\n", attempts=0, sent_at=None,
            created_at=datetime.now(UTC) - timedelta(minutes=5)))
    sweep = live_worker.tasks["notifications.sweep_email"]
    assert sweep.apply().get() == 1
    messages = inbox.wait_for(2)
    assert _text(messages[1]).strip() == "Lost and found"


@pytest.fixture
def log_app(pg_url: str) -> Iterator[Flask]:
    app = create_app(make_settings(pg_url, db_pool_size=2))  # SMTP_HOST unset
    yield app
    discard_committed_data(app)


def test_without_smtp_host_the_mail_goes_to_the_log(log_app: Flask,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    mid = _queue(log_app, "reader@example.test")
    with caplog.at_level(logging.INFO, logger="core.mailer"):
        assert _send(log_app, mid) is True
    logged = "\n".join(r.getMessage() for r in caplog.records if r.name == "core.mailer")
    assert "To: reader@example.test" in logged and "A body with a link" in logged
    [row] = _rows(log_app)
    assert row.state == "sent"
