"""Password reset and email verification over HTTP (links read from the email outbox; the
SMTP path itself is tests/tasks/test_email_delivery.py): each bad input and each way a link can
be wrong, the same answer for an unknown address, every session ended by a reset."""

from __future__ import annotations

import re
import statistics
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select
from sqlalchemy.orm import Session

from api import create_app
from db.models import AccountLink, AuditEvent, EmailMessage, User
from tests.auth_helpers import auth_headers, register_body
from tests.conftest import make_settings
from tests.factories import PASSWORD, UserFactory

RESET = "/api/v1/auth/password-reset"
CONFIRM = "/api/v1/auth/password-reset/confirm"
VERIFY = "/api/v1/auth/email-verification"
VERIFY_CONFIRM = "/api/v1/auth/email-verification/confirm"
LOGIN = "/api/v1/auth/login"
ME = "/api/v1/users/me"
NEW_PASSWORD = "harbour-lantern-quietly-47"
TOKEN_IN_LINK = re.compile(r"https?://\S+?[?&]token=([A-Za-z0-9_.-]+)")


def _mails(session: Session, recipient: str) -> list[EmailMessage]:
    return list(session.scalars(select(EmailMessage).where(EmailMessage.recipient == recipient)
                                .order_by(EmailMessage.created_at)))


def _token_of(mail: EmailMessage) -> str:
    assert mail.body is not None
    found = TOKEN_IN_LINK.search(mail.body)
    assert found, mail.body
    return found.group(1)


def _run_reset_task(client: FlaskClient, email: str) -> bool:
    """What the worker does with an accepted request, run here, in the test's transaction
    (the send after commit went to a broker no worker of this suite reads)."""
    celery = client.application.extensions["celery"]
    return bool(celery.tasks["notifications.mail_password_reset"].apply(args=[email]).get())


def _request_reset(client: FlaskClient, session: Session, user: User) -> str:
    response = client.post(RESET, json={"email": user.email})
    assert response.status_code == 202, response.json
    assert _run_reset_task(client, user.email)
    return _token_of(_mails(session, user.email)[-1])


def _error(response: Any) -> dict[str, Any]:
    error: dict[str, Any] = response.json["error"]
    return error


# ------------------------------------------------------------------------ password reset


def test_reset_ends_every_session_and_the_new_password_signs_in(
        client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    old_access = auth_headers(user)
    assert client.get(ME, headers=old_access).status_code == 200
    token = _request_reset(client, db_session, user)
    mail = _mails(db_session, user.email)[-1]
    assert mail.kind == "password_reset" and mail.state in ("queued", "sent")
    assert mail.body and "http://127.0.0.1:8000/reset-password?token=" in mail.body

    # Hashed at rest: the secret half of the token is nowhere in the link table.
    link = db_session.scalars(select(AccountLink).where(AccountLink.user_id == user.id)).one()
    assert token.split(".", 1)[1] not in (link.secret_sha256, link.id.hex)
    assert len(link.secret_sha256) == 64

    done = client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD})
    assert done.status_code == 200, done.json
    assert done.json["data"] == {"passwordReset": True}

    refused = client.get(ME, headers=old_access)
    assert refused.status_code == 401 and _error(refused)["code"] == "TOKEN_REVOKED"
    assert client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code \
        == 401
    login = client.post(LOGIN, json={"email": user.email, "password": NEW_PASSWORD})
    assert login.status_code == 200
    # Following the mailed link proved the address too.
    assert login.json["data"]["user"]["emailVerified"] is True
    events = [e.event for e in db_session.scalars(
        select(AuditEvent).where(AuditEvent.subject_id == user.id))]
    assert "auth.password_reset_mailed" in events and "user.password_reset" in events


def test_a_used_link_is_refused(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    token = _request_reset(client, db_session, user)
    assert client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD}) \
        .status_code == 200
    again = client.post(CONFIRM, json={"token": token, "newPassword": "another-" + NEW_PASSWORD})
    assert again.status_code == 400 and _error(again)["code"] == "LINK_USED"
    assert client.post(LOGIN, json={"email": user.email, "password": NEW_PASSWORD}) \
        .status_code == 200


def test_an_expired_link_is_refused(client: FlaskClient, db_session: Session,
                                    app: Flask) -> None:
    user = UserFactory()
    start = datetime.now(UTC)
    with freeze_time(start):
        token = _request_reset(client, db_session, user)
    ttl = app.extensions["taplive"].settings.password_reset_ttl_s
    with freeze_time(start + timedelta(seconds=ttl - 5)):
        # Still valid just before: proves the link was good and only time broke it. A weak
        # password does not spend the link.
        weak = client.post(CONFIRM, json={"token": token, "newPassword": "password1"})
        assert _error(weak)["code"] == "WEAK_PASSWORD"
    with freeze_time(start + timedelta(seconds=ttl + 1)):
        late = client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD})
    assert late.status_code == 400 and _error(late)["code"] == "LINK_EXPIRED"
    assert _error(late)["details"] == {"token": [_error(late)["message"]]}
    assert client.post(LOGIN, json={"email": user.email, "password": PASSWORD}).status_code \
        == 200


@pytest.mark.parametrize("mangle", [
    pytest.param(lambda t: t[:-4] + ("AAAA" if not t.endswith("AAAA") else "BBBB"),
                 id="wrong-secret"),
    pytest.param(lambda t: "0" * 32 + "." + t.split(".", 1)[1], id="unknown-link"),
    pytest.param(lambda t: t.split(".", 1)[0], id="no-secret"),
    pytest.param(lambda t: "not-a-token", id="garbage"),
    pytest.param(lambda t: t + "x" * 200, id="too-long"),
])
def test_a_wrong_token_is_refused(client: FlaskClient, db_session: Session, mangle: Any) -> None:
    user = UserFactory()
    token = _request_reset(client, db_session, user)
    wrong = client.post(CONFIRM, json={"token": mangle(token), "newPassword": NEW_PASSWORD})
    assert wrong.status_code == 400
    assert _error(wrong)["code"] in ("LINK_INVALID", "VALIDATION_ERROR")
    assert "token" in _error(wrong)["details"]
    # The real token still works: a wrong guess spends nothing.
    assert client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD}) \
        .status_code == 200


def test_a_verification_token_does_not_reset_a_password(client: FlaskClient,
                                                        db_session: Session) -> None:
    created = client.post("/api/v1/auth/register", json=register_body())
    email = created.json["data"]["user"]["email"]
    token = _token_of(_mails(db_session, email)[0])
    wrong = client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD})
    assert wrong.status_code == 400 and _error(wrong)["code"] == "LINK_INVALID"


def test_a_newer_link_retires_the_older(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    first = _request_reset(client, db_session, user)
    second = _request_reset(client, db_session, user)
    old = client.post(CONFIRM, json={"token": first, "newPassword": NEW_PASSWORD})
    assert old.status_code == 400 and _error(old)["code"] == "LINK_USED"
    assert client.post(CONFIRM, json={"token": second, "newPassword": NEW_PASSWORD}) \
        .status_code == 200


def test_a_weak_password_is_refused_and_the_link_stays_usable(
        client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    token = _request_reset(client, db_session, user)
    for weak, hint in (("short", "at least"), ("password123", None),
                       (user.username + "2024", None)):
        refused = client.post(CONFIRM, json={"token": token, "newPassword": weak})
        assert refused.status_code == 400, weak
        error = _error(refused)
        assert error["code"] == "WEAK_PASSWORD" and error["details"]["newPassword"]
        if hint:
            assert hint in " ".join(error["details"]["newPassword"])
    old_session = auth_headers(user)
    assert client.get(ME, headers=old_session).status_code == 200  # nothing was revoked
    assert client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD}) \
        .status_code == 200


def test_an_unknown_address_gets_the_same_answer(client: FlaskClient,
                                                 db_session: Session) -> None:
    user = UserFactory()
    known = client.post(RESET, json={"email": user.email})
    unknown = client.post(RESET, json={"email": "nobody-here@example.test"})
    assert known.status_code == unknown.status_code == 202
    assert known.json["data"] == unknown.json["data"]
    assert set(known.headers.keys()) == set(unknown.headers.keys())
    # Both were accepted the same way: one audit event each, naming nobody.
    requested = list(db_session.scalars(select(AuditEvent).where(
        AuditEvent.event == "auth.password_reset_requested")))
    assert len(requested) == 2 and {e.subject_id for e in requested} == {None}
    # The worker mails the account's owner, and nobody for the unknown address.
    assert _run_reset_task(client, user.email) is True
    assert _run_reset_task(client, "nobody-here@example.test") is False
    assert _mails(db_session, "nobody-here@example.test") == []
    assert len(_mails(db_session, user.email)) == 1


def test_an_unknown_address_takes_about_as_long(client: FlaskClient) -> None:
    """The answer's timing does not give the account away either: the request does not even
    look the address up (a worker does, later). Interleaved, so load on the machine hits both
    series alike."""
    user = UserFactory()
    times: dict[str, list[float]] = {user.email: [], "nobody-else@example.test": []}
    for round_ in range(21):
        for email, series in times.items():
            began = time.perf_counter()
            assert client.post(RESET, json={"email": email}).status_code == 202
            if round_:  # the first round warms both paths up
                series.append((time.perf_counter() - began) * 1000)
    known, unknown = (statistics.median(series) for series in times.values())
    print(f"reset request median: known {known:.2f} ms, unknown {unknown:.2f} ms")
    assert abs(known - unknown) < max(5.0, 0.5 * unknown), (known, unknown)


@pytest.mark.parametrize(("path", "body", "field"), [
    (RESET, {}, "email"),
    (RESET, {"email": "not-an-address"}, "email"),
    (RESET, {"email": 42}, "email"),
    (CONFIRM, {"newPassword": NEW_PASSWORD}, "token"),
    (CONFIRM, {"token": "", "newPassword": NEW_PASSWORD}, "token"),
    (CONFIRM, {"token": "abc.def"}, "newPassword"),
    (CONFIRM, {"token": "abc.def", "newPassword": "x" * 300}, "newPassword"),
    (VERIFY_CONFIRM, {}, "token"),
    (VERIFY_CONFIRM, {"token": 7}, "token"),
])
def test_bad_input_is_a_400_naming_the_field(client: FlaskClient, path: str,
                                             body: dict[str, Any], field: str) -> None:
    response = client.post(path, json=body)
    assert response.status_code == 400, response.json
    error = _error(response)
    assert error["code"] == "VALIDATION_ERROR" and field in error["details"]


def test_not_json_is_a_415_in_the_envelope(client: FlaskClient) -> None:
    response = client.post(RESET, data="email=a@b.test",
                           headers={"Content-Type": "text/plain"})
    assert response.status_code == 415 and _error(response)["code"]


# -------------------------------------------------------------------- email verification


def test_registration_mails_a_verification_link(client: FlaskClient,
                                                db_session: Session) -> None:
    created = client.post("/api/v1/auth/register", json=register_body())
    assert created.status_code == 201
    user = created.json["data"]["user"]
    assert user["emailVerified"] is False
    headers = {"Authorization": f"Bearer {created.json['data']['accessToken']}"}
    [mail] = _mails(db_session, user["email"])
    assert mail.kind == "email_verification"
    assert "/verify-email?token=" in (mail.body or "")

    confirmed = client.post(VERIFY_CONFIRM, json={"token": _token_of(mail)})
    assert confirmed.status_code == 200 and confirmed.json["data"] == {"emailVerified": True}
    assert client.get(ME, headers=headers).json["data"]["user"]["emailVerified"] is True

    again = client.post(VERIFY_CONFIRM, json={"token": _token_of(mail)})
    assert again.status_code == 400 and _error(again)["code"] == "LINK_USED"
    already = client.post(VERIFY, headers=headers)
    assert already.status_code == 409 and _error(already)["code"] == "EMAIL_ALREADY_VERIFIED"


def test_a_new_verification_mail_on_request(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    assert client.post(VERIFY).status_code == 401
    sent = client.post(VERIFY, headers=auth_headers(user))
    assert sent.status_code == 202, sent.json
    assert sent.json["data"]["accepted"] is True
    first = _token_of(_mails(db_session, user.email)[-1])
    assert client.post(VERIFY, headers=auth_headers(user)).status_code == 202
    second = _token_of(_mails(db_session, user.email)[-1])
    assert _error(client.post(VERIFY_CONFIRM, json={"token": first}))["code"] == "LINK_USED"
    assert client.post(VERIFY_CONFIRM, json={"token": second}).status_code == 200
    db_session.refresh(user)
    assert user.email_verified_at is not None


def test_an_expired_verification_link_is_refused(client: FlaskClient, db_session: Session,
                                                 app: Flask) -> None:
    user = UserFactory()
    start = datetime.now(UTC)
    with freeze_time(start):
        assert client.post(VERIFY, headers=auth_headers(user)).status_code == 202
    token = _token_of(_mails(db_session, user.email)[-1])
    ttl = app.extensions["taplive"].settings.email_verification_ttl_s
    with freeze_time(start + timedelta(seconds=ttl + 1)):
        late = client.post(VERIFY_CONFIRM, json={"token": token})
    assert late.status_code == 400 and _error(late)["code"] == "LINK_EXPIRED"


def test_erasure_forgets_links_and_mails(client: FlaskClient, db_session: Session) -> None:
    user = UserFactory()
    token = _request_reset(client, db_session, user)
    email = user.email
    erased = client.delete(ME, json={"password": PASSWORD}, headers=auth_headers(user))
    assert erased.status_code == 200, erased.json
    assert _mails(db_session, email) == []
    refused = client.post(CONFIRM, json={"token": token, "newPassword": NEW_PASSWORD})
    assert _error(refused)["code"] == "LINK_INVALID"


# ---------------------------------------------------------------------------- rate limits


@pytest.fixture(scope="module")
def limited(pg_url: str) -> Flask:
    return create_app(make_settings(pg_url, rate_limit_enabled=True,
                                    rate_limit_recovery_ip="4 per 15 minutes",
                                    rate_limit_recovery_account="2 per 15 minutes"))


@pytest.fixture
def limited_client(limited: Flask, db_session: Session) -> Iterator[FlaskClient]:
    database = limited.extensions["taplive"].db
    database.bind_to_connection(db_session.connection())
    try:
        yield limited.test_client()
    finally:
        database.unbind()


def test_reset_requests_are_limited_per_address_known_or_not(limited_client: FlaskClient,
                                                            redis_client: Any) -> None:
    user = UserFactory()
    for address, email in (("203.0.113.201", user.email), ("203.0.113.202", "ghost@example.test")):
        env = {"REMOTE_ADDR": address}
        answers = [limited_client.post(RESET, json={"email": email}, environ_base=env)
                   .status_code for _ in range(3)]
        assert answers == [202, 202, 429], (email, answers)
    # Per IP (4), whichever addresses it asks about.
    env = {"REMOTE_ADDR": "203.0.113.203"}
    answers = [limited_client.post(RESET, json={"email": f"n{i}@example.test"},
                                   environ_base=env).status_code for i in range(5)]
    assert answers == [202, 202, 202, 202, 429]
    refused = limited_client.post(RESET, json={"email": "x@example.test"}, environ_base=env)
    assert _error(refused)["code"] == "RATE_LIMITED" and refused.headers["Retry-After"]


def test_verification_mails_are_limited_per_user(limited_client: FlaskClient,
                                                 redis_client: Any) -> None:
    user = UserFactory()
    headers = auth_headers(user)
    answers = [limited_client.post(VERIFY, headers=headers).status_code for _ in range(3)]
    assert answers == [202, 202, 429]
