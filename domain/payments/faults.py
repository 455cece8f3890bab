"""Fault injection for the crash tests, and nothing else.

``fault_point("capture.after_gateway")`` kills the current process with SIGKILL when the
environment variable ``TAPLIVE_FAULT_POINT`` names that point. Unset (always, outside the
crash tests) it is one dictionary lookup. SIGKILL, not an exception: nothing may clean up,
exactly like a machine losing power or the OOM killer. See docs/payments.md for the points.
"""

from __future__ import annotations

import os
import signal

ENV = "TAPLIVE_FAULT_POINT"


def fault_point(name: str) -> None:
    if os.environ.get(ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
