"""The standalone launcher's supervisor, on small real processes: stop order, the grace bound,
and nothing of a child's tree left behind."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from bench.stop_time import process_tree, survivors
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
