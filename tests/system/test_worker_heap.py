"""A served worker freezes what start-up built, so full collections stop walking it (see
`todo_api.main.freeze_startup_heap`); an app built any other way, as tests build many, does not.
Each case runs in a fresh interpreter: freezing is process-wide and cannot be undone safely."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

PROBE = textwrap.dedent(
    """
    import asyncio, gc, json, sys
    import httpx
    from todo_api.main import create_app, serve_app
    from todo_api.config import load_settings

    async def main():
        app = serve_app() if sys.argv[1] == "served" else create_app(load_settings())
        before = gc.get_freeze_count()
        async with app.router.lifespan_context(app):
            during = gc.get_freeze_count()
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                for _ in range(20):
                    assert (await client.get("/health/live")).status_code == 200
            after_requests = gc.get_freeze_count()
        print(json.dumps({"before": before, "during": during, "after_requests": after_requests}))

    asyncio.run(main())
    """
)


def probe(kind: str, tmp_path: Path, *, mcp: bool) -> dict[str, int]:
    env = {
        "PATH": os.environ.get("PATH", os.defpath),
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'todo.db'}",
        "LOG_LEVEL": "WARNING",
        "MCP_ENABLED": "true" if mcp else "false",
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run(  # noqa: S603 - our own interpreter and script
        [sys.executable, "-c", PROBE, kind],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    measured: dict[str, int] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


@pytest.mark.parametrize("mcp", [True, False], ids=["with-mcp", "without-mcp"])
def test_a_served_worker_freezes_its_start_up_objects_once_started(
    tmp_path: Path, mcp: bool
) -> None:
    measured = probe("served", tmp_path, mcp=mcp)

    assert measured["before"] == 0
    # The modules, the app and its schemas: tens of thousands of objects, not a handful.
    assert measured["during"] > 20_000
    # Once: what requests allocate afterwards stays within the collector's reach (frozen objects
    # freed by reference counting leave the count, so it may only shrink).
    assert measured["after_requests"] <= measured["during"]


def test_an_app_built_outside_a_worker_freezes_nothing(tmp_path: Path) -> None:
    measured = probe("built", tmp_path, mcp=True)

    assert measured["before"] == 0
    assert measured["during"] == 0
