"""The child processes of ``taplive standalone``: started each in a session of its own, stopped in
dependency order with a bounded grace each.

Why a session of its own: a Ctrl-C in the terminal sends SIGINT to the whole foreground process
group. Children sharing the launcher's group all got it at once, so Redis went down while the
worker and beat still used it (they then spent their shutdown retrying it), beat exited before
the launcher noticed the Ctrl-C ("stopped unexpectedly: beat"), and a gunicorn worker could
outlive everything. In sessions of their own only the launcher hears the Ctrl-C and decides who
stops when; and a session's group also holds the child's own children (gunicorn and Celery pool
workers, nginx workers), so one ``killpg`` takes a child's whole tree down.

A child that dies on its own is relaunched (``revive``) with the argv it was started with,
after a backoff of 1, 2, 4, 8 s (capped) that resets once it stayed up for 30 s: a Celery worker
can exit for good (``WorkerLostError('Could not start worker processes')`` when a pool process
dies while it starts, docs/reliability.md) and the launcher must not take the whole engine down
with it, nor spin on a child that cannot start. A child it only adopted (the embedded Redis)
has no argv here and stays fatal: everything else depends on it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# First to last. The entry points stop taking work (requests, sockets, streams, the dashboard);
# then beat, so nothing new is scheduled; then the worker finishes what it holds (Celery's warm
# shutdown); Redis last, since every process above talks to it until it exits.
STOP_STAGES: tuple[tuple[str, ...], ...] = (
    ("api", "realtime", "rtmp", "flower"),
    ("beat",),
    ("worker",),
    ("redis",),
)
DEFAULT_GRACE_S = 5.0
POLL_S = 0.05
# Relaunch delays: 1, 2, 4, 8, 8, ... s after consecutive early deaths. A child that stayed up
# this long before dying counts as healthy again: its next relaunch waits 1 s.
BACKOFF_FIRST_S = 1.0
BACKOFF_CAP_S = 8.0
HEALTHY_AFTER_S = 30.0


def _kill_group(pid: int, settle_s: float = 0.0) -> None:
    """SIGKILL the process group a child leads: whatever of its tree is still there. The group
    id stays reserved while any member lives, so this cannot hit an unrelated process. With
    ``settle_s``, wait that long at most until none of them is running any more, so the caller's
    "stopped" means gone."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        return
    deadline = time.monotonic() + settle_s
    while _group_running(pid) and time.monotonic() < deadline:
        time.sleep(POLL_S / 5)


def _group_running(pgid: int) -> bool:
    """Whether a process of the group still runs: zombies do not count (dead, only not yet
    reaped by init, which in some containers takes its time). False where there is no /proc."""
    proc = Path("/proc")
    if not proc.is_dir():
        return False
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        state, _ppid, group = raw[raw.rindex(")") + 2:].split()[:3]
        if int(group) == pgid and state not in ("Z", "X"):
            return True
    return False


@dataclass
class _Launch:
    """How to start a child again, and how its relaunches have gone."""

    argv: list[str]
    started_at: float
    failures: int = 0  # consecutive deaths within HEALTHY_AFTER_S of a start
    due_at: float | None = None  # set while dead: when the relaunch happens


@dataclass
class Supervisor:
    """Starts child processes and stops them all, politely first, in dependency order."""

    env: dict[str, str]
    cwd: Path | None = None
    say: Callable[[str], None] = print
    children: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    grace_s: dict[str, float] = field(default_factory=dict)
    launches: dict[str, _Launch] = field(default_factory=dict)
    relaunched: int = 0  # how many relaunches so far
    # The relaunch policy (module docstring); tests shrink it to keep their runs short.
    backoff_first_s: float = BACKOFF_FIRST_S
    backoff_cap_s: float = BACKOFF_CAP_S
    healthy_after_s: float = HEALTHY_AFTER_S
    # Set once stopping began: a child exiting then was asked to; a second signal sets `hurry`.
    stopping: bool = False
    hurry: bool = False

    def start(self, name: str, argv: list[str], grace_s: float = DEFAULT_GRACE_S) -> None:
        env = {**self.env, "SERVICE_NAME": f"taplive-{name}"}
        proc = subprocess.Popen(argv, env=env, cwd=self.cwd, start_new_session=True)
        self.adopt(name, proc, grace_s)
        launch = self.launches.get(name)
        if launch is None:
            self.launches[name] = _Launch(list(argv), time.monotonic())
        else:
            launch.argv, launch.started_at, launch.due_at = list(argv), time.monotonic(), None

    def adopt(self, name: str, proc: subprocess.Popen[bytes],
              grace_s: float = DEFAULT_GRACE_S) -> None:
        """Supervise a process started elsewhere (it should lead a session of its own)."""
        self.children[name] = proc
        self.grace_s[name] = grace_s

    def dead(self) -> list[str]:
        """Children that exited on their own (none while stopping: we asked them to)."""
        if self.stopping:
            return []
        return [name for name, proc in self.children.items() if proc.poll() is not None]

    def backoff_s(self, failures: int) -> float:
        """The wait before the relaunch that follows ``failures`` consecutive early deaths."""
        return min(self.backoff_first_s * 2 ** max(failures - 1, 0), self.backoff_cap_s)

    def revive(self) -> list[str]:
        """Relaunch each child that died on its own, once its backoff has passed; call it often
        (the launcher polls every 0.5 s). Returns the dead children that cannot be relaunched
        (adopted ones: the embedded Redis), for which the caller should stop everything."""
        fatal = []
        now = time.monotonic()
        for name in self.dead():
            launch = self.launches.get(name)
            if launch is None:
                fatal.append(name)
                continue
            if launch.due_at is None:
                code = self.children[name].returncode
                up_s = now - launch.started_at
                launch.failures = 1 if up_s >= self.healthy_after_s else launch.failures + 1
                delay = self.backoff_s(launch.failures)
                launch.due_at = now + delay
                # Its pool/worker processes may outlive it (a SIGKILLed Celery main process
                # leaves its pool behind): they must not run beside the new one.
                _kill_group(self.children[name].pid, settle_s=1.0)
                self.say(f"{name} exited with {code} after {up_s:.1f} s; "
                         f"relaunching in {delay:g} s")
            elif now >= launch.due_at:
                self.start(name, launch.argv, self.grace_s[name])
                self.relaunched += 1
                self.say(f"relaunched {name}")
        return fatal

    def stop_all(self) -> None:
        """Stage by stage (STOP_STAGES; children not named there go first): SIGTERM each leader,
        wait up to its grace, SIGKILL its group if it is still there; then sweep the group of
        anything the leader left behind."""
        self.stopping = True
        staged = {name for stage in STOP_STAGES for name in stage}
        unstaged = tuple(name for name in self.children if name not in staged)
        for stage in (unstaged, *STOP_STAGES):
            names = [name for name in stage if name in self.children]
            if names:
                self._stop_stage(names)

    def _stop_stage(self, names: list[str]) -> None:
        began = time.monotonic()
        deadlines = {}
        for name in names:
            proc = self.children[name]
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signal.SIGTERM)
            deadlines[name] = began + self.grace_s[name]
        killed = []
        waiting = set(names)
        while waiting:
            now = time.monotonic()
            for name in sorted(waiting):
                proc = self.children[name]
                if proc.poll() is not None:
                    waiting.discard(name)
                elif self.hurry or now >= deadlines[name]:
                    _kill_group(proc.pid)
                    proc.wait()
                    killed.append(name)
                    waiting.discard(name)
            if waiting:
                time.sleep(POLL_S)
        for name in names:  # what a leader left behind: gunicorn/Celery/nginx workers
            _kill_group(self.children[name].pid, settle_s=1.0)
        elapsed = time.monotonic() - began
        self.say(f"stopped {', '.join(names)} ({elapsed:.1f} s)")
        for name in killed:
            reason = "a second signal" if self.hurry else f"{self.grace_s[name]:g} s"
            self.say(f"killed {name}: still running after {reason}")
