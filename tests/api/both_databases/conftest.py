"""Every HTTP test below this folder runs on PostgreSQL, then on SQLite, through the production
read path: ``client`` and ``db_session`` are the committing ones (requests really commit; the
tables are emptied after each test)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session


@pytest.fixture
def db_session(committed_session: Session) -> Session:
    return committed_session


@pytest.fixture
def client(committed_client: FlaskClient) -> FlaskClient:
    return committed_client
