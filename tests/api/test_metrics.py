"""/metrics: the spec's metrics appear after traffic, aggregated across gunicorn workers."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from tests.conftest import TEST_REDIS_URL, TEST_SECRET


def _count(text: str, route: str) -> float:
    pattern = (r'^http_request_duration_seconds_count\{method="GET",route="'
               + re.escape(route) + r'",status_code="200"\} ([0-9.e+]+)$')
    return sum(float(m) for m in re.findall(pattern, text, re.M))


def test_metrics_after_traffic(client: FlaskClient) -> None:
    before = _count(client.get("/metrics").get_data(as_text=True), "/health")
    for _ in range(3):
        client.get("/health")
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    assert _count(text, "/health") == before + 3
    assert 'http_request_duration_seconds_bucket{le="0.1",method="GET",route="/health"' in text
    assert 'taplive_active_orders_total{status="pending"}' in text
    assert 'taplive_queue_depth{queue="matching"}' in text
    assert "taplive_user_registrations_total" in text


def test_unknown_paths_share_one_label(client: FlaskClient) -> None:
    for i in range(3):
        client.get(f"/no/such/path/{i}")
    text = client.get("/metrics").get_data(as_text=True)
    assert 'route="<unmatched>"' in text and "/no/such/path" not in text


@pytest.mark.slow
def test_gunicorn_workers_are_aggregated(pg_url: str, tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    metrics_dir = tmp_path / "prom"
    metrics_dir.mkdir()
    env = dict(os.environ, DATABASE_URL=pg_url, REDIS_URL=TEST_REDIS_URL, APP_ENV="test",
               SECRET_KEY=TEST_SECRET, JWT_SECRET_KEY=TEST_SECRET + "-jwt",
               LOG_LEVEL="WARNING", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "api.wsgi:app", "--bind", f"127.0.0.1:{port}",
         "--workers", "2"], env=env, cwd=Path(__file__).resolve().parents[2])
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/health", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        time.sleep(1.0)  # let any request that timed out during boot finish
        scrape = lambda: _count(  # noqa: E731
            urllib.request.urlopen(f"{base}/metrics", timeout=5).read().decode(), "/health")
        baseline = scrape()
        # Concurrent clients, so both sync workers take a share.
        with ThreadPoolExecutor(max_workers=6) as pool:
            list(pool.map(lambda _: urllib.request.urlopen(f"{base}/health", timeout=5).read(),
                          range(29)))
        pids = {f.name.split("_")[-1] for f in metrics_dir.glob("histogram_*.db")}
        scrapes = [scrape() - baseline for _ in range(4)]
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert len(pids) == 2, "both workers served requests"
    assert scrapes == [29.0] * 4  # every scrape sees every worker's requests
