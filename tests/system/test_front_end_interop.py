"""The front end's real path, with real Node packages (tests/interop, installed by `npm ci` from
its committed lock): a Better Auth server (email and password, its JWT plugin) on the local
PostgreSQL issues the tokens; the API verifies them through Better Auth's JWKS, configured only
through its AUTH_* settings; a TypeScript client generated from the served /openapi.json drives
it, and is type-checked. Skipped where Node or the installed packages are missing, or without
PostgreSQL (`.ci/run` has all three)."""

from __future__ import annotations

import asyncio
import os
import secrets
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.support.databases import (
    create_postgres_database,
    drop_postgres_database,
    libpq_dsn,
    postgres_url,
)
from tests.support.processes import free_port, serving
from tests.system.test_cli_migrate import cli_env

INTEROP = Path(__file__).parents[1] / "interop"
NODE = shutil.which("node")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(NODE is None, reason="node is missing"),
    pytest.mark.skipif(
        not (INTEROP / "node_modules").is_dir(),
        reason="the interop packages are not installed: npm ci --prefix tests/interop",
    ),
]
BIN = INTEROP / "node_modules" / ".bin"


def node_env(**values: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/"), **values}


def run_node(*command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - the interop packages' own tools
        list(command), cwd=INTEROP, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def open_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root: Path = tmp_path_factory.mktemp("openapi")
    with serving(cwd=root, env=cli_env(f"sqlite+aiosqlite:///{root / 'todo.db'}")) as url:
        yield url


def test_the_committed_client_types_are_those_of_the_served_document(
    open_api: str, tmp_path: Path
) -> None:
    generated = tmp_path / "api.d.ts"
    # The same options as `npm run generate`: fields with a default are optional in requests.
    result = run_node(
        str(BIN / "openapi-typescript"),
        f"{open_api}/openapi.json",
        "--default-non-nullable",
        "false",
        "-o",
        str(generated),
        env=node_env(),
    )

    assert result.returncode == 0, result.stderr
    committed = (INTEROP / "src" / "api.d.ts").read_text()
    assert generated.read_text() == committed, (
        "tests/interop/src/api.d.ts is stale: npm run generate --prefix tests/interop -- "
        "http://127.0.0.1:8000/openapi.json -o src/api.d.ts"
    )


def test_the_front_end_script_type_checks() -> None:
    result = run_node(str(BIN / "tsc"), "--noEmit", "-p", ".", env=node_env())

    assert result.returncode == 0, result.stdout + result.stderr


@contextmanager
def better_auth(tmp_path: Path, **settings: str) -> Iterator[str]:
    """`auth-server.mjs` on a free port with a database of its own; yields its base URL."""
    if postgres_url() is None:
        pytest.skip("Better Auth keeps its users in PostgreSQL: TEST_DATABASE_URL is not set")
    name = f"better_auth_{uuid.uuid4().hex[:12]}"
    database = asyncio.run(create_postgres_database(name))
    port = free_port()
    env = node_env(
        PORT=str(port),
        DATABASE_URL=libpq_dsn(database),
        BETTER_AUTH_SECRET=secrets.token_urlsafe(32),
        **settings,
    )
    log_path = tmp_path / "auth.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(  # noqa: S603 - our script, the machine's node
            [str(NODE), "auth-server.mjs"], cwd=INTEROP, env=env, stdout=log, stderr=log
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while not _answers(f"{url}/api/auth/jwks"):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"Better Auth did not start: {log_path.read_text()}")
            time.sleep(0.1)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        asyncio.run(drop_postgres_database(name))


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def api_env(tmp_path: Path, auth_url: str, **settings: str) -> dict[str, str]:
    """The API configured for Better Auth through its AUTH_* settings only."""
    return {
        **cli_env(f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"),
        # Better Auth's JWT plugin: EdDSA keys at /api/auth/jwks; iss and aud its base URL.
        "AUTH_JWKS_URL": f"{auth_url}/api/auth/jwks",
        "AUTH_JWT_ISSUER": auth_url,
        "AUTH_JWT_AUDIENCE": auth_url,
        **settings,
    }


def test_a_better_auth_user_drives_the_api_through_the_generated_client(
    tmp_path: Path,
) -> None:
    with better_auth(tmp_path) as auth, serving(cwd=tmp_path, env=api_env(tmp_path, auth)) as api:
        result = run_node(str(BIN / "tsx"), "flow.ts", env=node_env(AUTH_URL=auth, API_URL=api))

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "created Buy milk priority=medium",
        "listed high: File taxes",
        "update 200, stale update 412",
        "toggled completed=true, retried completed=true replayed=true",
        "bob on alice's tasks 403",
        "deleted 204",
    ]


ROTATION_S = "2"


def test_a_rotated_key_is_accepted_on_first_use_and_the_old_one_within_its_grace(
    tmp_path: Path,
) -> None:
    with (
        better_auth(tmp_path, JWKS_ROTATION_S=ROTATION_S) as auth,
        serving(
            cwd=tmp_path, env=api_env(tmp_path, auth, AUTH_JWKS_MIN_REFRESH_SECONDS="1")
        ) as api,
    ):
        result = run_node(
            str(BIN / "tsx"),
            "rotation.ts",
            env=node_env(AUTH_URL=auth, API_URL=api, JWKS_ROTATION_S=ROTATION_S),
        )

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines() == [
        "first key 200",
        "rotated key, first use 200",
        "first key, within the grace period 200",
    ]
