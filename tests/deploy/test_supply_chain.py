"""The supply chain: every dependency pinned with hashes in the lock files the two commands and
the image install from, the environment the tests run in is that lock, and the audit step says
clearly what it found, or that it could not look.

The audit tests run the real pip-audit (scripts/audit.sh, from .venv-tools); the vulnerability
database is the only thing stood in for, at the edge of the internet: an unreachable address,
and a local OSV-compatible server answering one advisory.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
RUNTIME_LOCK = ROOT / "requirements.lock"
DEV_LOCK = ROOT / "requirements-dev.lock"
TOOLS_LOCK = ROOT / "requirements-tools.lock"
UNREACHABLE = "audit skipped: vulnerability database unreachable ("
# One pinned requirement of a lock: "name==version \" then its "--hash=sha256:..." lines.
_PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])?==(?P<version>\S+)"
                  r"(?P<rest>(?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)", re.MULTILINE)


def locked(path: Path) -> dict[str, tuple[str, int]]:
    """{canonical name: (version, number of hashes)} of a lock file."""
    text = path.read_text()
    pins = {canonicalize_name(m["name"]): (m["version"], m["rest"].count("--hash=sha256:"))
            for m in _PIN.finditer(text)}
    # Every requirement line is a pin: nothing unpinned, no URL, no editable slipped in.
    requirement_lines = [line for line in text.splitlines()
                         if line and not line.startswith((" ", "#"))]
    assert len(requirement_lines) == len(pins), path.name
    return pins


def declared(*extras: str) -> list[Requirement]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(spec) for spec in project["dependencies"]]
    for extra in extras:
        found += [Requirement(spec) for spec in project["optional-dependencies"][extra]]
    return [req for req in found if req.marker is None or req.marker.evaluate()]


@pytest.mark.parametrize(("lock", "extras"), [(RUNTIME_LOCK, ()),
                                              (DEV_LOCK, ("test", "bench"))])
def test_every_declared_dependency_is_pinned_with_hashes(lock: Path, extras: tuple[str]) -> None:
    pins = locked(lock)
    for req in declared(*extras):
        name = canonicalize_name(req.name)
        assert name in pins, f"{req} is not in {lock.name}: run scripts/lock.sh"
        version, hashes = pins[name]
        assert req.specifier.contains(version, prereleases=True), (req, version)
    for name, (version, hashes) in pins.items():
        assert hashes >= 1, f"{name}=={version} in {lock.name} has no hash"


def test_the_locks_agree_and_the_tools_are_locked_too() -> None:
    runtime, dev = locked(RUNTIME_LOCK), locked(DEV_LOCK)
    # The dev lock is resolved under the runtime lock: same versions where both pin a package.
    assert {name: pin[0] for name, pin in runtime.items()} == \
        {name: dev[name][0] for name in runtime if name in dev}
    assert set(runtime) <= set(dev)
    tools = locked(TOOLS_LOCK)
    assert {"uv", "pip-audit"} <= set(tools) and all(h >= 1 for _, h in tools.values())


def test_the_test_environment_is_the_dev_lock() -> None:
    """What `make test` installed is what the lock says (a lock change reinstalls: the stamp
    file depends on it)."""
    different = {}
    for name, (version, _) in locked(DEV_LOCK).items():
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            installed = "missing"
        if canonicalize_name(installed) != canonicalize_name(version):
            different[name] = (version, installed)
    assert different == {}, "run `make .venv/.installed-test`"


def _recipe(makefile: str, target: str) -> tuple[str, list[str]]:
    """(prerequisites, recipe lines) of a Makefile target."""
    found = re.search(rf"^{re.escape(target)}:(?P<prereq>[^\n]*)\n(?P<body>(?:\t[^\n]*\n)+)",
                      makefile, re.MULTILINE)
    assert found, target
    return found["prereq"], [line.strip() for line in found["body"].splitlines()]


def test_make_run_and_make_test_install_from_the_locks() -> None:
    makefile = (ROOT / "Makefile").read_text()
    for target, lock in (("$(VENV)/.installed", "requirements.lock"),
                         ("$(VENV)/.installed-test", "requirements-dev.lock")):
        prerequisites, recipe = _recipe(makefile, target)
        assert lock in prerequisites.split()  # a lock change reinstalls
        installs = [line for line in recipe if "pip install" in line]
        assert installs == [
            f"$(BIN)/python -m pip install --quiet --require-hashes -r {lock}",
            "$(BIN)/python -m pip install --quiet --no-deps -e .",
        ], target
    # Nothing else installs dependencies around the locks.
    assert "-e '.[" not in makefile and '-e ".[' not in makefile


def test_the_image_installs_from_the_lock() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY requirements.lock ./" in dockerfile
    installs = re.findall(r"pip install [^\n\\]*", dockerfile)
    assert installs == ["pip install --no-cache-dir --require-hashes -r requirements.lock",
                        "pip install --no-cache-dir --no-deps . "], installs
    assert "!requirements.lock" in (ROOT / ".dockerignore").read_text().splitlines()


def test_the_test_command_runs_the_audit_first() -> None:
    script = (ROOT / "scripts" / "test.sh").read_text().splitlines()
    audit = script.index("bash scripts/audit.sh")
    assert audit < next(i for i, line in enumerate(script) if "pytest" in line and "exec" in line)


def _audit(*locks: Path, **env: str) -> subprocess.CompletedProcess[str]:
    names = [str(lock.relative_to(ROOT)) for lock in locks]
    return subprocess.run(["bash", "scripts/audit.sh", *names], cwd=ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
@pytest.mark.timeout(320)
@pytest.mark.parametrize("how", ["pypi behind a dead proxy", "osv at a dead address"])
def test_audit_says_clearly_when_the_database_is_unreachable_and_does_not_fail(
        how: str) -> None:
    dead = "http://127.0.0.1:9"  # the discard port: nothing listens
    env = ({"HTTPS_PROXY": dead, "HTTP_PROXY": dead, "https_proxy": dead, "http_proxy": dead}
           if how.startswith("pypi") else
           {"AUDIT_SERVICE": "osv", "AUDIT_OSV_URL": f"{dead}/v1/query"})
    result = _audit(RUNTIME_LOCK, **env)
    lines = result.stdout.splitlines()
    assert result.returncode == 0, result.stdout + result.stderr
    assert len(lines) == 1 and lines[0].startswith(UNREACHABLE), result.stdout
    assert "127.0.0.1" in lines[0] or "proxy" in lines[0].lower(), lines[0]  # says why


class _OneAdvisory(BaseHTTPRequestHandler):
    """OSV's query API (POST /v1/query) knowing one advisory: jinja2 before 3.1.99."""

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        vulns = []
        if query["package"]["name"] == "jinja2":
            vulns.append({
                "id": "GHSA-test-0000-0000", "aliases": ["CVE-2099-0001"],
                "summary": "a test advisory", "schema_version": "1.6.0",
                "affected": [{"package": {"name": "jinja2", "ecosystem": "PyPI"},
                              "ranges": [{"type": "ECOSYSTEM",
                                          "events": [{"introduced": "0"},
                                                     {"fixed": "3.1.99"}]}]}],
            })
        body = json.dumps({"vulns": vulns} if vulns else {}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def osv_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _OneAdvisory)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1/query"
    server.shutdown()
    server.server_close()


@pytest.mark.slow
@pytest.mark.timeout(320)
def test_audit_lists_a_vulnerability_with_its_fix_and_fails(osv_server: str) -> None:
    jinja2 = locked(RUNTIME_LOCK)["jinja2"][0]
    result = _audit(RUNTIME_LOCK, AUDIT_SERVICE="osv", AUDIT_OSV_URL=osv_server)
    assert result.returncode == 1, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "audit: 1 known vulnerabilities in 1 packages (requirements.lock, osv):",
        # pip-audit names it by its CVE alias first.
        f"  jinja2 {jinja2}: CVE-2099-0001 (GHSA-test-0000-0000); fixed in 3.1.99",
    ]


@pytest.mark.slow
@pytest.mark.timeout(320)
def test_audit_passes_a_clean_lock(osv_server: str) -> None:
    result = _audit(TOOLS_LOCK, AUDIT_SERVICE="osv", AUDIT_OSV_URL=osv_server)
    assert result.returncode == 0, result.stdout + result.stderr
    count = len(locked(TOOLS_LOCK))
    assert result.stdout.splitlines() == [
        f"audit: no known vulnerabilities in {count} packages (requirements-tools.lock, osv)"]


def test_the_report_treats_an_index_without_advisories_as_unreachable(tmp_path: Path) -> None:
    """An index that answers "not found" for every release (a mirror without PyPI's per-release
    JSON, as on this machine): pip-audit skips everything and prints "No known vulnerabilities
    found", exit 0. That is no audit, and must not read as a pass."""
    report = tmp_path / "report.json"
    report.write_text(json.dumps({"dependencies": [
        {"name": "flask", "version": "3.1.3",
         "skip_reason": "Dependency not found on PyPI and could not be audited: flask (3.1.3)"}],
        "fixes": []}))
    result = subprocess.run(
        [sys.executable, "scripts/audit_report.py", "--service", "pypi", "--status", "0",
         "--report", str(report), "--stderr", str(tmp_path / "none"), "requirements.lock"],
        cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert result.stdout.startswith(UNREACHABLE + "pypi knows none of the 1 locked releases")
