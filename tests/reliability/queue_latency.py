"""Queue latency from Celery's own task events: ``task-sent`` (stamped by the sender: the API,
a worker or beat; ``task_send_sent_event`` is on in production) to ``task-started`` (stamped by
the worker). Both carry wall-clock timestamps taken on this one machine."""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from celery import Celery


@dataclass
class QueueLatency:
    broker_url: str
    sent: dict[str, tuple[str, float]] = field(default_factory=dict)  # uuid -> (name, t)
    waits: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    reconnects: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def _on_sent(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.sent[event["uuid"]] = (str(event.get("name")), float(event["timestamp"]))

    def _on_started(self, event: dict[str, Any]) -> None:
        with self._lock:
            found = self.sent.pop(event["uuid"], None)
            if found is not None:
                name, at = found
                self.waits[name].append(max(0.0, float(event["timestamp"]) - at))

    def run(self, stop: threading.Event) -> None:
        """Listen until ``stop``; a broker restart drops the connection: reconnect (events
        sent meanwhile are not seen, so those tasks are not sampled)."""
        app = Celery(broker=self.broker_url)
        while not stop.is_set():
            try:
                with app.connection() as conn:
                    receiver = app.events.Receiver(conn, handlers={
                        "task-sent": self._on_sent, "task-started": self._on_started})
                    while not stop.is_set():
                        try:  # returns after 200 events, so ``stop`` is looked at
                            receiver.capture(limit=200, timeout=0.5, wakeup=False)
                        except TimeoutError:
                            continue  # no event for 0.5 s
            except Exception:  # any broker error: wait and reconnect
                if stop.wait(0.5):
                    return
                self.reconnects += 1
