"""The `todo-api` command as a real process: run it to completion, or serve on a free port."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx

STARTUP_TIMEOUT_S = 30
COMMAND = [sys.executable, "-m", "todo_api.cli"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def run_cli(*args: str, cwd: Path, env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """`todo-api ARGS` with exactly `env`, in `cwd` (pick one without a `.env` file)."""
    return subprocess.run(  # noqa: S603 - our own interpreter and arguments
        [*COMMAND, *args],
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def launch(
    *, cwd: Path, env: Mapping[str, str], args: Sequence[str] = (), stderr: IO[bytes] | None = None
) -> tuple[subprocess.Popen[bytes], str]:
    """Start `todo-api serve [ARGS]` on a free local port (its log to `stderr`, or nowhere); the
    process and its base URL once it answers. The caller stops it."""
    port = free_port()
    process = subprocess.Popen(  # noqa: S603 - our own interpreter and arguments
        [*COMMAND, "serve", "--port", str(port), *args],
        cwd=cwd,
        env=dict(env),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL if stderr is None else stderr,
    )
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_live(base_url, process)
    except BaseException:
        process.kill()
        process.wait(timeout=10)
        raise
    return process, base_url


@contextmanager
def serving(*, cwd: Path, env: Mapping[str, str]) -> Iterator[str]:
    """`todo-api serve` on a free local port; yields its base URL once it answers."""
    process, base_url = launch(cwd=cwd, env=env)
    try:
        yield base_url
    finally:
        process.terminate()
        process.wait(timeout=10)


def _wait_until_live(base_url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"todo-api serve exited with {process.returncode}")
        try:
            if httpx.get(f"{base_url}/health/live", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("todo-api serve did not start in time")
