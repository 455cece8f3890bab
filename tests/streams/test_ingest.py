"""The stream as evidence, end to end on the real ingest: ffmpeg publishes a test pattern to
nginx-rtmp, whose callbacks reach the API over HTTP; the order starts, HLS appears, the sampler
records the ingest statistics, the end completes the order and the hold is captured
(localstripe). And what the ingest must refuse."""

from __future__ import annotations

import time
import urllib.request
from collections.abc import Callable

from flask import Flask
from flask.testing import FlaskClient

from core import rtmp_server
from core.enums import OrderStatus
from db.models import User
from tests.api.orders_helpers import call
from tests.streams.conftest import (
    GRACE_S,
    Facts,
    Publisher,
    StreamedOrder,
    hls_file,
    hls_playlist,
    run_task,
    wait_until,
)

Publish = Callable[[str], Publisher]


def _live(facts: Facts, order: StreamedOrder) -> bool:
    return facts.stream(order.id).status == "live"


def _segments(playlist: str | None) -> list[str]:
    return [line for line in (playlist or "").splitlines() if line.endswith(".ts")]


def test_a_published_stream_runs_the_order_and_its_end_completes_and_captures_it(
        stream_app: Flask, client: FlaskClient, people: dict[str, User],
        rtmp: rtmp_server.RtmpServer, streamed_order: StreamedOrder, publish: Publish,
        facts: Facts) -> None:
    order = streamed_order
    held = facts.escrow(order.id)
    assert held is not None and held.state == "authorized"
    publisher = publish(order.key)
    wait_until(lambda: facts.order(order.id).status is OrderStatus.ACTIVE, 10,
               what="the publish to start the order")
    # HLS under the public playback id, never the key, with fragments in it.
    playlist = wait_until(lambda: (text := hls_playlist(rtmp, order.playback_id))
                          and _segments(text) and text, 10,
                          what="the HLS playlist with fragments")
    assert order.key not in playlist
    fragment = hls_file(rtmp, _segments(playlist)[0])
    assert fragment is not None and fragment[0] == 0x47  # an MPEG-TS sync byte
    assert order.playback_url.endswith(f"/hls/{order.playback_id}.m3u8")
    # Playable from the watch page's origin, and never a stale live playlist.
    with urllib.request.urlopen(order.playback_url, timeout=2) as response:
        assert response.headers["Access-Control-Allow-Origin"] == "*"
        assert response.headers["Cache-Control"] == "no-cache"
        assert response.headers["Content-Type"] == "application/vnd.apple.mpegurl"
    # The sampler records what nginx-rtmp reports while the stream is live.
    outcome = run_task(stream_app, "streams.sample_stats")
    assert outcome["sampled"] >= 1 and outcome["closed"] == 0
    live = facts.stream(order.id)
    assert (live.width, live.height) == (320, 240)
    assert live.bytes_in and live.bytes_in > 0 and live.bitrate_kbps and live.bitrate_kbps > 0
    shown = call(client, "GET", f"/orders/{order.id}/stream", people["creator"])
    ingest = shown.json["data"]["stream"]["facts"]["ingest"]
    assert (ingest["width"], ingest["height"]) == (320, 240) and ingest["bytesIn"] > 0
    assert publisher.running()

    publisher.stop()  # the provider stops: nginx sends on_publish_done
    wait_until(lambda: facts.stream(order.id).status == "interrupted", 10,
               what="on_publish_done to record the end")
    stopped = facts.stream(order.id)
    assert stopped.published_seconds >= 2 and stopped.last_done_at is not None
    assert facts.segments(order.id)[0].ended_at is not None
    assert run_task(stream_app, "streams.finish_idle") == 0  # still within the grace
    assert facts.order(order.id).status is OrderStatus.ACTIVE
    time.sleep(GRACE_S + 0.2)
    assert run_task(stream_app, "streams.finish_idle") == 1
    assert facts.order(order.id).status is OrderStatus.COMPLETED
    assert facts.stream(order.id).status == "ended"
    # Completion's follow-up (payments.capture, on the worker) captures the hold.
    escrow = wait_until(lambda: (e := facts.escrow(order.id)) and e.captured_minor and e, 20,
                        what="the hold to be captured")
    assert escrow.captured_minor == 3000
    # A finished order's key is refused by the ingest: ffmpeg is dropped.
    assert publish(order.key).refused()
    assert facts.order(order.id).status is OrderStatus.COMPLETED


def test_a_bad_key_is_refused(streamed_order: StreamedOrder, publish: Publish,
                              facts: Facts) -> None:
    forged = streamed_order.key[:-4] + ("AAAA" if not streamed_order.key.endswith("AAAA")
                                        else "BBBB")
    assert publish(forged).refused()
    assert publish("not-a-key").refused()
    assert facts.order(streamed_order.id).status is OrderStatus.ACCEPTED
    assert facts.stream(streamed_order.id).status == "ready"


def test_a_revoked_key_after_cancellation_is_refused(
        client: FlaskClient, people: dict[str, User], streamed_order: StreamedOrder,
        publish: Publish, facts: Facts) -> None:
    assert call(client, "POST", f"/orders/{streamed_order.id}/cancel", people["creator"],
                {"reason": "plans changed"}).status_code == 200
    assert publish(streamed_order.key).refused()
    assert facts.stream(streamed_order.id).status == "revoked"
    assert facts.order(streamed_order.id).status is OrderStatus.CANCELLED


def test_a_second_publisher_on_a_live_key_is_refused(
        stream_app: Flask, rtmp: rtmp_server.RtmpServer, streamed_order: StreamedOrder,
        publish: Publish, facts: Facts) -> None:
    first = publish(streamed_order.key)
    wait_until(lambda: _live(facts, streamed_order), 10, what="the first publisher")
    owner = facts.stream(streamed_order.id).client_id
    assert publish(streamed_order.key).refused()
    assert first.running()
    stream = facts.stream(streamed_order.id)
    assert (stream.status, stream.client_id) == ("live", owner)
    assert len(facts.segments(streamed_order.id)) == 1


def test_an_order_in_the_wrong_state_refuses_its_key(
        stream_app: Flask, streamed_order: StreamedOrder, publish: Publish,
        facts: Facts) -> None:
    # The order left the states a stream may run in (accepted, active) while its key was still
    # open: e.g. an admin closed it. The ingest asks the order, not only the key.
    with stream_app.extensions["taplive"].db.transaction() as session:
        from db.models import Order

        order = session.get(Order, streamed_order.id)
        assert order is not None
        order.status = OrderStatus.DISPUTED
    assert publish(streamed_order.key).refused()
    assert facts.stream(streamed_order.id).status == "ready"


def test_a_drop_and_resume_within_the_grace_keeps_one_session(
        stream_app: Flask, streamed_order: StreamedOrder, publish: Publish,
        facts: Facts) -> None:
    first = publish(streamed_order.key)
    wait_until(lambda: _live(facts, streamed_order), 10, what="the first publisher")
    first.stop()
    wait_until(lambda: facts.stream(streamed_order.id).status == "interrupted", 10,
               what="the drop")
    second = publish(streamed_order.key)  # the provider reconnects
    wait_until(lambda: _live(facts, streamed_order), 10, what="the resume")
    assert second.running()
    assert run_task(stream_app, "streams.finish_idle") == 0
    sessions = facts.sessions(streamed_order.id)
    assert len(sessions) == 1 and sessions[0].disconnections == 1
    segments = facts.segments(streamed_order.id)
    assert len(segments) == 2 and segments[0].ended_at is not None
    assert segments[1].ended_at is None and segments[0].client_id != segments[1].client_id
    assert facts.order(streamed_order.id).status is OrderStatus.ACTIVE


def test_a_killed_ingest_leaves_no_session_live(
        stream_app: Flask, rtmp: rtmp_server.RtmpServer, streamed_order: StreamedOrder,
        publish: Publish, facts: Facts) -> None:
    publisher = publish(streamed_order.key)
    wait_until(lambda: _live(facts, streamed_order), 10, what="the publisher")
    wait_until(lambda: run_task(stream_app, "streams.sample_stats")["sampled"], 10,
               what="a first sample")
    rtmp.kill()  # SIGKILL: nginx sends no on_publish_done
    assert wait_until(lambda: not publisher.running(), 10, what="ffmpeg to lose its server")
    # Unreachable is not proof of anything: nothing is closed while /stat does not answer.
    assert run_task(stream_app, "streams.sample_stats")["closed"] == 0
    assert facts.stream(streamed_order.id).status == "live"
    rtmp.start()  # restarted (its supervisor would): the publisher is gone from /stat
    time.sleep(max(0.0, 2.1 - _age_s(facts, streamed_order)))  # past SAMPLE_SETTLE
    assert run_task(stream_app, "streams.sample_stats")["closed"] == 1
    closed = facts.stream(streamed_order.id)
    assert closed.status == "interrupted" and closed.client_id is None
    assert closed.last_done_at is not None and closed.stats_at is not None
    assert closed.last_done_at == closed.stats_at  # ended when it was last seen
    assert facts.segments(streamed_order.id)[0].ended_at == closed.last_done_at
    assert run_task(stream_app, "streams.sample_stats")["closed"] == 0  # twice: once
    # The provider may resume on the restarted ingest, within the grace.
    publish(streamed_order.key)
    wait_until(lambda: _live(facts, streamed_order), 10, what="the resume")
    assert facts.stream(streamed_order.id).disconnections == 1


def _age_s(facts: Facts, order: StreamedOrder) -> float:
    from datetime import UTC, datetime

    published = facts.stream(order.id).last_publish_at
    return (datetime.now(UTC) - published).total_seconds() if published else 0.0


def test_the_sampler_judges_only_publishes_older_than_its_read(
        stream_app: Flask, client: FlaskClient, streamed_order: StreamedOrder,
        facts: Facts) -> None:
    """The sampler's rule on its own (sessions made live by the callback, /stat given): a
    publish younger than the read may not be in it; an older one absent, or under another
    publisher's id, is closed at its start (it was never seen after it)."""
    from datetime import datetime, timedelta

    from core.rtmp_stat import StreamStat
    from domain import streams

    settings = stream_app.extensions["taplive"].settings
    answer = client.post(f"/internal/rtmp/on_publish?secret={settings.stream_callback_key}",
                         data={"app": "live", "name": streamed_order.key, "clientid": "77"})
    assert answer.status_code == 302
    live = facts.stream(streamed_order.id)
    published = live.last_publish_at
    assert published is not None
    stranger = StreamStat(app="live", name=streamed_order.playback_id, publisher_id="78",
                          bytes_in=1, bitrate_kbps=1, width=None, height=None,
                          frame_rate=None, time_ms=1)
    database = stream_app.extensions["taplive"].db

    def sample(read_at: datetime, seen: dict[str, StreamStat]) -> str:
        with database.transaction() as session:
            return streams.sample_ingest(session, live.id, seen, read_at, settings.secret_key)

    assert sample(published + timedelta(seconds=1), {}) == "skipped"
    assert facts.stream(streamed_order.id).status == "live"
    later = published + timedelta(seconds=3)
    assert sample(later, {streamed_order.playback_id: stranger}) == "closed"
    closed = facts.stream(streamed_order.id)
    assert (closed.status, closed.last_done_at, closed.published_seconds) == (
        "interrupted", published, 0)
    assert sample(later, {}) == "skipped"  # twice: once
