"""The per-app bundle of long-lived collaborators (settings, database, Redis, cursor codec).

Stored in ``app.extensions["taplive"]`` so several apps can live in one process (tests do this)
and tasks reach the same objects through the Flask app context.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis
from flask import current_app

from core.config import Settings
from db.pagination import CursorCodec
from db.session import Database


@dataclass
class Services:
    settings: Settings
    db: Database
    redis: redis.Redis
    cursors: CursorCodec


def services() -> Services:
    svc: Services = current_app.extensions["taplive"]
    return svc
