"""The fault schedule of a run (timed, seeded, logged) and the processor's webhooks delivered
twice and out of order.

One *cycle* of faults, repeated while the load runs (the first cycle always runs to its end):
SIGKILL a worker pool child; start a second beat; SIGKILL another pool child; SIGKILL the
worker's main process (the restart policy brings it back); restart the broker (SIGTERM, start
again on the same port with its append-only file); SIGKILL a pool child; stop the second beat.
Times within a cycle are jittered by the seed.
"""

from __future__ import annotations

import contextlib
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import redis

from tests.payments.conftest import stripe_signature
from tests.reliability.processes import WEBHOOK_SECRET, Stack

CYCLE_S = 24.0
# (seconds into the cycle, fault)
CYCLE = ((2.0, "kill_child"), (4.0, "second_beat"), (7.0, "kill_child"),
         (10.0, "kill_worker"), (15.0, "restart_broker"), (19.0, "kill_child"),
         (22.0, "stop_second_beat"))
# What the processor says happened, per operation in its log.
EVENT_OF_OP = {"hold": "payment_intent.amount_capturable_updated",
               "capture": "payment_intent.succeeded", "cancel": "payment_intent.canceled"}


@dataclass
class FaultLog:
    entries: list[tuple[float, str, str]] = field(default_factory=list)  # (t, fault, detail)
    began: float = field(default_factory=time.monotonic)

    def add(self, fault: str, detail: str = "") -> None:
        entry = (round(time.monotonic() - self.began, 2), fault, detail)
        self.entries.append(entry)
        print(f"[fault +{entry[0]:6.2f} s] {fault} {detail}", flush=True)

    def counts(self) -> dict[str, int]:
        found: dict[str, int] = {}
        for _, fault, _ in self.entries:
            found[fault] = found.get(fault, 0) + 1
        return found


def schedule(rng: random.Random, cycles: int) -> list[tuple[float, str]]:
    """The seeded plan: ``cycles`` cycles, each fault moved by up to +-0.8 s."""
    return [(cycle * CYCLE_S + at + rng.uniform(-0.8, 0.8), fault)
            for cycle in range(cycles) for at, fault in CYCLE]


def run_faults(stack: Stack, plan: list[tuple[float, str]], log: FaultLog,
               load_done: threading.Event) -> None:
    """Apply the plan from now on; after the first cycle, stop once the load is done."""
    began = time.monotonic()
    for at, fault in plan:
        if at >= CYCLE_S and load_done.is_set():
            break
        delay = began + at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        _apply(stack, fault, log)
    if "beat2" in stack.supervisor.children:
        stack.stop_beat("beat2")
        log.add("stop_second_beat", "(end of plan)")


def _apply(stack: Stack, fault: str, log: FaultLog) -> None:
    if fault == "kill_child":
        log.add(fault, f"pid {stack.kill_worker_child()}")
    elif fault == "kill_worker":
        log.add(fault, f"pid {stack.kill_worker()}")
    elif fault == "restart_broker":
        log.add(fault, f"down {stack.restart_broker():.2f} s")
    elif fault == "second_beat":
        stack.start_beat("beat2")
        log.add(fault)
    elif fault == "stop_second_beat" and "beat2" in stack.supervisor.children:
        stack.stop_beat("beat2")
        log.add(fault)


@dataclass
class WebhookReplayer:
    """Plays the processor's webhook sender: for every action in the processor's log, a
    signed ``payment_intent.*`` event, each delivered twice, each batch newest first (so a
    capture's event precedes its hold's). Statuses are recorded like the clients'."""

    stack: Stack
    record: Callable[[str, int, float], None]
    delivered: int = 0
    _seen: int = 0

    def deliver_new(self) -> None:
        operations = self.stack.processor_log()
        fresh, self._seen = operations[self._seen:], len(operations)
        events = [_event(op) for op in fresh if op["op"] in EVENT_OF_OP]
        for event in reversed(events):  # out of order: newest first
            body = json.dumps(event).encode()
            for _ in range(2):  # at least once, as Stripe: the same event id twice
                self._post(body)

    def _post(self, body: bytes) -> None:
        request = urllib.request.Request(
            f"{self.stack.base_url}/api/v1/webhooks/stripe", data=body, method="POST",
            headers={"Content-Type": "application/json",
                     "Stripe-Signature": stripe_signature(body, WEBHOOK_SECRET)})
        began = time.monotonic()
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status = response.status
        except urllib.error.HTTPError as exc:
            status = exc.code
        except OSError:
            status = 0
        self.record("POST /webhooks/stripe", status, time.monotonic() - began)
        self.delivered += 1

    def run(self, stop: threading.Event, every_s: float = 0.5) -> None:
        while not stop.wait(every_s):
            # The broker (the processor's store) restarting: the next round catches up.
            with contextlib.suppress(OSError, redis.RedisError):
                self.deliver_new()
        self.deliver_new()


def _event(op: dict[str, Any]) -> dict[str, Any]:
    # One event id per processor action: both deliveries of it carry the same id.
    return {"id": f"evt_{op['op']}_{op['intent']}", "object": "event",
            "type": EVENT_OF_OP[op["op"]],
            "data": {"object": {"id": op["intent"], "object": "payment_intent"}}}
