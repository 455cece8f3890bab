"""The standalone launcher's supervisor, on small real processes: stop order, the grace bound,
nothing of a child's tree left behind, and relaunching what dies (with backoff)."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.stop_time import process_tree, survivors
from tests.waiting import poll
from workers.supervisor import Supervisor

# On SIGTERM: note our name, then exit (after `linger` seconds) or not at all ("ignore").
# Either way a grandchild (`sleep`) runs in our group, as gunicorn's or Celery's workers do.
CHILD = """
import signal, subprocess, sys, time
name, log, linger = sys.argv[1], sys.argv[2], sys.argv[3]
subprocess.Popen(["sleep", "300"])
def on_term(*_):
    with open(log, "a") as out:
        out.write(name + "\\n")
    if linger != "ignore":
        time.sleep(float(linger))
        sys.exit(0)
signal.signal(signal.SIGTERM, on_term)
print("up", flush=True)
while True:
    time.sleep(0.1)
"""


def _start(supervisor: Supervisor, name: str, log: Path, linger: str, grace_s: float) -> None:
    supervisor.start(name, [sys.executable, "-c", CHILD, name, str(log), linger], grace_s=grace_s)


def test_stops_in_dependency_order_bounded_and_leaves_no_process(tmp_path: Path) -> None:
    log = tmp_path / "order.log"
    said: list[str] = []
    supervisor = Supervisor(dict(os.environ), cwd=tmp_path, say=said.append)
    # Started in the order the launcher starts them, which is not the stop order.
    _start(supervisor, "redis", log, "0", grace_s=5)
    _start(supervisor, "worker", log, "0.3", grace_s=5)
    _start(supervisor, "beat", log, "0", grace_s=5)
    _start(supervisor, "api", log, "0", grace_s=5)
    _start(supervisor, "flower", log, "ignore", grace_s=0.5)  # never stops on its own
    def children_trees() -> dict[int, str]:
        # Only the supervised children and their groups: the test process may have other
        # descendants (the suite's own servers), which must not count.
        found = {}
        for pid, start in process_tree(os.getpid()).items():
            try:
                group = os.getpgid(pid)
            except ProcessLookupError:
                continue
            if any(pid == proc.pid or group == proc.pid
                   for proc in supervisor.children.values()):
                found[pid] = start
        return found

    deadline = time.monotonic() + 20
    while len(children_trees()) < 10 and time.monotonic() < deadline:
        time.sleep(0.05)  # each child and its `sleep`
    tree = children_trees()
    assert len(tree) == 10
    assert supervisor.dead() == []

    began = time.monotonic()
    supervisor.stop_all()
    took = time.monotonic() - began

    stopped = log.read_text().split()  # one stage's members are told together
    assert set(stopped[:2]) == {"api", "flower"} and stopped[2:] == ["beat", "worker", "redis"]
    assert said[0].startswith("stopped api, flower (")
    assert said[1] == "killed flower: still running after 0.5 s"
    assert [line.split()[1] for line in said[2:]] == ["beat", "worker", "redis"]
    assert took < 4  # flower's 0.5 s grace and worker's 0.3 s linger, not anyone's 5 s
    assert survivors(tree) == []  # the grandchildren went with their parents' groups
    assert supervisor.dead() == []  # we asked them to stop: nothing is "unexpected"


# Each start appends "<monotonic time> <pid>" to the log, then lives for the next lifetime in the
# list ("-" = forever) and exits 3; a `sleep` grandchild runs in its group, as a Celery pool does.
FLAKY = """
import subprocess, sys, time
log, lifetimes = sys.argv[1], sys.argv[2].split(",")
with open(log, "a") as out:
    out.write(f"{time.monotonic()} {subprocess.os.getpid()}\\n")
with open(log) as seen:
    lifetime = lifetimes[min(len(seen.read().split("\\n")) - 2, len(lifetimes) - 1)]
subprocess.Popen(["sleep", "300"])
time.sleep(300 if lifetime == "-" else float(lifetime))
sys.exit(3)
"""


def _starts(log: Path) -> list[tuple[float, int]]:
    if not log.exists():
        return []
    rows = [line.split() for line in log.read_text().splitlines()]
    return [(float(at), int(pid)) for at, pid in rows]


def _revive_until(supervisor: Supervisor, log: Path, starts: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_starts(log)) < starts and time.monotonic() < deadline:
        assert supervisor.revive() == []
        time.sleep(0.02)


def test_a_child_that_keeps_dying_is_relaunched_with_doubling_backoff(tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    said: list[str] = []
    # The launcher's policy (1, 2, 4, 8 s), scaled down by 5.
    supervisor = Supervisor(dict(os.environ), cwd=tmp_path, say=said.append,
                            backoff_first_s=0.2, backoff_cap_s=1.6, healthy_after_s=6.0)
    supervisor.start("worker", [sys.executable, "-c", FLAKY, str(log), "0"], grace_s=1)
    try:
        _revive_until(supervisor, log, starts=6, timeout_s=20)
    finally:
        supervisor.stop_all()
    starts = _starts(log)
    assert len(starts) == 6, said
    gaps = [later[0] - earlier[0] for earlier, later in itertools.pairwise(starts)]
    # Each gap is the backoff plus the child's start-up (a Python interpreter: well under 1 s).
    for gap, backoff in zip(gaps, (0.2, 0.4, 0.8, 1.6, 1.6), strict=True):
        assert backoff <= gap < backoff + 1.0, (gaps, said)
    assert said[0].startswith("worker exited with 3 after "), said
    delays = [line.rsplit(" ", 2)[1] for line in said if "relaunching" in line]
    assert delays[:5] == ["0.2", "0.4", "0.8", "1.6", "1.6"], said
    assert supervisor.relaunched == 5


def test_backoff_starts_over_once_a_child_stayed_up(tmp_path: Path) -> None:
    log = tmp_path / "starts.log"
    said: list[str] = []
    supervisor = Supervisor(dict(os.environ), cwd=tmp_path, say=said.append,
                            backoff_first_s=0.2, backoff_cap_s=1.6, healthy_after_s=1.0)
    # Dies at once twice, then runs 1.5 s (healthy), then dies at once again.
    supervisor.start("beat", [sys.executable, "-c", FLAKY, str(log), "0,0,1.5,0"], grace_s=1)
    try:
        _revive_until(supervisor, log, starts=5, timeout_s=20)
    finally:
        supervisor.stop_all()
    delays = [line.rsplit(" ", 2)[1] for line in said if "relaunching" in line]
    assert delays[:4] == ["0.2", "0.4", "0.2", "0.4"], said


def test_a_killed_childs_leftovers_go_before_its_relaunch(tmp_path: Path) -> None:
    """SIGKILL the leader (as when the Celery main process is killed): its grandchild (a pool
    process) must not outlive it beside the relaunched one."""
    log = tmp_path / "starts.log"
    supervisor = Supervisor(dict(os.environ), cwd=tmp_path, say=lambda _: None,
                            backoff_first_s=0.1)
    supervisor.start("worker", [sys.executable, "-c", FLAKY, str(log), "-"], grace_s=1)
    try:
        first = supervisor.children["worker"]
        tree = poll(lambda: process_tree(first.pid), timeout=10)
        assert tree  # its `sleep`
        os.kill(first.pid, signal.SIGKILL)
        _revive_until(supervisor, log, starts=2, timeout_s=10)
        assert len(_starts(log)) == 2
        assert survivors(tree) == []  # the old `sleep` went with its group
        assert supervisor.children["worker"].poll() is None  # the new one runs
    finally:
        supervisor.stop_all()


def test_an_adopted_child_is_fatal_not_relaunched(tmp_path: Path) -> None:
    """The embedded Redis is adopted (started elsewhere): everything depends on it, so its
    death stops the engine instead of a relaunch."""
    supervisor = Supervisor(dict(os.environ), cwd=tmp_path, say=lambda _: None)
    supervisor.adopt("redis", subprocess.Popen([sys.executable, "-c", "pass"],
                                               start_new_session=True))
    supervisor.children["redis"].wait()
    assert supervisor.revive() == ["redis"]
    assert supervisor.relaunched == 0
    supervisor.stop_all()
