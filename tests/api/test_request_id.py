"""X-Request-ID is accepted or generated, returned, and put in every log line."""

from __future__ import annotations

import logging

import pytest
from flask.testing import FlaskClient


def test_incoming_request_id_is_echoed(
    client: FlaskClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="taplive.access"):
        response = client.get("/health", headers={"X-Request-ID": "req-42.abc"})
    assert response.headers["X-Request-ID"] == "req-42.abc"
    assert response.json["meta"]["requestId"] == "req-42.abc"
    access = [r for r in caplog.records if r.name == "taplive.access"]
    assert access and all(r.request_id == "req-42.abc" for r in access)


@pytest.mark.parametrize("bad", ["", "x" * 200, "evil line", "<script>", "a;b"])
def test_malformed_request_id_is_replaced(client: FlaskClient, bad: str) -> None:
    response = client.get("/health", headers={"X-Request-ID": bad})
    rid = response.headers["X-Request-ID"]
    assert rid != bad and len(rid) == 32
    assert response.json["meta"]["requestId"] == rid


def test_generated_ids_are_unique(client: FlaskClient) -> None:
    ids = {client.get("/health").headers["X-Request-ID"] for _ in range(20)}
    assert len(ids) == 20


def test_errors_carry_the_request_id(client: FlaskClient) -> None:
    response = client.get("/api/v1/missing", headers={"X-Request-ID": "trace-me"})
    assert response.status_code == 404
    assert response.json["meta"]["requestId"] == "trace-me"
    assert response.headers["X-Request-ID"] == "trace-me"
