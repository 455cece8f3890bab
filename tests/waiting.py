"""Waiting for what a real worker does: poll until the probe's answer is truthy."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll(probe: Callable[[], T], timeout: float = 30.0, every: float = 0.05) -> T:
    """The probe's first truthy answer, or its last answer once ``timeout`` seconds passed
    (the caller's assertion then says what was missing)."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
