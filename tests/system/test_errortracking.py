"""Error tracking in a fresh interpreter: without SENTRY_DSN the SDK is not even imported."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

DSN = "https://public-key@errors.example.invalid/42"


PROBE = f"""
import sys
from todo_api.config import Settings
from todo_api.main import create_app
create_app(Settings(_env_file=None))
print("sentry_sdk" in sys.modules)
create_app(Settings(_env_file=None, sentry_dsn="{DSN}"))
print("sentry_sdk" in sys.modules)
"""


def test_without_a_dsn_the_sdk_is_not_even_imported(tmp_path: Path) -> None:
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", PROBE],
        cwd=tmp_path,
        env={"DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    # Not imported by an app without SENTRY_DSN; imported (so the probe works) by one with it.
    assert result.stdout.split() == ["False", "True"]
