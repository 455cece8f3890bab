"""No cookie sessions: this API authenticates with bearer tokens and keeps no session state.

Flask opens (and, with a secret key set, builds a signing serializer for) a cookie session on
every request unless told otherwise; with this interface every request gets Flask's null
session for free.
"""

from __future__ import annotations

from flask import Flask, Request, Response
from flask.sessions import SessionInterface, SessionMixin


class NoSessions(SessionInterface):
    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return None  # Flask then uses make_null_session()

    def save_session(self, app: Flask, session: SessionMixin, response: Response) -> None:
        return None
