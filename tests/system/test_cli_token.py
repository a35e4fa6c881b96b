"""`todo-api token USER_ID [--ttl N]`: a token the server accepts, or one clear line on stderr."""

from __future__ import annotations

import os
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import jwt
import pytest
from pydantic import AliasChoices

from tests.support.apps import build_app, client_for, close_app, database_url
from tests.support.databases import make_settings
from tests.support.processes import run_cli
from tests.support.tokens import AUDIENCE, ISSUER, SECRET, bearer
from todo_api.cli import EXIT_CONFIG, main
from todo_api.config import Settings
from todo_api.db.database import Database


def run_token(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command with only PATH and `env`, in a directory without a `.env` file."""
    environment = {"PATH": os.environ.get("PATH", os.defpath), **env}
    return run_cli("token", *args, cwd=tmp_path, env=environment)


def printed_token(returncode: int, stdout: str, stderr: str) -> str:
    assert returncode == 0, stderr
    assert stderr == ""
    lines = stdout.splitlines()
    assert len(lines) == 1
    assert stdout == lines[0] + "\n"
    return lines[0]


@dataclass(frozen=True)
class Outcome:
    returncode: int
    stdout: str
    stderr: str

    @property
    def token(self) -> str:
        return printed_token(self.returncode, self.stdout, self.stderr)


@pytest.fixture(scope="module")
def issued(tmp_path_factory: pytest.TempPathFactory) -> Outcome:
    """The real command, run once: `todo-api token alice --ttl 120` with secret, aud and iss."""
    result = run_token(
        tmp_path_factory.mktemp("cli"),
        "alice",
        "--ttl",
        "120",
        AUTH_JWT_SECRET=SECRET,
        AUTH_JWT_AUDIENCE=AUDIENCE,
        AUTH_JWT_ISSUER=ISSUER,
    )
    return Outcome(result.returncode, result.stdout, result.stderr)


@pytest.fixture
def command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> Callable[..., Outcome]:
    """`todo-api token ...` in this process (fast), in a clean environment and directory."""
    for key in list(os.environ):
        if key.upper() in setting_variables():
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)

    def run(*args: str, **env: str) -> Outcome:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        capsys.readouterr()
        returncode = main(["token", *args])
        captured = capsys.readouterr()
        return Outcome(returncode, captured.out, captured.err)

    return run


def setting_variables() -> set[str]:
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        alias = field.validation_alias
        if isinstance(alias, AliasChoices):
            names.update(str(choice).upper() for choice in alias.choices)
    return names


@pytest.fixture
async def api(db: Database) -> AsyncIterator[httpx.AsyncClient]:
    """The API with the secret, audience and issuer the commands below are given."""
    settings = make_settings(
        database_url=database_url(db),
        auth_jwt_secret=SECRET,
        auth_jwt_audience=AUDIENCE,
        auth_jwt_issuer=ISSUER,
    )
    application = build_app(db, settings)
    async with client_for(application) as client:
        yield client
    await close_app(application)


Command = Callable[..., Outcome]


class TestTokenCommand:
    def test_prints_one_line_and_nothing_on_stderr(self, issued: Outcome) -> None:
        token = issued.token

        assert token.count(".") == 2

    async def test_prints_a_token_the_server_accepts(
        self, issued: Outcome, api: httpx.AsyncClient
    ) -> None:
        created = await api.post(
            "/api/alice/tasks", json={"title": "Mine"}, headers=bearer(issued.token)
        )
        foreign = await api.get("/api/bob/tasks", headers=bearer(issued.token))

        assert created.status_code == 201
        assert created.json()["user_id"] == "alice"
        assert foreign.status_code == 403

    def test_the_token_carries_the_user_ttl_audience_and_issuer(self, issued: Outcome) -> None:
        claims = jwt.decode(issued.token, SECRET, algorithms=["HS256"], audience=AUDIENCE)

        assert claims["sub"] == "alice"
        assert claims["exp"] - claims["iat"] == 120
        assert claims["aud"] == AUDIENCE
        assert claims["iss"] == ISSUER

    def test_the_default_ttl_is_an_hour(self, command: Command) -> None:
        token = command("alice", AUTH_JWT_SECRET=SECRET).token

        claims = jwt.decode(token, SECRET, algorithms=["HS256"])
        assert claims["exp"] - claims["iat"] == 3600

    async def test_better_auth_secret_signs_it_too(
        self, command: Command, api: httpx.AsyncClient
    ) -> None:
        token = command(
            "alice", BETTER_AUTH_SECRET=SECRET, AUTH_JWT_AUDIENCE=AUDIENCE, AUTH_JWT_ISSUER=ISSUER
        ).token

        response = await api.get("/api/alice/tasks", headers=bearer(token))

        assert response.status_code == 200

    async def test_a_token_for_another_audience_is_refused(
        self, command: Command, api: httpx.AsyncClient
    ) -> None:
        token = command(
            "alice", AUTH_JWT_SECRET=SECRET, AUTH_JWT_AUDIENCE="elsewhere", AUTH_JWT_ISSUER=ISSUER
        ).token

        response = await api.get("/api/alice/tasks", headers=bearer(token))

        assert response.status_code == 401


NO_SECRET = (
    "todo-api: cannot issue a token: no AUTH_JWT_SECRET (or BETTER_AUTH_SECRET) is configured"
)


class TestTokenCommandErrors:
    def test_without_a_secret_the_command_fails_with_one_line(self, tmp_path: Path) -> None:
        result = run_token(tmp_path, "alice")

        assert result.returncode == EXIT_CONFIG
        assert result.stdout == ""
        assert result.stderr.splitlines() == [NO_SECRET]

    def test_with_only_a_jwks_url_it_fails_the_same_way(self, command: Command) -> None:
        outcome = command("alice", AUTH_JWKS_URL="https://auth.example.test/jwks")

        assert outcome == Outcome(EXIT_CONFIG, "", NO_SECRET + "\n")

    def test_a_short_secret_fails_without_showing_it(self, command: Command) -> None:
        outcome = command("alice", AUTH_JWT_SECRET="too-short")

        assert outcome == Outcome(
            EXIT_CONFIG,
            "",
            "todo-api: invalid configuration: AUTH_JWT_SECRET (or BETTER_AUTH_SECRET): "
            "must be at least 32 bytes (HS256 needs 256 bits)\n",
        )

    @pytest.mark.parametrize("user_id", ["has space", "a/b", "x" * 256])
    def test_an_invalid_user_id_fails_with_one_line(self, command: Command, user_id: str) -> None:
        outcome = command(user_id, AUTH_JWT_SECRET=SECRET)

        assert outcome == Outcome(
            EXIT_CONFIG,
            "",
            "todo-api: cannot issue a token: the user id must be 1-255 printable ASCII "
            "characters, no space or '/'\n",
        )

    @pytest.mark.parametrize("ttl", ["0", "-5"])
    def test_a_ttl_below_one_second_fails_with_one_line(self, command: Command, ttl: str) -> None:
        outcome = command("alice", f"--ttl={ttl}", AUTH_JWT_SECRET=SECRET)

        assert outcome == Outcome(EXIT_CONFIG, "", "todo-api: --ttl must be at least 1 second\n")

    @pytest.mark.parametrize(
        ("ttl", "env"), [("86401", {}), ("601", {"AUTH_MAX_TOKEN_TTL": "600"})], ids=["day", "set"]
    )
    def test_a_ttl_the_service_would_refuse_fails_with_one_line(
        self, command: Command, ttl: str, env: dict[str, str]
    ) -> None:
        outcome = command("alice", f"--ttl={ttl}", AUTH_JWT_SECRET=SECRET, **env)

        bound = env.get("AUTH_MAX_TOKEN_TTL", "86400")
        assert outcome == Outcome(
            EXIT_CONFIG, "", f"todo-api: --ttl must be at most AUTH_MAX_TOKEN_TTL ({bound} s)\n"
        )
