"""`/docs` and `/redoc` in a real browser (Debian's Chromium driven by Playwright) with every
origin but the served one blocked: the pages render from the service alone, Swagger UI takes the
token `todo-api token` prints and creates a task, and neither page breaks its
Content-Security-Policy or logs an error. Screenshots go to build/screenshots/. Skipped where
chromium is missing (`.ci/run` installs it).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest

from tests.support.processes import run_cli, serving
from tests.support.tokens import SECRET, bearer
from tests.system.test_cli_migrate import cli_env

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium is missing"),
]
if CHROMIUM is not None:  # the package is a development dependency; the browser may be absent
    from playwright.sync_api import Browser, ConsoleMessage, Page, Request, Route, sync_playwright

SCREENSHOTS = Path(__file__).parents[2] / "build" / "screenshots"
CREATE = "#operations-tasks-create_task_api__user_id__tasks_post"
# Listens before any script of the page runs: each CSP violation is kept for the test to read.
RECORD_VIOLATIONS = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => {
  window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`);
});
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path, dict[str, str]]]:
    """The served app, its directory and its environment (a secret: authentication is on)."""
    root: Path = tmp_path_factory.mktemp("docs")
    env = {**cli_env(f"sqlite+aiosqlite:///{root / 'todo.db'}"), "AUTH_JWT_SECRET": SECRET}
    with serving(cwd=root, env=env) as url:
        yield url, root, env


@pytest.fixture(scope="module")
def base_url(served: tuple[str, Path, dict[str, str]]) -> str:
    return served[0]


@pytest.fixture(scope="module")
def cli_token(served: tuple[str, Path, dict[str, str]]) -> str:
    """A token for alice, made as a reader makes one: `todo-api token alice`."""
    _, root, env = served
    issued = run_cli("token", "alice", cwd=root, env=env)
    assert issued.returncode == 0, issued.stderr
    return issued.stdout.strip()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        # --no-sandbox: the suite may run as root, where Chromium's sandbox refuses to start.
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


@dataclass
class Watched:
    page: Page
    blocked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def violations(self) -> list[str]:
        found: list[str] = self.page.evaluate("window.__violations")
        return found

    def assert_clean(self) -> None:
        assert self.blocked == [], "the page reached for another origin"
        assert self.violations() == [], "the page broke its Content-Security-Policy"
        assert self.errors == [], "the page logged errors"


@pytest.fixture
def watched(browser: Browser, base_url: str) -> Iterator[Watched]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    result = Watched(page)

    def only_the_service(route: Route, request: Request) -> None:
        if request.url.startswith(f"{base_url}/"):
            route.continue_()
        else:
            result.blocked.append(request.url)
            route.abort()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            result.errors.append(message.text)

    context.route("**/*", only_the_service)
    page.add_init_script(RECORD_VIOLATIONS)
    page.on("console", on_console)
    page.on("pageerror", lambda error: result.errors.append(str(error)))
    yield result
    context.close()


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=SCREENSHOTS / name, full_page=True)


def test_the_root_leads_to_swagger_which_creates_a_task(
    watched: Watched, base_url: str, cli_token: str
) -> None:
    page = watched.page
    page.goto(f"{base_url}/")
    page.wait_for_selector(".opblock")

    assert page.url == f"{base_url}/docs"
    assert page.locator(".opblock").count() >= 10  # every operation of the document

    token = cli_token
    page.click("button.authorize")
    page.fill(".modal-ux input", token)
    page.click(".modal-ux button.authorize")
    page.click(".modal-ux button.btn-done")

    operation = page.locator(CREATE)
    operation.locator(".opblock-summary").click()
    operation.locator("button.try-out__btn").click()
    operation.locator('input[placeholder="user_id"]').fill("alice")
    operation.locator("textarea.body-param__text").fill('{"title": "made on the docs page"}')
    operation.locator("button.execute").click()
    status = operation.locator(".live-responses-table .response .response-col_status").first
    status.wait_for()

    assert status.inner_text().strip() == "201"
    listed = httpx.get(f"{base_url}/api/alice/tasks", headers=bearer(token)).json()
    assert [task["title"] for task in listed] == ["made on the docs page"]
    screenshot(page, "docs.png")
    watched.assert_clean()


def test_redoc_renders_every_operation(watched: Watched, base_url: str) -> None:
    page = watched.page
    page.goto(f"{base_url}/redoc")
    page.wait_for_selector("[data-section-id^='tag/tasks/operation/']")

    operations = page.locator("[data-section-id^='tag/tasks/operation/']").count()
    assert operations >= 9
    screenshot(page, "redoc.png")
    watched.assert_clean()


def test_the_pages_declare_their_policy(base_url: str) -> None:
    for path in ("/docs", "/redoc"):
        policy = httpx.get(f"{base_url}{path}").headers["content-security-policy"]
        assert "script-src 'self'" in policy.split("; ")
        assert "connect-src 'self'" in policy.split("; ")
        assert "unsafe-inline" not in policy.split("script-src", 1)[1].split(";", 1)[0]
