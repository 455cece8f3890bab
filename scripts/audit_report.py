"""Reads pip-audit's JSON report (scripts/audit.sh) and says, in plain lines, what it means.

pip-audit alone is misleading in two ways this guards against: when the service cannot be
reached it ends in a traceback, and when the service answers "not found" for a release (an
index or mirror without PyPI's per-release JSON API) it skips that package and still prints
"No known vulnerabilities found". Both mean the audit did not happen: one line, exit 0, so the
test command goes on. Vulnerabilities found: listed with their fixes, exit 1.

Standard library only: it runs on the tools venv's interpreter.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

UNREACHABLE = "audit skipped: vulnerability database unreachable"
# What a network failure looks like at the end of pip-audit's traceback.
NETWORK_ERRORS = re.compile(
    r"ConnectionError|ProxyError|ConnectTimeout|ReadTimeout|Timeout|NameResolution|"
    r"Max retries exceeded|Temporary failure in name resolution|SSLError|ServiceError")


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1][:200] if lines else "no output"


def report(service: str, status: int, report_path: Path, stderr: str, locks: list[str]) -> int:
    """Prints the verdict; returns the exit code."""
    try:
        document = json.loads(report_path.read_text())
    except (OSError, ValueError):
        document = None
    if document is None:  # pip-audit stopped before writing a report
        if NETWORK_ERRORS.search(stderr):
            print(f"{UNREACHABLE} ({service}: {_last_line(stderr)})")
            return 0
        print(f"audit failed (pip-audit exit {status}): {_last_line(stderr)}")
        return 1
    dependencies = document.get("dependencies", [])
    skipped = [dep for dep in dependencies if dep.get("skip_reason")]
    audited = [dep for dep in dependencies if not dep.get("skip_reason")]
    found = [(dep, vuln) for dep in audited for vuln in dep.get("vulns", [])]
    if found:
        packages = {dep["name"] for dep, _ in found}
        print(f"audit: {len(found)} known vulnerabilities in {len(packages)} packages "
              f"({', '.join(locks)}, {service}):")
        for dep, vuln in found:
            aliases = f" ({', '.join(vuln['aliases'])})" if vuln.get("aliases") else ""
            fixes = ", ".join(vuln.get("fix_versions") or []) or "no fixed release yet"
            print(f"  {dep['name']} {dep['version']}: {vuln['id']}{aliases}; fixed in {fixes}")
        return 1
    if skipped and not audited:
        print(f"{UNREACHABLE} ({service} knows none of the {len(skipped)} locked releases, "
              f"e.g. {skipped[0]['skip_reason'][:120]!r}: this index serves no advisories)")
        return 0
    if status != 0:
        print(f"audit failed (pip-audit exit {status}): {_last_line(stderr)}")
        return 1
    print(f"audit: no known vulnerabilities in {len(audited)} packages "
          f"({', '.join(locks)}, {service})")
    for dep in skipped:
        print(f"  not audited: {dep['name']} {dep['version']}: {dep['skip_reason'][:120]}")
    return 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--service", required=True)
    parser.add_argument("--status", type=int, required=True, help="pip-audit's exit code")
    parser.add_argument("--report", type=Path, required=True)
    parser.add_argument("--stderr", type=Path, required=True)
    parser.add_argument("locks", nargs="+")
    args = parser.parse_args()
    stderr = args.stderr.read_text() if args.stderr.exists() else ""
    sys.exit(report(args.service, args.status, args.report, stderr, args.locks))


if __name__ == "__main__":
    main()
