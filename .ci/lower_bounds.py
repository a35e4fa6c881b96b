"""Checks that every direct dependency (runtime, extras, dev) is installed at exactly its lower
bound: run in the environment `uv pip install --resolution lowest-direct` made, so the suite that
follows proves the bounds pyproject.toml claims."""

from __future__ import annotations

import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

PROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())["project"]


def direct_requirements() -> list[Requirement]:
    found = [Requirement(text) for text in PROJECT["dependencies"]]
    for texts in PROJECT["optional-dependencies"].values():
        found += [Requirement(text) for text in texts]
    own = canonicalize_name(PROJECT["name"])
    return [r for r in found if canonicalize_name(r.name) != own]


def main() -> int:
    wrong = []
    for requirement in direct_requirements():
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        bounds = [spec.version for spec in requirement.specifier if spec.operator == ">="]
        if len(bounds) != 1:
            wrong.append(f"{requirement}: no single lower bound (>=)")
            continue
        try:
            installed = version(requirement.name)
        except PackageNotFoundError:
            wrong.append(f"{requirement.name}: not installed")
            continue
        if Version(installed) != Version(bounds[0]):
            wrong.append(f"{requirement.name}: {installed} installed, lower bound {bounds[0]}")
    for line in wrong:
        sys.stderr.write(f"lower bounds: {line}\n")
    if not wrong:
        count = len(direct_requirements())
        sys.stdout.write(f"lower bounds: all {count} direct dependencies at their bound\n")
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())
