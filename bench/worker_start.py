"""What a Celery worker process costs to start: this checkout against another one, same run.

    python -m bench.worker_start --baseline /path/to/other/checkout [--runs 7]

For each checkout, alternating, ``runs`` times:
* **import**: a fresh interpreter runs ``import celery_app`` (what `celery -A celery_app`
  loads before anything else): wall time and the process's peak RSS after it;
* **ready**: a real ``celery -A celery_app worker --pool=solo`` on a private embedded Redis,
  from exec to its "ready" line, and the main process's RSS then.

Both checkouts run under this interpreter (the same installed libraries); each imports its own
code (the checkout is the working directory and first on ``sys.path``). Medians are reported,
and the ratio this/baseline.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from core.embedded_redis import start_redis_server

HERE = Path(__file__).resolve().parents[1]
IMPORT_PROBE = (
    "import resource, time; t = time.perf_counter(); import celery_app; "
    "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)"
)


def _env(checkout: Path, redis_url: str, sqlite: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TAPLIVE", "CELERY"))}
    env.update(PYTHONPATH=str(checkout), APP_ENV="development", REDIS_URL=redis_url,
               DATABASE_URL=f"sqlite:///{sqlite}", LOG_FORMAT="console", LOG_LEVEL="INFO",
               PAYMENT_GATEWAY="offline")
    return env


def measure_import(checkout: Path, env: dict[str, str]) -> tuple[float, float]:
    out = subprocess.run([sys.executable, "-c", IMPORT_PROBE], cwd=checkout, env=env,
                         capture_output=True, text=True, check=True).stdout.split()
    return float(out[-2]), float(out[-1]) / 1024  # seconds, MiB


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def measure_ready(checkout: Path, env: dict[str, str], timeout_s: float = 60) -> tuple[float,
                                                                                       float]:
    started = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_app", "worker", "--pool=solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel=INFO",
         "-Q", "maintenance"], cwd=checkout, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        deadline = started + timeout_s
        for line in proc.stdout:
            if "ready." in line:
                return time.perf_counter() - started, _rss_mib(proc.pid)
            if time.perf_counter() > deadline:
                break
        raise RuntimeError(f"the worker in {checkout} did not become ready")
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    checkouts = {"baseline": args.baseline.resolve(), "this": HERE}
    results: dict[str, dict[str, list[float]]] = {
        name: {"import_s": [], "import_mib": [], "ready_s": [], "ready_mib": []}
        for name in checkouts}
    with tempfile.TemporaryDirectory(prefix="taplive-worker-bench-") as tmp:
        redis_proc, redis_url = start_redis_server(Path(tmp), persist=False)
        try:
            for _ in range(args.runs):
                for name, checkout in checkouts.items():
                    env = _env(checkout, redis_url, Path(tmp) / f"{name}.sqlite3")
                    seconds, mib = measure_import(checkout, env)
                    results[name]["import_s"].append(seconds)
                    results[name]["import_mib"].append(mib)
                    seconds, mib = measure_ready(checkout, env)
                    results[name]["ready_s"].append(seconds)
                    results[name]["ready_mib"].append(mib)
        finally:
            redis_proc.terminate()
            redis_proc.wait(timeout=10)
    med = {name: {k: statistics.median(v) for k, v in r.items()} for name, r in results.items()}
    print(f"worker start, median of {args.runs} alternating runs (baseline: {args.baseline})")
    print(f"{'':24}{'baseline':>12}{'this':>12}{'this/base':>12}")
    for key, label in (("import_s", "import celery_app (s)"),
                       ("import_mib", "  peak RSS (MiB)"),
                       ("ready_s", "worker ready (s)"),
                       ("ready_mib", "  RSS at ready (MiB)")):
        base, this = med["baseline"][key], med["this"][key]
        print(f"{label:24}{base:>12.3f}{this:>12.3f}{this / base:>12.2f}")


if __name__ == "__main__":
    main()
