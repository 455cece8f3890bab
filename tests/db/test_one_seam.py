"""The database is chosen once, in ``db/`` (``make_engine`` and ``db.backends``): no code above
it asks which database it runs on."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Who may name a dialect: the backends, the migrations (DDL that differs per database) and the
# column type that stores UTC times on both. (make_engine chooses by URL, not by dialect.)
ALLOWED = {"db/types.py", "db/migrations/env.py"}
ALLOWED_DIRS = ("db/backends/", "db/migrations/versions/")
ASKS_THE_DIALECT = re.compile(r"dialect\.name|\.dialect\s*[=!]=|\bdialect\s*[=!]=\s*[\"']")


def _production_sources() -> list[Path]:
    # The files git tracks: installed packages (.venv, .venv-tools) and scratch files are not
    # the project's code.
    listed = subprocess.run(["git", "ls-files", "*.py"], cwd=ROOT, check=True,
                            capture_output=True, text=True).stdout.split()
    return [ROOT / name for name in listed if not name.startswith("tests/")]


def test_no_code_outside_db_asks_which_database_it_runs_on() -> None:
    sources = _production_sources()
    assert len(sources) > 50  # the scan sees the project
    offenders = []
    for path in sources:
        name = path.relative_to(ROOT).as_posix()
        if name in ALLOWED or name.startswith(ALLOWED_DIRS):
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if ASKS_THE_DIALECT.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert offenders == []


def test_the_scan_catches_the_usual_spellings() -> None:
    for line in ('if session.get_bind().dialect.name == "postgresql":',
                 'if db.dialect == "postgresql":', 'dialect = engine.dialect.name',
                 'if dialect == "sqlite":'):
        assert ASKS_THE_DIALECT.search(line), line
