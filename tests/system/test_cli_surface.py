"""What the `todo-api` command tells a newcomer: its version, its options with their defaults,
and, first of all, which database a command acts on."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.processes import free_port, launch, run_cli
from tests.system.test_cli_config import command_env
from tests.system.test_cli_migrate import cli_env
from todo_api.cli import EXIT_DATABASE

pytestmark = pytest.mark.system


def first_line(stderr: str) -> str:
    return stderr.splitlines()[0] if stderr else ""


def test_version_is_the_installed_distribution(tmp_path: Path) -> None:
    result = run_cli("--version", cwd=tmp_path, env=command_env())

    assert result.returncode == 0
    assert result.stdout.strip() == f"todo-api {version('todo-api')}"


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("serve", ["--host HOST", "(default: 127.0.0.1)", "--port PORT", "(default: 8000)"]),
        ("serve", ["--workers", "--reload", "(development; default: off)"]),
        ("serve", ["--no-migrate", "(default: migrate first)"]),
        ("token", ["user_id", "--ttl TTL", "(default: 3600)"]),
    ],
)
def test_every_option_is_explained_with_its_default(
    tmp_path: Path, command: str, expected: list[str]
) -> None:
    result = run_cli(command, "--help", cwd=tmp_path, env=command_env())

    assert result.returncode == 0
    for text in expected:
        assert text in result.stdout
    options = [line for line in result.stdout.splitlines() if line.strip().startswith("-")]
    for line in options:  # each option line, or the one after it, carries a description
        assert len(line.split()) > 2 or line.strip().startswith("-h"), line


@pytest.mark.parametrize("command", ["migrate", "purge"])
def test_the_first_line_names_the_sqlite_file(tmp_path: Path, command: str) -> None:
    database = tmp_path / "here.db"
    url = f"sqlite+aiosqlite:///{database}"
    if command == "purge":
        assert run_cli("migrate", cwd=tmp_path, env=cli_env(url)).returncode == 0

    result = run_cli(command, cwd=tmp_path, env=cli_env(url))

    assert result.returncode == 0, result.stderr
    assert first_line(result.stderr).endswith(f"{command}: SQLite file {database}")


def test_a_relative_sqlite_path_is_named_absolutely(tmp_path: Path) -> None:
    result = run_cli("migrate", cwd=tmp_path, env=cli_env("sqlite+aiosqlite:///./todo.db"))

    assert first_line(result.stderr).endswith(f"migrate: SQLite file {tmp_path / 'todo.db'}")


def test_postgresql_is_named_with_its_password_masked(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there: the line comes before any connection
    url = f"postgresql://app:hunter2@127.0.0.1:{port}/tasks"

    result = run_cli("migrate", cwd=tmp_path, env=cli_env(url))

    assert result.returncode == EXIT_DATABASE
    line = first_line(result.stderr)
    assert line.endswith(
        f"migrate: PostgreSQL at postgresql+asyncpg://app:***@127.0.0.1:{port}/tasks"
    )
    assert "hunter2" not in result.stderr


def test_serve_names_its_database_first(tmp_path: Path) -> None:
    missing_directory = tmp_path / "nowhere" / "x.db"
    url = f"sqlite+aiosqlite:///{missing_directory}"  # fails right after the line: no server left

    result = run_cli("serve", "--port", "0", cwd=tmp_path, env=cli_env(url))

    assert result.returncode == EXIT_DATABASE
    assert first_line(result.stderr).endswith(f"serve: SQLite file {missing_directory}")
    assert not missing_directory.parent.exists()  # named, then refused: nothing was created


def test_the_last_start_up_line_gives_the_urls_to_open(tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    url = f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"
    with log.open("wb") as stderr:
        process, base_url = launch(cwd=tmp_path, env=cli_env(url), stderr=stderr)
        process.terminate()
        process.wait(timeout=10)
    lines = log.read_text().splitlines()
    start_up = lines[: next(i for i, line in enumerate(lines) if "todo_api.access" in line)]

    assert start_up[-1].endswith(
        f"serving on {base_url}: Swagger UI {base_url}/docs, ReDoc {base_url}/redoc, "
        f"OpenAPI {base_url}/openapi.json (Ctrl+C stops)"
    )
    assert not any("Uvicorn running on" in line for line in lines)
