"""What `make test` shows a newcomer: no line per skipped test, and as its very last line which
databases the suite ran on and how to run the rest. Checked on a real pytest run of one small
file with a PostgreSQL half to skip, as `make test` runs it (two xdist workers)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.databases import POSTGRES_ENV

pytestmark = pytest.mark.system

ROOT = Path(__file__).parents[2]
SAMPLE = "tests/api/test_stats.py"


def run_pytest(**env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k != POSTGRES_ENV and k != "DB_POOLER"}
    return subprocess.run(  # noqa: S603 - our own interpreter and test file
        [sys.executable, "-m", "pytest", "-n", "2", "-p", "no:cacheprovider", SAMPLE],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_sqlite_only_run_ends_with_the_databases_line_and_lists_no_skip() -> None:
    result = run_pytest()

    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.rstrip().splitlines()
    assert lines[-1].startswith("databases: SQLite only ("), lines[-3:]
    assert f"{POSTGRES_ENV}=postgresql://" in lines[-1]
    assert "make test-pgbouncer" in lines[-1]
    skipped = int(lines[-1].split("(", 1)[1].split(" skipped", 1)[0])
    assert skipped > 0  # the PostgreSQL half of the sample, counted but not listed
    assert "SKIPPED" not in result.stdout
    assert " passed" in lines[-2]
