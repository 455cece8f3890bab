"""gunicorn settings read automatically from the working directory (Procfile, Dockerfile,
standalone). Only what the app needs from the server lives here."""

from __future__ import annotations

from typing import Any


def child_exit(_server: Any, worker: Any) -> None:
    # Multiprocess Prometheus metrics: forget a dead worker's live gauges.
    from core.metrics import mark_process_dead

    mark_process_dead(worker.pid)
