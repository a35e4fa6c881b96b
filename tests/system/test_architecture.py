"""The layers of docs/architecture.md hold: `lint-imports` (run by `make lint`) keeps every
contract on the code as it is, and refuses an import that points the wrong way."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(source_root: Path) -> subprocess.CompletedProcess[str]:
    """`lint-imports` with the project's contracts, on the package under `source_root`."""
    env = {**os.environ, "PYTHONPATH": str(source_root)}
    return subprocess.run(  # noqa: S603 - the project's own tool and configuration
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=source_root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_code_keeps_every_contract() -> None:
    result = lint_imports(ROOT / "src")

    assert result.returncode == 0, result.stdout
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "wrong_import", "contract"),
    [
        (
            "db/database.py",
            "import todo_api.http.problems",
            "The database layer knows nothing of HTTP or authentication",
        ),
        (
            "data/tasks.py",
            "import todo_api.services.listing",
            "Requests flow one way: routes -> services -> data access -> db",
        ),
        (
            "observability/metrics.py",
            "import todo_api.auth.guard",
            "http and auth are independent, and both stand on observability",
        ),
        (
            "services/tasks.py",
            "import fastapi",
            "Services and data access raise domain errors, never HTTP ones",
        ),
    ],
    ids=["db-imports-http", "data-imports-services", "metrics-import-auth", "service-fastapi"],
)
def test_an_import_against_the_layers_fails_the_lint(
    tmp_path: Path, module: str, wrong_import: str, contract: str
) -> None:
    shutil.copytree(ROOT / "src" / "todo_api", tmp_path / "todo_api")
    path = tmp_path / "todo_api" / module
    path.write_text(f"{path.read_text()}\n{wrong_import}  # noqa\n")

    result = lint_imports(tmp_path)

    assert result.returncode != 0
    assert f"{contract} BROKEN" in result.stdout
