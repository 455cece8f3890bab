"""Stream sessions and nginx-rtmp's callbacks through the API, on PostgreSQL (the ingest itself,
with ffmpeg, is tests/streams/)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from freezegun import freeze_time
from sqlalchemy import select

from core.enums import OrderStatus
from db.models import Order, StreamSegment, StreamSession, User
from domain import streams
from domain.stream_sessions import StreamRules
from tests.api.orders_helpers import accepted_order, call, committed_users
from tests.conftest import discard_committed_data, make_settings

NYC = (40.7128, -74.0060)  # the order_body() location
MIN_S, GRACE_S = 30, 60


@pytest.fixture
def app(pg_url: str) -> Iterator[Flask]:
    """Requests commit; the stream is required to complete (as in production)."""
    app = create_stream_app(pg_url)
    yield app
    discard_committed_data(app)


def create_stream_app(pg_url: str, **overrides: Any) -> Flask:
    from api import create_app

    return create_app(make_settings(pg_url, stream_proof_required=True,
                                    stream_min_seconds=MIN_S, stream_grace_s=GRACE_S,
                                    **overrides))


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def people(app: Flask) -> dict[str, User]:
    provider = {"provider": True, "verified": True}
    return committed_users(app, creator={}, provider=provider, other=provider,
                           admin={"admin": True})


def _secret(app: Flask) -> str:
    return str(app.extensions["taplive"].settings.stream_callback_key)


def _callback(client: FlaskClient, app: Flask, hook: str, name: str, clientid: str,
              secret: str | None = None, remote: str = "127.0.0.1") -> Any:
    return client.post(f"/internal/rtmp/{hook}?secret={secret or _secret(app)}",
                       data={"app": "live", "name": name, "clientid": clientid,
                             "call": hook.removeprefix("on_"), "addr": "10.0.0.9"},
                       environ_base={"REMOTE_ADDR": remote})


def _here(client: FlaskClient, provider: User, lat: float = NYC[0]) -> None:
    assert call(client, "PUT", "/providers/me/location", provider,
                {"latitude": lat, "longitude": NYC[1]}).status_code == 200


def _stream(client: FlaskClient, order_id: str, user: User, status: int = 200) -> Any:
    response = call(client, "GET", f"/orders/{order_id}/stream", user)
    assert response.status_code == status, response.json
    return response.json["data"]["stream"] if status == 200 else response.json


def _order(app: Flask, order_id: str) -> Order:
    with app.extensions["taplive"].db.transaction() as session:
        order = session.get(Order, order_id)
        assert order is not None
        session.expunge(order)
        return order


def _session(app: Flask, order_id: str) -> StreamSession:
    with app.extensions["taplive"].db.transaction() as session:
        found = session.scalars(select(StreamSession).where(
            StreamSession.order_id == order_id).order_by(StreamSession.created_at.desc())
        ).first()
        assert found is not None
        session.expunge(found)
        return found


# ------------------------------------------------------------------------- what each sees
def test_each_participant_sees_what_is_theirs(client: FlaskClient, app: Flask,
                                              people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    mine = _stream(client, order["id"], people["provider"])
    assert mine["status"] == "ready" and mine["ingestUrl"].startswith("rtmp://")
    assert mine["streamKey"].startswith("sk_") and "playbackUrl" not in mine
    theirs = _stream(client, order["id"], people["creator"])
    assert "streamKey" not in theirs and "ingestUrl" not in theirs
    assert theirs["playbackUrl"].endswith(f"/{_session(app, order['id']).playback_id}.m3u8")
    assert mine["streamKey"] not in theirs["playbackUrl"]
    admin = _stream(client, order["id"], people["admin"])
    assert set(admin) == {"status", "facts", "segments"}
    assert _stream(client, order["id"], people["other"], 404)["error"]["code"] == "NOT_FOUND"
    # The key is the same each time it is shown; it names the session, signed.
    assert _stream(client, order["id"], people["provider"])["streamKey"] == mine["streamKey"]
    assert _session(app, order["id"]).id.hex in mine["streamKey"]


def test_a_pending_order_has_no_stream_yet(client: FlaskClient,
                                           people: dict[str, User]) -> None:
    created = call(client, "POST", "/orders", people["creator"], {
        "title": "t", "location": {"latitude": NYC[0], "longitude": NYC[1]},
        "serviceRadius": 500, "baseAmount": "25.00", "currency": "USD"})
    assert created.status_code == 201, created.json
    answer = _stream(client, created.json["data"]["order"]["id"], people["creator"], 404)
    assert answer["error"]["code"] == "STREAM_NOT_FOUND"


# ------------------------------------------------------------------------------ callbacks
def test_a_publish_with_the_key_starts_the_order(client: FlaskClient, app: Flask,
                                                 people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    _here(client, people["provider"])
    answer = _callback(client, app, "on_publish", key, "11")
    playback = _session(app, order["id"]).playback_id
    assert answer.status_code == 302 and answer.headers["Location"] == playback
    assert _order(app, order["id"]).status is OrderStatus.ACTIVE
    # The same callback again (nginx retried): allowed, nothing doubled.
    assert _callback(client, app, "on_publish", key, "11").status_code == 302
    stream = _session(app, order["id"])
    assert stream.status == "live" and stream.client_id == "11"
    with app.extensions["taplive"].db.transaction() as session:
        assert len(list(session.scalars(select(StreamSegment)))) == 1


@pytest.mark.parametrize("problem", ["bad secret", "foreign peer", "unknown key",
                                     "no name"])
def test_callbacks_that_are_not_from_our_ingest_or_not_a_key_are_refused(
        client: FlaskClient, app: Flask, people: dict[str, User], problem: str) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    _here(client, people["provider"])
    args: dict[str, Any] = {"name": key, "clientid": "1"}
    if problem == "bad secret":
        args["secret"] = "x" * 64
    elif problem == "foreign peer":
        args["remote"] = "203.0.113.7"
    elif problem == "unknown key":
        args["name"] = key[:-2] + ("aa" if not key.endswith("aa") else "bb")
    else:
        args["name"] = ""
    answer = _callback(client, app, "on_publish", **args)
    assert answer.status_code in (400, 403)
    assert _order(app, order["id"]).status is OrderStatus.ACCEPTED


def test_outside_the_geofence_or_without_a_position_the_publish_is_refused(
        client: FlaskClient, app: Flask, people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    assert _callback(client, app, "on_publish", key, "1").status_code == 403  # no position
    _here(client, people["provider"], lat=NYC[0] + 0.05)  # ~5.5 km away
    assert _callback(client, app, "on_publish", key, "2").status_code == 403
    assert _order(app, order["id"]).status is OrderStatus.ACCEPTED
    _here(client, people["provider"])
    assert _callback(client, app, "on_publish", key, "3").status_code == 302


def test_a_second_publisher_on_the_same_key_is_refused(client: FlaskClient, app: Flask,
                                                       people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    _here(client, people["provider"])
    assert _callback(client, app, "on_publish", key, "1").status_code == 302
    assert _callback(client, app, "on_publish", key, "2").status_code == 403
    # The first one's end does not let a stranger's "done" close it.
    playback = _session(app, order["id"]).playback_id
    assert _callback(client, app, "on_publish_done", playback, "2").status_code == 200
    assert _session(app, order["id"]).status == "live"


def test_a_cancelled_orders_key_is_revoked(client: FlaskClient, app: Flask,
                                           people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    assert call(client, "POST", f"/orders/{order['id']}/cancel", people["creator"],
                {"reason": "plans changed"}).status_code == 200
    _here(client, people["provider"])
    assert _callback(client, app, "on_publish", key, "1").status_code == 403
    shown = _stream(client, order["id"], people["provider"])
    assert shown["status"] == "revoked" and "streamKey" not in shown


def test_drop_and_resume_within_the_grace_keeps_one_session(
        client: FlaskClient, app: Flask, people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    _here(client, people["provider"])
    start = datetime.now(UTC)
    with freeze_time(start):
        assert _callback(client, app, "on_publish", key, "1").status_code == 302
    playback = _session(app, order["id"]).playback_id
    with freeze_time(start + timedelta(seconds=20)):
        assert _callback(client, app, "on_publish_done", playback, "1").status_code == 200
        # Twice (or late): nothing more happens.
        assert _callback(client, app, "on_publish_done", playback, "1").status_code == 200
    dropped = _session(app, order["id"])
    assert (dropped.status, dropped.published_seconds) == ("interrupted", 20)
    with freeze_time(start + timedelta(seconds=50)):
        assert _callback(client, app, "on_publish", key, "2").status_code == 302
    with freeze_time(start + timedelta(seconds=70)):
        facts = _stream(client, order["id"], people["creator"])["facts"]
        # The admin who would judge a dispute sees each publishing period.
        periods = _stream(client, order["id"], people["admin"])["segments"]
    assert facts["status"] == "live" and facts["disconnections"] == 1
    assert facts["publishedSeconds"] == 40
    assert [p["seconds"] for p in periods] == [20, 20]
    assert periods[0]["endedAt"] is not None and periods[1]["endedAt"] is None
    with app.extensions["taplive"].db.transaction() as session:
        assert session.scalar(select(StreamSession.id).where(
            StreamSession.order_id == order["id"])) is not None
        assert len(list(session.scalars(select(StreamSession)))) == 1
        assert len(list(session.scalars(select(StreamSegment)))) == 2


# ---------------------------------------------------------------------- proof of stream
def test_complete_needs_a_stream_that_ran_long_enough(client: FlaskClient, app: Flask,
                                                      people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    provider = people["provider"]
    _here(client, provider)
    assert call(client, "POST", f"/orders/{order['id']}/start", provider).status_code == 200
    refused = call(client, "POST", f"/orders/{order['id']}/complete", provider)
    assert refused.status_code == 409 and refused.json["error"]["code"] == "STREAM_NOT_RUN"
    key = _stream(client, order["id"], provider)["streamKey"]
    start = datetime.now(UTC)
    with freeze_time(start):
        assert _callback(client, app, "on_publish", key, "1").status_code == 302
    with freeze_time(start + timedelta(seconds=MIN_S - 5)):
        too_soon = call(client, "POST", f"/orders/{order['id']}/complete", provider)
        assert too_soon.status_code == 409
    with freeze_time(start + timedelta(seconds=MIN_S + 1)):
        done = call(client, "POST", f"/orders/{order['id']}/complete", provider)
        assert done.status_code == 200, done.json
    stream = _session(app, order["id"])
    assert stream.status == "ended" and stream.published_seconds == MIN_S + 1
    # A finished order's key is refused.
    assert _callback(client, app, "on_publish", key, "2").status_code == 403


def test_after_the_grace_the_order_completes_by_itself(client: FlaskClient, app: Flask,
                                                       people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    _here(client, people["provider"])
    start = datetime.now(UTC)
    with freeze_time(start):
        assert _callback(client, app, "on_publish", key, "1").status_code == 302
    playback = _session(app, order["id"]).playback_id
    with freeze_time(start + timedelta(seconds=MIN_S + 10)):
        assert _callback(client, app, "on_publish_done", playback, "1").status_code == 200
    celery = app.extensions["celery"]
    with freeze_time(start + timedelta(seconds=MIN_S + 10 + GRACE_S - 1)):
        assert celery.tasks["streams.finish_idle"].apply().get() == 0  # still in the grace
    with freeze_time(start + timedelta(seconds=MIN_S + 10 + GRACE_S + 1)):
        assert celery.tasks["streams.finish_idle"].apply().get() == 1
        assert celery.tasks["streams.finish_idle"].apply().get() == 0  # twice: once
    finished = _order(app, order["id"])
    assert finished.status is OrderStatus.COMPLETED
    stream = _session(app, order["id"])
    assert stream.status == "ended"
    assert stream.ended_at == start + timedelta(seconds=MIN_S + 10)


def test_a_stream_too_short_does_not_complete_the_order(client: FlaskClient, app: Flask,
                                                        people: dict[str, User]) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    key = _stream(client, order["id"], people["provider"])["streamKey"]
    _here(client, people["provider"])
    start = datetime.now(UTC)
    with freeze_time(start):
        _callback(client, app, "on_publish", key, "1")
    playback = _session(app, order["id"]).playback_id
    with freeze_time(start + timedelta(seconds=5)):
        _callback(client, app, "on_publish_done", playback, "1")
    with freeze_time(start + timedelta(seconds=5 + GRACE_S + 1)):
        assert app.extensions["celery"].tasks["streams.finish_idle"].apply().get() == 0
    assert _order(app, order["id"]).status is OrderStatus.ACTIVE
    assert _session(app, order["id"]).status == "interrupted"  # may still publish again


def test_the_domain_publish_is_safe_for_an_unknown_done(app: Flask) -> None:
    with app.extensions["taplive"].db.transaction() as session:
        secret = app.extensions["taplive"].settings.secret_key
        now = datetime.now(UTC)
        assert streams.publish_done(session, "pb_nope", "1", now, secret) is None
        assert streams.publish_done(session, "sk_nope", "1", now, secret) is None
        rules = StreamRules.from_settings(app.extensions["taplive"].settings)
        assert streams.idle_sessions(session, rules, datetime.now(UTC)) == []


# ------------------------------------------------------------------ standalone CLI fallback
@pytest.fixture
def served(app: Flask) -> Iterator[str]:
    """The app on a real loopback port, as `make run` serves it: the CLI calls it over HTTP."""
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(5)


def _cli(app: Flask, *args: str) -> Any:
    from api.cli_streams import stream_cli

    return app.test_cli_runner().invoke(stream_cli, list(args))


def test_the_cli_drives_the_same_callbacks_without_nginx(
        client: FlaskClient, app: Flask, people: dict[str, User], served: str) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    _here(client, people["provider"])
    published = _cli(app, "publish", order["id"], "--api-url", served)
    assert published.exit_code == 0, published.output
    assert "stream live" in published.output
    assert _order(app, order["id"]).status is OrderStatus.ACTIVE
    assert _session(app, order["id"]).client_id.startswith("cli-")  # type: ignore[union-attr]
    stopped = _cli(app, "stop", order["id"], "--api-url", served)
    assert stopped.exit_code == 0, stopped.output
    assert "stream interrupted" in stopped.output
    again = _cli(app, "stop", order["id"], "--api-url", served)
    assert again.exit_code != 0 and "nothing to stop" in again.output
    resumed = _cli(app, "publish", order["id"], "--api-url", served)
    assert resumed.exit_code == 0 and "1 disconnection" in resumed.output, resumed.output


def test_the_cli_says_why_a_publish_is_refused(
        client: FlaskClient, app: Flask, people: dict[str, User], served: str) -> None:
    order = accepted_order(client, people["creator"], people["provider"])
    far = _cli(app, "publish", order["id"], "--api-url", served)  # no known position
    assert far.exit_code != 0 and "publish refused (403)" in far.output
    assert _order(app, order["id"]).status is OrderStatus.ACCEPTED
    assert call(client, "POST", f"/orders/{order['id']}/cancel", people["creator"],
                {"reason": "changed my mind"}).status_code == 200
    revoked = _cli(app, "publish", order["id"], "--api-url", served)
    assert revoked.exit_code != 0 and "revoked" in revoked.output
    missing = _cli(app, "publish", order["id"], "--api-url", "http://127.0.0.1:9")
    assert missing.exit_code != 0 and "does not answer" in missing.output
    nothing = _cli(app, "publish", "00000000-0000-0000-0000-000000000000")
    assert nothing.exit_code != 0 and "has no stream" in nothing.output
