"""The deployment recipe (Dockerfile, compose.yaml, docs/runbook.md) agrees with the service.

No container engine is needed: the files are parsed and checked against what the code reads
(`Settings`) and serves (`todo-api serve`, `/health/live`).
"""

from __future__ import annotations

import ipaddress
import json
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import AliasChoices
from sqlalchemy.engine import make_url

from todo_api.config import LogLevel, Settings
from todo_api.db import database as core_db

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
COMPOSE = ROOT / "compose.yaml"
RUNBOOK = ROOT / "docs" / "runbook.md"
# A container must listen on every interface to be reachable through its published port.
ALL_INTERFACES = "0.0.0.0"  # noqa: S104

SLIM_PYTHON = re.compile(r"^(?:docker\.io/(?:library/)?)?python:3\.\d+(?:\.\d+)?-slim(?:-[a-z]+)?$")
# Environment variables the documents may name that the service's Settings do not read.
STANDARD_VARIABLES = {
    "FORWARDED_ALLOW_IPS": "uvicorn: which proxies' X-Forwarded-For headers to trust",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_client: metrics shared by several worker processes",
}


def setting_variables() -> set[str]:
    """Every environment variable Settings reads (aliases included), upper-cased."""
    names: set[str] = set()
    for name, info in Settings.model_fields.items():
        aliases = [info.alias, info.validation_alias]
        if not any(isinstance(alias, str | AliasChoices) for alias in aliases):
            names.add(name.upper())
        for alias in aliases:
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            names.update(choice.upper() for choice in choices if isinstance(choice, str))
    return names


# --- Dockerfile --------------------------------------------------------------------------------


@dataclass
class Instruction:
    keyword: str
    arguments: str

    def exec_form(self) -> list[str] | None:
        """The JSON-array (exec) form's arguments, or None for the shell form."""
        try:
            value = json.loads(self.arguments)
        except json.JSONDecodeError:
            return None
        if isinstance(value, list) and all(isinstance(item, str) for item in value):
            return value
        return None


@dataclass
class Stage:
    image: str
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def all(self, keyword: str) -> list[Instruction]:
        return [item for item in self.instructions if item.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.all(keyword)
        return found[-1] if found else None

    def index(self, keyword: str) -> int:
        return max(i for i, item in enumerate(self.instructions) if item.keyword == keyword)

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for item in self.all("ENV"):
            words = shlex.split(item.arguments)
            if words and "=" not in words[0]:  # legacy `ENV NAME value`
                values[words[0]] = " ".join(words[1:])
                continue
            for word in words:
                key, _, value = word.partition("=")
                values[key] = value
        return values


def dockerfile_instructions(text: str) -> list[Instruction]:
    """Instructions with line continuations joined, comment lines dropped (as BuildKit does)."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # also inside a continuation, where Docker drops comment lines
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical = (pending + line).strip()
        pending = ""
        keyword, _, arguments = logical.partition(" ")
        instructions.append(Instruction(keyword.upper(), arguments.strip()))
    assert not pending, "the Dockerfile ends inside a line continuation"
    return instructions


def substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return variables.get(name, match.group(0))

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, text)


def dockerfile_stages(text: str) -> list[Stage]:
    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for item in dockerfile_instructions(text):
        if item.keyword == "ARG" and not stages:
            arg, _, default = item.arguments.partition("=")
            global_args[arg.strip()] = default.strip().strip("\"'")
        elif item.keyword == "FROM":
            words = [w for w in item.arguments.split() if not w.startswith("--platform")]
            alias = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(substitute(words[0], global_args), alias))
        else:
            assert stages, f"{item.keyword} before the first FROM"
            stages[-1].instructions.append(item)
    return stages


@pytest.fixture(scope="module")
def stages() -> list[Stage]:
    return dockerfile_stages(DOCKERFILE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def final(stages: list[Stage]) -> Stage:
    return stages[-1]


def container_command(stage: Stage) -> list[str]:
    """ENTRYPOINT + CMD, both required in exec form."""
    argv: list[str] = []
    for keyword in ("ENTRYPOINT", "CMD"):
        item = stage.last(keyword)
        if item is None:
            continue
        words = item.exec_form()
        assert words is not None, f"{keyword} must use the exec (JSON array) form"
        argv += words
    return argv


def option(argv: list[str], name: str) -> str | None:
    for i, word in enumerate(argv):
        if word == name and i + 1 < len(argv):
            return argv[i + 1]
        if word.startswith(name + "="):
            return word.split("=", 1)[1]
    return None


def exposed_ports(stage: Stage) -> set[int]:
    return {
        int(word.split("/")[0]) for item in stage.all("EXPOSE") for word in item.arguments.split()
    }


def test_dockerfile_parser_joins_continuations_and_skips_comments() -> None:
    text = 'FROM python:3.11-slim AS a\nRUN one \\\n    # dropped\n    two\nCMD ["x", "y"]\n'
    (stage,) = dockerfile_stages(text)
    assert stage.name == "a"
    assert [(i.keyword, i.arguments) for i in stage.instructions] == [
        ("RUN", "one  two"),
        ("CMD", '["x", "y"]'),
    ]
    assert stage.instructions[1].exec_form() == ["x", "y"]


def test_every_stage_builds_on_a_slim_python_with_a_pinned_minor(stages: list[Stage]) -> None:
    names = {stage.name for stage in stages}
    for stage in stages:
        if stage.image in names:
            continue  # FROM an earlier stage
        assert SLIM_PYTHON.match(stage.image), stage.image


def test_runs_as_a_fixed_non_root_user_before_the_command(final: Stage) -> None:
    user = final.last("USER")
    assert user is not None, "the final stage must set USER"
    name = user.arguments.split(":")[0]
    assert name not in {"root", "0"}
    assert name.isdigit(), "a numeric UID lets runAsNonRoot verify it"
    for keyword in ("CMD", "ENTRYPOINT"):
        if final.last(keyword) is not None:
            assert final.index("USER") < final.index(keyword)


def test_command_serves_on_all_interfaces_at_the_exposed_port(final: Stage) -> None:
    argv = container_command(final)
    assert argv[:2] == ["todo-api", "serve"], argv
    assert option(argv, "--host") == ALL_INTERFACES
    port = option(argv, "--port")
    assert port is not None
    assert exposed_ports(final) == {int(port)}


def test_healthcheck_asks_liveness_with_the_standard_library(final: Stage) -> None:
    check = final.last("HEALTHCHECK")
    assert check is not None
    _, _, command = check.arguments.partition("CMD")
    words = Instruction("CMD", command.strip()).exec_form() or shlex.split(command)
    script = " ".join(words)
    assert words[0] in {"python", "python3"}
    assert "urllib" in script
    assert not {"curl", "wget"} & set(words)
    url = re.search(r"https?://[^'\"\s]+", script)
    assert url is not None
    assert url.group(0).endswith("/health/live")
    (port,) = exposed_ports(final)
    assert f":{port}/" in url.group(0)


def test_production_environment_and_python_flags(final: Stage) -> None:
    env = final.env()
    assert env.get("ENVIRONMENT") == "production"
    assert env.get("PYTHONDONTWRITEBYTECODE") == "1"
    assert env.get("PYTHONUNBUFFERED") == "1"


def test_no_dev_dependencies_or_editable_install(stages: list[Stage]) -> None:
    for stage in stages:
        for run in stage.all("RUN"):
            assert "[dev]" not in run.arguments
            assert not re.search(r"pip install[^&;]*\s(-e|--editable)\s", run.arguments)


def uv_sync(stages: list[Stage]) -> list[str]:
    """The builder's `uv sync ...` command line (the one install of the project)."""
    runs = [run.arguments for stage in stages for run in stage.all("RUN")]
    found = [cmd.split("&&")[0].split() for cmd in runs if cmd.startswith("uv sync")]
    assert len(found) == 1, "exactly one `uv sync` installs the project"
    return found[0]


def test_the_image_and_the_makefile_use_one_uv(stages: list[Stage]) -> None:
    makefile = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(), re.MULTILINE)
    image = re.search(r"^ARG UV_VERSION=(\S+)$", DOCKERFILE.read_text(), re.MULTILINE)
    assert makefile is not None
    assert image is not None
    assert makefile.group(1) == image.group(1)


def test_the_image_installs_exactly_the_lock(stages: list[Stage]) -> None:
    sync = uv_sync(stages)
    assert "--locked" in sync or "--frozen" in sync
    assert "--no-editable" in sync
    copied = [item.arguments for stage in stages for item in stage.all("COPY")]
    assert any("uv.lock" in arguments.split() for arguments in copied)
    assert (ROOT / "uv.lock").is_file()


# Settings that need an optional extra: an image that a deployment configures with one must
# have it installed, or the service stops at start-up (Settings names the missing extra).
EXTRA_OF_SETTING = {"REDIS_URL": "redis", "SENTRY_DSN": "sentry"}


def test_the_image_has_every_extra_a_setting_may_turn_on(
    stages: list[Stage], services: dict[str, Any]
) -> None:
    sync = uv_sync(stages)
    installed = {sync[i + 1] for i, word in enumerate(sync) if word == "--extra"}
    assert set(EXTRA_OF_SETTING.values()) <= installed
    # And the shipped stack sets one of them: the image it builds must carry that extra.
    used = {
        EXTRA_OF_SETTING[key] for key in environment(services["api"]) if key in EXTRA_OF_SETTING
    }
    assert used == {"redis"}
    assert used <= installed


def test_extras_exist_in_the_project() -> None:
    document = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    extras = document["project"]["optional-dependencies"]
    for extra in EXTRA_OF_SETTING.values():
        assert extra in extras, extra
    runtime = " ".join(document["project"]["dependencies"])
    # Optional: not installed with the runtime dependencies.
    assert "redis" not in runtime
    assert "sentry" not in runtime


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = {line.strip() for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()}
    for required in (".venv", ".git", ".env", "*.db", ".pytest_cache", ".mypy_cache"):
        assert required in patterns, required
    assert "**/__pycache__" in patterns or "__pycache__" in patterns


# --- compose.yaml ------------------------------------------------------------------------------

SUBSTITUTION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")


def interpolate(value: str) -> str:
    """Compose's `${NAME:-default}` becomes the default; anything else a placeholder."""

    def replace(match: re.Match[str]) -> str:
        if match.group(2) in {":-", "-"}:
            return match.group(3)
        return f"placeholder-{match.group(1).lower()}"

    return SUBSTITUTION.sub(replace, value)


def compose_document() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


@pytest.fixture(scope="module")
def services() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    result: dict[str, Any] = document["services"]
    volumes = document.get("volumes") or {}
    db_volumes = [v.split(":")[0] for v in result["db"].get("volumes", [])]
    assert any(source in volumes for source in db_volumes), "db needs a named volume"
    return result


def environment(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("environment") or {}
    if isinstance(raw, list):
        raw = dict(item.split("=", 1) if "=" in item else (item, "") for item in raw)
    return {str(key): str(value) for key, value in raw.items()}


def depends_on(service: dict[str, Any]) -> dict[str, str]:
    raw = service.get("depends_on") or {}
    if isinstance(raw, list):
        return dict.fromkeys(raw, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in raw.items()}


def database_url(service: dict[str, Any]) -> Any:
    return make_url(interpolate(environment(service)["DATABASE_URL"]))


def pgbouncer_port(services: dict[str, Any]) -> int:
    return int(environment(services["pgbouncer"]).get("LISTEN_PORT", "5432"))


def test_db_is_postgres_16_with_a_pg_isready_healthcheck(services: dict[str, Any]) -> None:
    db = services["db"]
    assert str(db["image"]).split(":")[0] == "postgres"
    assert str(db["image"]).split(":")[1].startswith("16")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])


def test_pgbouncer_pools_transactions_with_explicit_sizes(services: dict[str, Any]) -> None:
    pgbouncer = services["pgbouncer"]
    env = environment(pgbouncer)
    assert env["POOL_MODE"] == "transaction"
    for size in ("DEFAULT_POOL_SIZE", "MAX_CLIENT_CONN", "RESERVE_POOL_SIZE"):
        assert int(env[size]) > 0, size
    assert env["DB_HOST"] == "db"
    assert depends_on(pgbouncer) == {"db": "service_healthy"}
    assert "healthcheck" in pgbouncer


def workers(service: dict[str, Any]) -> int:
    command = [str(part) for part in service.get("command", [])]
    return int(command[command.index("--workers") + 1]) if "--workers" in command else 1


def test_api_with_several_workers_shares_its_rate_limits_through_redis(
    services: dict[str, Any],
) -> None:
    api = services["api"]
    assert workers(api) > 1
    url = make_url(interpolate(environment(api)["REDIS_URL"]))
    assert url.drivername == "redis"
    assert url.host in services
    assert str(services[url.host]["image"]).split(":")[0] == "redis"
    assert "redis-cli" in " ".join(services[url.host]["healthcheck"]["test"])
    assert depends_on(api)[url.host] == "service_healthy"


def test_api_goes_through_pgbouncer(services: dict[str, Any]) -> None:
    api = services["api"]
    url = database_url(api)
    assert url.host == "pgbouncer"
    assert (url.port or 5432) == pgbouncer_port(services)
    assert environment(api)["DB_POOLER"] == "pgbouncer"


def test_migrations_connect_to_postgres_directly(services: dict[str, Any]) -> None:
    migrate = services["migrate"]
    assert migrate["command"] == ["migrate"]
    url = database_url(migrate)
    assert url.host == "db"
    assert environment(migrate).get("DB_POOLER", "auto") != "pgbouncer"
    assert depends_on(migrate).get("db") == "service_healthy"
    assert migrate.get("restart", "no") == "no"


def test_api_starts_after_healthy_databases_and_a_finished_migration(
    services: dict[str, Any],
) -> None:
    api = services["api"]
    assert depends_on(api) == {
        "db": "service_healthy",
        "pgbouncer": "service_healthy",
        "redis": "service_healthy",
        "migrate": "service_completed_successfully",
    }
    # The migration already ran: the server must not repeat it through the pooler.
    command = api["command"]
    assert command[:1] == ["serve"]
    assert "--no-migrate" in command
    assert option(command, "--host") == ALL_INTERFACES


def test_the_api_is_reached_only_through_the_proxy(services: dict[str, Any]) -> None:
    api, proxy = services["api"], services["proxy"]
    assert "ports" not in api, "the API must not be published past the proxy"
    # Forwarded addresses are trusted from the edge network only, which holds just the two.
    edge = ipaddress.ip_network(
        compose_document()["networks"]["edge"]["ipam"]["config"][0]["subnet"]
    )
    assert ipaddress.ip_network(environment(api)["FORWARDED_ALLOW_IPS"]) == edge
    assert [name for name, s in services.items() if "edge" in (s.get("networks") or [])] == [
        "api",
        "proxy",
    ]
    assert str(proxy["image"]).split(":")[0] == "nginx"
    template = "./deploy/nginx/default.conf.template"
    assert f"{template}:/etc/nginx/templates/default.conf.template:ro" in proxy["volumes"]
    assert (ROOT / template).is_file()
    env = environment(proxy)
    assert env["TODO_API_UPSTREAM"] == f"api:{option(api['command'], '--port')}"
    assert {"TLS_CERTIFICATE", "TLS_CERTIFICATE_KEY"} <= set(env)
    assert "443:443" in proxy["ports"]


def test_api_stop_grace_outlasts_the_shutdown_grace(services: dict[str, Any]) -> None:
    api = services["api"]
    grace = float(environment(api).get("SHUTDOWN_GRACE_S", "30"))
    match = re.fullmatch(r"(\d+)s", str(api.get("stop_grace_period", "10s")))
    assert match is not None
    assert int(match.group(1)) > grace


def test_secrets_are_substituted_never_committed(services: dict[str, Any]) -> None:
    required = re.compile(r"^\$\{\w+:\?[^}]*\}$")
    for name, service in services.items():
        for key, value in environment(service).items():
            if any(word in key for word in ("SECRET", "PASSWORD", "TOKEN", "DSN")):
                assert required.match(value), f"{name}.{key} must be ${{{key}:?...}}"
            if key == "DATABASE_URL":
                password = re.match(r"^[\w+]+://[^:/@]+:(.*)@[^@]+$", value)
                assert password is not None, f"{name}.{key} has no password"
                assert required.match(password.group(1)), f"{name}.{key}"
    for name in ("api", "migrate"):
        secret = environment(services[name])["AUTH_JWT_SECRET"]
        assert secret.startswith("${AUTH_JWT_SECRET:?"), name


@pytest.mark.parametrize("name", ["api", "migrate"])
def test_app_services_only_set_real_settings(
    services: dict[str, Any], name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = environment(services[name])
    unknown = set(env) - setting_variables() - set(STANDARD_VARIABLES)
    assert not unknown, f"{name} sets variables Settings does not read: {sorted(unknown)}"
    # And the values pass validation (production included) as the container would read them.
    for variable in setting_variables():
        monkeypatch.delenv(variable, raising=False)
    values: dict[str, Any] = {
        key.lower(): interpolate(value)
        for key, value in env.items()
        if key not in STANDARD_VARIABLES
    }
    values["auth_jwt_secret"] = "x" * 32
    settings = Settings(_env_file=None, **values)
    assert settings.is_production


# --- docs/runbook.md ---------------------------------------------------------------------------


def runbook_variables(text: str) -> set[str]:
    """ALL_CAPS names in inline code (`NAME` or `NAME=value`), outside fenced blocks."""
    prose = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    names = set()
    for span in re.findall(r"`([^`\n]+)`", prose):
        candidate = span.strip().split("=", 1)[0]
        if re.fullmatch(r"[A-Z][A-Z0-9]*(?:_[A-Z0-9]+)*", candidate):
            names.add(candidate)
    return names


def test_runbook_names_only_real_variables() -> None:
    names = runbook_variables(RUNBOOK.read_text(encoding="utf-8"))
    assert {"DATABASE_URL", "DB_POOL_SIZE", "SHUTDOWN_GRACE_S"} <= names
    # Not variables: setting values (log levels) and the constants of core/db.py it quotes.
    values = set(get_args(LogLevel))
    constants = {name for name in names if name.isupper() and hasattr(core_db, name)}
    known = setting_variables() | set(STANDARD_VARIABLES) | values | constants
    unknown = names - known
    assert not unknown, f"docs/runbook.md names variables nothing reads: {sorted(unknown)}"


def test_runbook_variable_scan() -> None:
    text = "Set `DB_POOL_SIZE`, `ENVIRONMENT=production`, not `GET /health`.\n```\n`NOPE`\n```\n"
    assert runbook_variables(text) == {"DB_POOL_SIZE", "ENVIRONMENT"}
