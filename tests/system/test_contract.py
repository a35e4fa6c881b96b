"""The served process honours its own OpenAPI document, checked from outside by schemathesis.

`todo-api serve` runs as a real subprocess on each database; the schemathesis command line
generates valid and invalid requests for every operation, runs every check on each response
(no 5xx, documented status, media type, headers and schema, invalid input refused, valid input
accepted) and its stateful phase follows the links between operations.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from tests.support.databases import create_postgres_database, drop_postgres_database
from tests.support.processes import serving

CONTRACT_SEED = os.environ.get("CONTRACT_SEED", "20261126")
ROOT = Path(__file__).resolve().parents[2]


CONTRACT_SECRET = "contract-test-secret-of-at-least-32-bytes"


@pytest.fixture(scope="session", params=["open", "authenticated"])
def auth_mode(request: pytest.FixtureRequest) -> str:
    mode: str = request.param
    return mode


@pytest.fixture(scope="session")
async def served(
    backend: str, auth_mode: str, worker_tag: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """`todo-api serve` on a fresh database of `backend`; yields its base URL."""
    workdir: Path = tmp_path_factory.mktemp("served")
    pg_name = f"todo_contract_{auth_mode}_{worker_tag}"
    if backend == "sqlite":
        url = f"sqlite+aiosqlite:///{workdir / 'todo.db'}"
    else:
        url = await create_postgres_database(pg_name)
    env = {**os.environ, "DATABASE_URL": url, "LOG_LEVEL": "WARNING", "RATE_LIMIT": "0"}
    if auth_mode == "authenticated":
        env["AUTH_JWT_SECRET"] = CONTRACT_SECRET
    try:
        with serving(cwd=workdir, env=env) as base_url:
            yield base_url
    finally:
        if backend == "postgresql":
            await drop_postgres_database(pg_name)


def test_server_honours_its_openapi_document(served: str, auth_mode: str, tmp_path: Path) -> None:
    """With authentication on, each request carries a token for its path's user (see
    tests/support/contract_hooks.py), and schemathesis also checks that requests without one are
    refused."""
    schemathesis = Path(sys.executable).with_name("schemathesis")
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "tests.support.contract_hooks"}
    if auth_mode == "authenticated":
        env["CONTRACT_JWT_SECRET"] = CONTRACT_SECRET
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    command = [
        str(schemathesis),
        f"--config-file={Path(__file__).with_name('schemathesis.toml')}",
        "run",
        str(_document_without_cursors(served, tmp_path)),
        f"--url={served}",
        "--checks=all",
        "--max-examples=40",
        "--workers=1",
        "--generation-database=none",
        "--no-color",
        # A fixed seed keeps CI repeatable (schemathesis now and then labels a generated
        # user_id that breaks the published pattern as valid); CONTRACT_SEED=random explores.
        *([] if CONTRACT_SEED == "random" else [f"--seed={CONTRACT_SEED}"]),
    ]
    result = _run(command, cwd=tmp_path, env=env)
    if result.returncode != 0 and _tool_crashed(result.stdout):
        # schemathesis itself occasionally crashes inside hypothesis (a CPython `ast` race);
        # that says nothing about the server, so the run is repeated once.
        result = _run(command, cwd=tmp_path, env=env)

    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "No issues found" in result.stdout


def _document_without_cursors(served: str, directory: Path) -> Path:
    """The served document, minus the `cursor` query parameter: cursors are opaque values only
    the server issues, so any generated one is rightly refused with 400. Cursor round trips,
    tampering and reuse with other filters have tests of their own."""
    document: dict[str, Any] = httpx.get(f"{served}/openapi.json", timeout=10).json()
    for path_item in document["paths"].values():
        for operation in path_item.values():
            operation["parameters"] = [
                p for p in operation.get("parameters", []) if p["name"] != "cursor"
            ]
    path = directory / "openapi.json"
    path.write_bytes(orjson.dumps(document))
    return path


def _run(command: list[str], *, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own tool and arguments
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=600, check=False
    )


def _tool_crashed(output: str) -> bool:
    """A schemathesis run that errored internally but found no failing check."""
    return "Runtime Error" in output and "Failures:" not in output
