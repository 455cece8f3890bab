"""The stream benchmark's measuring functions (bench/stream_bench.py), once each against the real
ingest and API, so the benchmark cannot rot: one start of a real order and one of the
baseline, and one ramp step of two copy publishers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.serving import BaseWSGIServer

from bench import stream_bench
from core import rtmp_server
from core.enums import OrderStatus
from db.models import User
from tests.streams.conftest import Facts, accepted_with_hold


@pytest.fixture(scope="module")
def ingest(stream_app: Flask, api_server: BaseWSGIServer,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[rtmp_server.RtmpServer]:
    """nginx-rtmp as the benchmark runs it: the deploy template plus the `bare` baseline."""
    settings = stream_app.extensions["taplive"].settings
    config = stream_bench.with_baseline_app(rtmp_server.RtmpConfig.from_settings(
        settings, tmp_path_factory.mktemp("bench-nginx"), listen_host="127.0.0.1"))
    server = rtmp_server.RtmpServer(config).start()
    yield server
    server.stop()


def test_start_latency_of_an_order_and_of_the_baseline(
        client: FlaskClient, people: dict[str, User], ingest: rtmp_server.RtmpServer,
        facts: Facts) -> None:
    order = accepted_with_hold(client, people)
    ours = stream_bench.measure_start(
        ingest.config, "live", order.key, order.playback_id,
        lambda: facts.order(order.id).status is OrderStatus.ACTIVE, timeout_s=15)
    assert ours.active_ms is not None
    assert 0 < ours.active_ms < ours.playlist_ms < 15_000
    assert facts.order(order.id).status is OrderStatus.ACTIVE

    # No callback on `bare`: no order, the playlist under the name published.
    base = stream_bench.measure_start(ingest.config, stream_bench.BASELINE_APP, "benchbase",
                                      "benchbase", timeout_s=15)
    assert base.active_ms is None and 0 < base.playlist_ms < 15_000


def test_a_ramp_step_measures_ingest_hls_and_cpu(ingest: rtmp_server.RtmpServer,
                                               tmp_path: Path) -> None:
    clip = tmp_path / "clip.flv"
    clip_bps = stream_bench.encode_clip(clip, seconds=2, kbps=1000)
    assert 100_000 < clip_bps < 150_000  # 1000 kbit/s CBR, give or take the container
    assert ingest.process is not None
    step = stream_bench.measure_publishers(ingest.config, ingest.process.pid, clip, clip_bps,
                                           publishers=2, window_s=3.0)
    assert (step.publishing, step.exited) == (2, 0)
    assert len(step.ingest_ratios) == 2 and min(step.ingest_ratios) > 0.7
    assert len(step.hls_ratios) == 2 and min(step.hls_ratios) > 0.3
    assert 0 < step.max_fragment_s < 3
    assert len(step.hls_http_ms) == 2 and step.error is None
    assert step.nginx_cpu > 0 and step.clients_cpu > 0
