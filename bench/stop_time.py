"""How long `make run` takes to stop on Ctrl-C, and what it leaves behind.

    python -m bench.stop_time [--runs 3] [--how terminal|launcher|sigterm]

Starts the real launcher (``taplive standalone``, embedded SQLite + Redis) in a session of its
own, waits for "running; press Ctrl-C", notes every process of its tree (from /proc), then:

* ``terminal``: SIGINT to the launcher's whole process group, which is what a Ctrl-C in the
  terminal does (every process still in the foreground group gets it at once);
* ``launcher``: SIGINT to the launcher alone;
* ``sigterm``: SIGTERM to the launcher alone (``docker stop``, systemd, a process manager).

Reports, per run: seconds from the signal until the launcher exited, its exit code, whether it
said "unexpectedly", and which processes of the noted tree were still alive 0.5 s after that.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

HOW = {"terminal": (signal.SIGINT, True), "launcher": (signal.SIGINT, False),
       "sigterm": (signal.SIGTERM, False)}


def _stat(pid: int) -> tuple[str, int, str] | None:
    """(state, parent pid, start time) of a process, None once it is gone."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces or ")"
    return fields[0], int(fields[1]), fields[19]


def process_tree(root: int) -> dict[int, str]:
    """Every descendant of ``root`` (not ``root`` itself): pid -> start time, so a pid the
    kernel hands to a new process later is not mistaken for a survivor."""
    parents: dict[int, list[int]] = {}
    starts: dict[int, str] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (stat := _stat(int(entry))) is not None:
            parents.setdefault(stat[1], []).append(int(entry))
            starts[int(entry)] = stat[2]
    found: dict[int, str] = {}
    todo = list(parents.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in starts:
            found[pid] = starts[pid]
        todo.extend(parents.get(pid, []))
    return found


def survivors(tree: dict[int, str]) -> list[str]:
    """The processes of ``tree`` still running (zombies count as gone): "pid command"."""
    alive = []
    for pid, start in tree.items():
        stat = _stat(pid)
        if stat is not None and stat[2] == start and stat[0] != "Z":
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                command = cmdline.read().replace(b"\0", b" ").decode(errors="replace")
            alive.append(f"{pid} {command[:100]}")
    return alive


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class StopResult:
    seconds: float
    exit_code: int
    unexpected: bool
    tree_size: int
    left: list[str]
    output: str


def start_launcher(env: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """The launcher, running and ready (its output so far returned)."""
    taplive = Path(sys.executable).with_name("taplive")
    proc = subprocess.Popen([str(taplive), "standalone", "--port", str(_free_port())],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    assert proc.stdout is not None
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if "running; press Ctrl-C" in line or "[taplive] stopped" in line:
            break
    return proc, "".join(lines)


def stop_launcher(proc: subprocess.Popen[str], how: str, timeout_s: float = 120) -> StopResult:
    signum, whole_group = HOW[how]
    tree = process_tree(proc.pid)
    began = time.monotonic()
    if whole_group:
        os.killpg(proc.pid, signum)
    else:
        proc.send_signal(signum)
    # Read in a thread: an orphaned grandchild may hold the pipe open long after the launcher
    # exited, and the launcher's exit is what is timed.
    chunks: list[str] = []
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: chunks.extend(proc.stdout or []), daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    seconds = time.monotonic() - began
    time.sleep(0.5)
    left = survivors(tree)
    reader.join(timeout=1)
    rest = "".join(chunks)
    return StopResult(seconds, proc.returncode, "unexpectedly" in rest, len(tree), left, rest)


def _env(workdir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env["DATABASE_URL"] = f"sqlite:///{workdir / 'standalone.sqlite3'}"
    env["ADMIN_PASSWORD"] = "a-bench-admin-password"
    return env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--how", choices=sorted(HOW), default="terminal")
    parser.add_argument("--settle", type=float, default=3.0,
                        help="seconds to let the children settle after 'running'")
    parser.add_argument("--show-output", action="store_true",
                        help="print all the launcher said after the signal")
    args = parser.parse_args()
    times = []
    for run in range(1, args.runs + 1):
        with tempfile.TemporaryDirectory() as workdir:
            proc, _ = start_launcher(_env(Path(workdir)))
            time.sleep(args.settle)
            result = stop_launcher(proc, args.how)
        times.append(result.seconds)
        print(f"run {run} ({args.how}): {result.seconds:.2f} s, exit {result.exit_code}, "
              f"unexpectedly={result.unexpected}, tree {result.tree_size} processes, "
              f"left alive {len(result.left)}", flush=True)
        for line in result.left:
            print(f"    alive: {line}")
        for line in result.output.splitlines():
            if args.show_output or "[taplive]" in line or "Traceback" in line:
                print(f"    {line}")
        for pid in (int(line.split()[0]) for line in result.left):  # tidy up after the run
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    print(f"median {statistics.median(times):.2f} s, max {max(times):.2f} s over {args.runs}")


if __name__ == "__main__":
    main()
