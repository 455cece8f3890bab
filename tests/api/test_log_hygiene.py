"""Secrets, tokens and precise locations never reach the logs."""

from __future__ import annotations

import logging

import pytest
import redis
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

LAT, LON = "40.712345", "-74.012345"  # distinctive digits to search the logs for
PASSWORD = "harbour-Fireworks-2026!"


def test_flow_leaves_no_secrets_or_positions_in_logs(
        client: FlaskClient, db_session: Session, redis_client: redis.Redis,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    reg = client.post("/api/v1/auth/register", json={
        "username": "logcheck", "email": "logcheck@example.test", "password": PASSWORD,
        "role": "both"})
    assert reg.status_code == 201, reg.json
    access = reg.json["data"]["accessToken"]
    refresh = reg.json["data"]["refreshToken"]
    login = client.post("/api/v1/auth/login",
                        json={"email": "logcheck@example.test", "password": PASSWORD})
    assert login.status_code == 200
    bad = client.post("/api/v1/auth/login",
                      json={"email": "logcheck@example.test", "password": PASSWORD + "x"})
    assert bad.status_code == 401
    auth = {"Authorization": f"Bearer {access}"}
    client.put("/api/v1/providers/me/location", headers=auth,
               json={"latitude": float(LAT), "longitude": float(LON)})
    created = client.post("/api/v1/orders", headers=auth, json={
        "title": "t", "baseAmount": "5",
        "location": {"latitude": float(LAT), "longitude": float(LON)}})
    assert created.status_code == 201, created.json
    client.get(f"/api/v1/orders/nearby?latitude={LAT}&longitude={LON}", headers=auth)
    client.get("/api/v1/users/me", headers={"Authorization": "Bearer not-a-token"})

    everything = "\n".join(
        f"{record.getMessage()} {record.__dict__}" for record in caplog.records)
    assert caplog.records, "the flow should have logged something"
    for secret in (PASSWORD, access, refresh, access.split(".")[2], LAT, LON):
        assert secret not in everything, f"leaked: {secret[:12]}..."
