"""The `todo-api` command refuses a bad configuration before it touches anything: one line on
stderr naming what is wrong, no traceback, and the configuration exit status."""

from __future__ import annotations

import os
from pathlib import Path

from tests.support.processes import run_cli
from todo_api.cli import EXIT_CONFIG


def command_env(**values: str) -> dict[str, str]:
    """A minimal environment for the `todo-api` command: nothing from the developer's shell."""
    env = {"PATH": os.environ.get("PATH", os.defpath)}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return {**env, **values}


class TestCommandLineConfigurationError:
    def test_migrate_with_a_bad_value_exits_with_one_line_naming_it(self, tmp_path: Path) -> None:
        env = command_env(
            DB_POOL_SIZE="0", DATABASE_URL=f"sqlite+aiosqlite:///{tmp_path / 'never-created.db'}"
        )

        result = run_cli("migrate", cwd=tmp_path, env=env)

        assert result.returncode == EXIT_CONFIG
        assert "Traceback" not in result.stderr
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert lines[0].startswith("todo-api: invalid configuration: DB_POOL_SIZE: ")
        assert result.stdout == ""
        assert not (tmp_path / "never-created.db").exists()


class TestProductionMode:
    def test_the_server_refuses_to_start(self, tmp_path: Path) -> None:
        env = {"PATH": os.environ.get("PATH", os.defpath), "ENVIRONMENT": "production"}
        env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"

        result = run_cli("serve", "--port", "1", cwd=tmp_path, env=env)

        assert result.returncode == 2
        assert result.stdout == ""
        assert result.stderr.splitlines() == [
            "todo-api: invalid configuration: ENVIRONMENT=production requires authentication: "
            "set AUTH_JWT_SECRET (or BETTER_AUTH_SECRET) or AUTH_JWKS_URL"
        ]
        assert not (tmp_path / "todo.db").exists()
