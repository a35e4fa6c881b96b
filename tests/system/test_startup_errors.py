"""A start-up that cannot use its database says why in one line: the database's own reason
(or what the connection met), the URL with its password masked, no traceback. Checked through
real `todo-api migrate` and `todo-api serve` processes (serve migrates first)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy.engine import make_url

from tests.support.databases import postgres_url, requires_postgres
from tests.support.processes import free_port, run_cli
from tests.system.test_cli_migrate import cli_env
from todo_api.cli import EXIT_DATABASE

pytestmark = [pytest.mark.system, pytest.mark.direct_postgres, requires_postgres]

COMMANDS = [("migrate",), ("serve", "--port", "0")]


@pytest.fixture(scope="module")
def silent_port() -> Iterator[int]:
    """A loopback port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        yield listener.getsockname()[1]


def with_url(**parts: object) -> str:
    base = make_url(postgres_url() or "")
    return base.set(**parts).render_as_string(hide_password=False)  # type: ignore[arg-type]


def one_line(command: tuple[str, ...], url: str, tmp_path: Path) -> str:
    env = {**cli_env(url), "DB_CONNECT_TIMEOUT": "1"}
    result = run_cli(*command, cwd=tmp_path, env=env)

    assert result.returncode == EXIT_DATABASE, result.stderr
    assert "Traceback" not in result.stderr
    [line] = [line for line in result.stderr.splitlines() if line.startswith("todo-api:")]
    assert line.startswith("todo-api: cannot use the database at "), line
    return line


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
class TestStartUpErrors:
    def test_a_missing_database_is_named(self, command: tuple[str, ...], tmp_path: Path) -> None:
        line = one_line(command, with_url(database="todo_no_such_database"), tmp_path)

        assert line.endswith(': database "todo_no_such_database" does not exist'), line

    def test_an_unknown_role_is_named(self, command: tuple[str, ...], tmp_path: Path) -> None:
        line = one_line(command, with_url(username="todo_no_such_role"), tmp_path)

        assert line.endswith(': role "todo_no_such_role" does not exist'), line

    def test_nothing_listening(self, command: tuple[str, ...], tmp_path: Path) -> None:
        port = free_port()  # bound, then closed: nothing listens there
        line = one_line(command, with_url(host="127.0.0.1", port=port), tmp_path)

        assert line.endswith(": connection refused: nothing is listening there"), line

    def test_no_answer_is_bounded_by_the_connect_timeout(
        self, command: tuple[str, ...], tmp_path: Path, silent_port: int
    ) -> None:
        url = with_url(host="127.0.0.1", port=silent_port, password="s3cret-pass")
        line = one_line(command, url, tmp_path)

        assert line.endswith(": no answer within 1 s (DB_CONNECT_TIMEOUT)"), line
        assert "s3cret-pass" not in line
        assert ":***@127.0.0.1" in line

    def test_ssl_required_by_the_client_but_not_offered(
        self, command: tuple[str, ...], tmp_path: Path
    ) -> None:
        url = with_url(query={"sslmode": "require"})

        line = one_line(command, url, tmp_path)

        # The machine's PostgreSQL runs without TLS: the driver says the server refused it.
        assert line.endswith("rejected SSL upgrade"), line
