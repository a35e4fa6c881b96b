"""Every shell example in README.md and docs/ runs, as written, against a served instance.

The `sh` blocks of each file run in order in one bash session (so a variable one block sets is
there for the next), in a fresh directory whose `.venv` is this interpreter's environment, with
`todo-api serve` already listening as the quick start's `make run` would (on a free port, put
in place of 127.0.0.1:8000; another 80xx port an example names, for a server of its own, is
given a free port too). `make run &` in a block restarts that server with the session's
environment, as it would for a reader. A `text` block right after an `sh` block is what it must
print (`…` stands for anything). A block preceded by `<!-- not run: REASON -->` is skipped.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.processes import free_port

pytestmark = pytest.mark.system

ROOT = Path(__file__).parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(\w*)\n(.*?)^```\n", re.DOTALL | re.MULTILINE)
NOT_RUN = re.compile(r"<!-- not run: (?P<reason>[^>]+) -->\s*\Z")
MARK = "@@example-{}@@"
# Where an example names a local port: in a URL or as `--port`.
LOCAL_PORT = re.compile(r"(?<=127\.0\.0\.1:)80\d\d\b|(?<=--port )80\d\d\b")
# `make run &` becomes a restart of the one server (the old one stopped first, as a reader
# would), with the environment the session has then.
PREAMBLE = r"""
set -o pipefail
stop_server() {
  [ -f "$WORK/server.pid" ] || return 0
  kill "$(cat "$WORK/server.pid")" 2> /dev/null
  while curl -s -o /dev/null "http://127.0.0.1:$PORT/health/live"; do sleep 0.1; done
}
start_server() {  # in the background, as `make run &` would
  stop_server
  .venv/bin/todo-api serve --port "$PORT" >> "$WORK/server.log" 2>&1 &
  echo "$!" > "$WORK/server.pid"
}
make() {
  if [ "$*" = run ]; then start_server; else echo "make $* is not run here" >&2; return 2; fi
}
start_server
until curl -sf -o /dev/null "http://127.0.0.1:$PORT/health/live"; do sleep 0.1; done
"""
CLEANUP = "\nstop_server\n"


@dataclass(frozen=True)
class Example:
    document: Path
    line: int
    code: str
    expected: str | None

    def __str__(self) -> str:
        return f"{self.document.relative_to(ROOT)}:{self.line}"


def examples(document: Path) -> tuple[list[Example], list[str]]:
    """The runnable `sh` examples of `document`, and the reasons given for those not run."""
    text = document.read_text(encoding="utf-8")
    blocks = list(FENCE.finditer(text))
    found, skipped = [], []
    for index, block in enumerate(blocks):
        if block.group(1) != "sh":
            continue
        marker = NOT_RUN.search(text[: block.start()])
        if marker:
            skipped.append(marker.group("reason"))
            continue
        expected = None
        if index + 1 < len(blocks) and blocks[index + 1].group(1) == "text":
            between = text[block.end() : blocks[index + 1].start()]
            if not between.strip():
                expected = blocks[index + 1].group(2)
        line = text.count("\n", 0, block.start()) + 1
        found.append(Example(document, line, block.group(2), expected))
    return found, skipped


def matches(expected: str, output: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.strip().split("…"))
    return re.fullmatch(pattern, output.strip(), re.DOTALL) is not None


def run_examples(found: list[Example], work: Path) -> list[tuple[str, int]]:
    """Each example's output and status, in order, from one bash session."""
    ports = {"8000": free_port()}

    def free_in_place_of(match: re.Match[str]) -> str:
        if match.group() not in ports:
            ports[match.group()] = free_port()
        return str(ports[match.group()])

    script = [PREAMBLE]
    for number, example in enumerate(found):
        code = LOCAL_PORT.sub(free_in_place_of, example.code)
        code = re.sub(r"^make run &$", "make run", code, flags=re.MULTILINE)
        script.append(f'echo {MARK.format(number)}\n{{\n{code}\n}}\necho "status=$?"\n')
    script.append(CLEANUP)
    (work / ".venv").symlink_to(Path(sys.prefix))
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "HOME": str(work),
        "WORK": str(work),
        "PORT": str(ports["8000"]),
    }
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    result = subprocess.run(  # noqa: S603 - the repository's own examples
        ["bash", "-c", "".join(script)],  # noqa: S607 - the machine's bash
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outputs = []
    for number in range(len(found)):
        after = result.stdout.split(MARK.format(number) + "\n", 1)
        assert len(after) == 2, f"{found[number]} never ran:\n{result.stderr}"
        body = after[1].split(MARK.format(number + 1), 1)[0]
        output, _, status = body.rpartition("status=")
        outputs.append((output, int(status.split()[0])))
    return outputs


@pytest.mark.parametrize("document", DOCUMENTS, ids=lambda path: path.name)
def test_every_shell_example_runs(document: Path, tmp_path: Path) -> None:
    found, skipped = examples(document)
    assert all(reason.strip() for reason in skipped)
    if not found:
        return
    if shutil.which("jq") is None and any(re.search(r"\bjq\b", e.code) for e in found):
        pytest.skip("jq is not installed (.ci/run installs it)")
    for example, (output, status) in zip(found, run_examples(found, tmp_path), strict=True):
        assert status == 0, f"{example} exited {status}:\n{output}"
        if example.expected is not None:
            assert matches(example.expected, output), f"{example} printed:\n{output}"


def test_the_example_parser(tmp_path: Path) -> None:
    document = tmp_path / "check.md"
    document.write_text(
        "<!-- not run: docker -->\n```sh\ndocker ps\n```\n\n```sh\necho hi\n```\n\n"
        "```text\nh…\n```\n"
    )
    found, skipped = examples(document)

    assert skipped == ["docker"]
    assert [(e.code, e.expected) for e in found] == [("echo hi\n", "h…\n")]
    assert matches("h…", "hi")
    assert not matches("h…x", "hi")
