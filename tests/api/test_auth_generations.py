"""The Redis copy of each account's token generation: revocation stays immediate, and the
copy can never be rolled back by a slow reader or outlive a lost publish."""

from __future__ import annotations

import redis
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text, update
from sqlalchemy.orm import Session

from api.auth.tokens import VERIFIER_KEY
from db.models import User
from db.session import committed_notes, note_for_commit
from domain.auth import generations
from domain.users import TOKEN_GENERATION_BUMPED
from tests.auth_helpers import auth_headers
from tests.factories import UserFactory

ME = "/api/v1/users/me"


def _redis(app: Flask) -> redis.Redis:
    client: redis.Redis = app.extensions["taplive"].redis
    return client


def _register(app: Flask) -> generations.GenerationRegister:
    register: generations.GenerationRegister = app.extensions[VERIFIER_KEY].generations
    return register


def test_the_register_only_moves_forward(app: Flask, db_session: Session) -> None:
    user = UserFactory()
    register = _register(app)
    assert register.offer(user.id, 2) == 2
    assert register.offer(user.id, 1) == 2  # a reader that read the database before the bump
    assert register.offer(user.id, 3) == 3
    assert int(_redis(app).get(generations.key(user.id)) or 0) == 3
    assert 0 < int(_redis(app).ttl(generations.key(user.id))) <= generations.GENERATION_TTL_S


def test_a_missing_copy_is_filled_from_the_database(app: Flask, client: FlaskClient,
                                                    db_session: Session) -> None:
    user = UserFactory()
    _redis(app).delete(generations.key(user.id))
    assert client.get(ME, headers=auth_headers(user, app)).status_code == 200
    assert _redis(app).get(generations.key(user.id)) == str(user.token_generation)


def test_logout_all_publishes_the_new_generation_on_commit(app: Flask, client: FlaskClient,
                                                           db_session: Session) -> None:
    user = UserFactory()
    before = user.token_generation
    headers = auth_headers(user, app)
    assert client.get(ME, headers=headers).status_code == 200
    assert client.post("/api/v1/auth/logout-all", headers=headers).status_code == 200
    assert _redis(app).get(generations.key(user.id)) == str(before + 1)
    assert client.get(ME, headers=headers).json["error"]["code"] == "TOKEN_REVOKED"
    # A reader that had read the old generation before the commit cannot bring the token back.
    _register(app).offer(user.id, before)
    assert client.get(ME, headers=headers).status_code == 401


def test_a_copy_left_stale_by_a_lost_publish_is_repaired_by_a_newer_token(
        app: Flask, client: FlaskClient, db_session: Session) -> None:
    """The bump committed but its publish was lost (process killed): Redis still holds the old
    generation. The first token of the new generation makes the API re-read the database,
    which refreshes the copy: from then on the old tokens are refused too."""
    user = UserFactory()
    old_headers = auth_headers(user, app)
    assert client.get(ME, headers=old_headers).status_code == 200
    db_session.execute(update(User).where(User.id == user.id)
                       .values(token_generation=User.token_generation + 1))
    db_session.flush()
    db_session.refresh(user)
    assert client.get(ME, headers=old_headers).status_code == 200  # the stale window
    assert client.get(ME, headers=auth_headers(user, app)).status_code == 200
    assert _redis(app).get(generations.key(user.id)) == str(user.token_generation)
    assert client.get(ME, headers=old_headers).json["error"]["code"] == "TOKEN_REVOKED"


def test_an_erased_account_with_no_copy_is_refused(app: Flask, client: FlaskClient,
                                                   db_session: Session) -> None:
    from db.types import utcnow

    user = UserFactory()
    headers = auth_headers(user, app)
    user.erased_at = utcnow()
    db_session.flush()
    _redis(app).delete(generations.key(user.id))
    assert client.get(ME, headers=headers).json["error"]["code"] == "TOKEN_REVOKED"


def test_a_rolled_back_bump_is_never_published(app: Flask) -> None:
    database = app.extensions["taplive"].db
    seen: list[object] = []
    database.on_commit(lambda s: seen.extend(committed_notes(s, TOKEN_GENERATION_BUMPED)))
    try:
        session = database.session()
        session.execute(text("SELECT 1"))  # bumps happen inside a transaction that changed a row
        note_for_commit(session, TOKEN_GENERATION_BUMPED, ("rolled back", 1))
        session.rollback()
        session.execute(text("SELECT 1"))
        session.commit()
        session.execute(text("SELECT 1"))
        note_for_commit(session, TOKEN_GENERATION_BUMPED, ("committed", 2))
        session.commit()
        session.commit()  # notes belong to one transaction: not seen again
    finally:
        database._after_commit.pop()
        database.session.remove()
    assert seen == [("committed", 2)]
