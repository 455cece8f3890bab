"""Beat for the load-and-faults run: ``celery -A tests.reliability.fast_beat beat``.

The production app and schedule (``celery_app``, ``beat_schedule``), with the payment
catch-up sweeps' intervals shortened from outside: settlement (10 min in production) and
capture retries (5 min) would otherwise not tick within a run of a few minutes. Their messages
keep production's ``expires`` (a little under the production interval): shortened with the
interval, a sweep message handed back after its worker died (15 s visibility timeout in the
run) would be discarded as expired, and the lease its first round held would stall the sweep
for its 7 minutes, which production's 10-minute tick never sees. The redbeat lock, the
single-flight chains and everything else are production's.
"""

from __future__ import annotations

from celery_app import celery

FAST_S = {"payments-settle-due": 5.0, "payments-retry-captures": 15.0}

for _name, _seconds in FAST_S.items():
    celery.conf.beat_schedule[_name]["schedule"] = _seconds

__all__ = ["celery"]
