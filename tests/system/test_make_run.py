"""The quick start's first command, as a reader runs it: `make run` in the repository serves on the
HOST and PORT it is given, says what it does first and gives the URLs to open last, and `/`
leads to Swagger UI. (The README's examples run against such a server; `make run` itself is not
one of them because it serves in the foreground.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from tests.support.processes import STARTUP_TIMEOUT_S, free_port

pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed"),
]

ROOT = Path(__file__).parents[2]
INSTALLED = ROOT / ".venv" / ".installed-runtime"


def installs_nothing() -> bool:
    """Whether `make run` would serve at once: its install is newer than what it installs from
    (otherwise it would sync the suite's own environment while the suite runs)."""
    if not INSTALLED.exists():
        return False
    stamp = INSTALLED.stat().st_mtime
    return all((ROOT / name).stat().st_mtime <= stamp for name in ("pyproject.toml", "uv.lock"))


@pytest.mark.skipif(not installs_nothing(), reason="make run would install first: run make once")
def test_make_run_serves_on_the_port_it_is_given_and_ends_with_the_urls(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-run.log"
    # The reader's shell (not a make of ours: `make test` runs this), but the database in a
    # directory of the test's own.
    ours = ("DATABASE_", "AUTH_", "MAKE", "MFLAGS")
    env = {k: v for k, v in os.environ.items() if not k.startswith(ours)}
    env["DATABASE_URL"] = f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}"
    with log.open("wb") as output:
        make = subprocess.Popen(  # noqa: S603 - the repository's own Makefile
            ["make", "run", f"PORT={port}", "HOST=127.0.0.1"],  # noqa: S607 - the machine's make
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # so that stopping it stops the server make started
        )
        try:
            root = wait_for(f"{base}/", make)
            lines = log.read_text().splitlines()  # up to the first answer
        finally:
            os.killpg(make.pid, signal.SIGTERM)
            make.wait(timeout=15)

    assert root.status_code == 307
    assert root.headers["location"] == "/docs"
    assert lines[0].startswith("make: ")
    start_up = [line for line in lines if "todo_api.access" not in line]
    assert start_up[-1].endswith(
        f"serving on {base}: Swagger UI {base}/docs, ReDoc {base}/redoc, "
        f"OpenAPI {base}/openapi.json (Ctrl+C stops)"
    ), lines


def wait_for(url: str, process: subprocess.Popen[bytes]) -> httpx.Response:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        assert process.poll() is None, f"make run exited with {process.returncode}"
        try:
            return httpx.get(url, follow_redirects=False, timeout=1)
        except httpx.TransportError:
            time.sleep(0.2)
    pytest.fail(f"make run did not answer at {url}")
