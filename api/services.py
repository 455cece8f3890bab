"""How the web layer reaches the composition root: the app it serves was built with one
(``api.create_app``), kept in ``app.extensions["taplive"]``. Views call ``services()``; nothing
below ``api/`` does (tasks use ``self.services``, commands take what they need as arguments)."""

from __future__ import annotations

from flask import current_app

from services import Payments, Services

__all__ = ["Services", "payments", "services"]


def services() -> Services:
    svc: Services = current_app.extensions["taplive"]
    return svc


def payments() -> Payments:
    return services().payments
