"""Settings: DESIGN.md §6, and one clear line for a bad value (§6, §7)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import AliasChoices

from todo_api.config import ConfigurationError, Settings, load_settings

# Production refuses to start without authentication (DESIGN.md §6).
AUTH_SECRET = "an-hs256-secret-of-at-least-32-bytes!"


def setting_variables() -> set[str]:
    """Every environment variable Settings reads, aliases included, upper-cased."""
    names: set[str] = set()
    for name, field in Settings.model_fields.items():
        names.add(name.upper())
        for alias in (field.alias, field.validation_alias):
            choices = alias.choices if isinstance(alias, AliasChoices) else [alias]
            names.update(choice.upper() for choice in choices if isinstance(choice, str))
    return names


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting leaks in from the environment the suite happens to run in."""
    names = setting_variables()
    for key in list(os.environ):
        if key.upper() in names:
            monkeypatch.delenv(key)


def config_error(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None)
    return str(caught.value)


class TestDefaults:
    def test_every_default_matches_the_design(self) -> None:
        settings = load_settings(_env_file=None)

        assert settings.environment == "development"
        assert settings.database_url == "sqlite+aiosqlite:///./todo.db"
        assert settings.db_pool_size == 10
        assert settings.db_max_overflow == 5
        assert settings.db_pool_timeout == 30.0
        assert settings.db_pool_recycle == 3600
        assert settings.db_statement_timeout_ms == 15000
        assert settings.db_pooler == "auto"
        assert settings.cors_origins == ["http://localhost:3000"]
        assert settings.log_level == "INFO"
        assert settings.log_format == "text"
        assert settings.is_production is False

    def test_default_database_is_sqlite_through_aiosqlite(self) -> None:
        target = load_settings(_env_file=None).database

        assert target.backend == "sqlite"
        assert target.url.drivername == "sqlite+aiosqlite"
        assert target.url.database == "./todo.db"


class TestEnvironmentVariables:
    def test_values_are_read_from_the_environment(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("DB_POOL_SIZE", "3")
        monkeypatch.setenv("DB_POOL_TIMEOUT", "2.5")
        monkeypatch.setenv("DB_STATEMENT_TIMEOUT_MS", "1234")
        monkeypatch.setenv("DB_POOLER", "pgbouncer")

        settings = load_settings(_env_file=None)

        assert settings.db_pool_size == 3
        assert settings.db_pool_timeout == 2.5
        assert settings.db_statement_timeout_ms == 1234
        assert settings.db_pooler == "pgbouncer"

    def test_values_are_read_from_a_dotenv_file_in_the_working_directory(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        (tmp_path / ".env").write_text("DB_POOL_SIZE=7\nLOG_LEVEL=debug\n", encoding="utf-8")
        monkeypatch.chdir(tmp_path)

        settings = load_settings()

        assert settings.db_pool_size == 7
        assert settings.log_level == "DEBUG"

    def test_the_environment_wins_over_the_dotenv_file(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        (tmp_path / ".env").write_text("DB_POOL_SIZE=7\n", encoding="utf-8")
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("DB_POOL_SIZE", "4")

        assert load_settings().db_pool_size == 4


class TestCorsOrigins:
    def test_accepts_a_comma_separated_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", "https://a.example, https://b.example ,")

        settings = load_settings(_env_file=None)

        assert settings.cors_origins == ["https://a.example", "https://b.example"]

    def test_accepts_a_json_list(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", '["https://a.example", "https://b.example"]')

        settings = load_settings(_env_file=None)

        assert settings.cors_origins == ["https://a.example", "https://b.example"]

    def test_accepts_a_single_origin(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("CORS_ORIGINS", "https://app.example")

        assert load_settings(_env_file=None).cors_origins == ["https://app.example"]

    def test_malformed_json_list_names_the_variable(self, monkeypatch: pytest.MonkeyPatch) -> None:
        message = config_error(monkeypatch, CORS_ORIGINS='["https://a.example"')

        assert message.startswith("invalid configuration: CORS_ORIGINS: ")
        assert "\n" not in message


class TestEnvironmentName:
    @pytest.mark.parametrize("value", ["production", "Production", "PRODUCTION", " production "])
    def test_production_is_recognised_in_any_case(
        self, monkeypatch: pytest.MonkeyPatch, value: str
    ) -> None:
        monkeypatch.setenv("ENVIRONMENT", value)
        monkeypatch.setenv("AUTH_JWT_SECRET", AUTH_SECRET)

        settings = load_settings(_env_file=None)

        assert settings.environment == "production"
        assert settings.is_production is True

    def test_development_is_recognised_in_any_case(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "Development")

        assert load_settings(_env_file=None).environment == "development"

    def test_log_level_is_case_insensitive(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("LOG_LEVEL", "warning")

        assert load_settings(_env_file=None).log_level == "WARNING"


class TestLogFormat:
    def test_defaults_to_text_in_development(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "development")

        assert load_settings(_env_file=None).log_format == "text"

    def test_defaults_to_json_in_production(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("AUTH_JWT_SECRET", AUTH_SECRET)

        assert load_settings(_env_file=None).log_format == "json"

    def test_an_empty_value_means_the_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("AUTH_JWT_SECRET", AUTH_SECRET)
        monkeypatch.setenv("LOG_FORMAT", "")

        assert load_settings(_env_file=None).log_format == "json"

    def test_an_explicit_value_wins_in_production(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("ENVIRONMENT", "production")
        monkeypatch.setenv("AUTH_JWT_SECRET", AUTH_SECRET)
        monkeypatch.setenv("LOG_FORMAT", "TEXT")

        assert load_settings(_env_file=None).log_format == "text"


class TestBadValues:
    @pytest.mark.parametrize(
        ("variable", "value"),
        [
            ("DATABASE_URL", "not a url"),
            ("DATABASE_URL", "mysql://x/y"),
            ("DATABASE_URL", "postgresql://u:p@h/db?sslmode=sometimes"),
            ("DB_POOL_SIZE", "0"),
            ("DB_POOL_SIZE", "ten"),
            ("DB_POOL_TIMEOUT", "0"),
            ("DB_STATEMENT_TIMEOUT_MS", "-1"),
            ("ENVIRONMENT", "staging"),
            ("DB_POOLER", "maybe"),
            ("LOG_LEVEL", "loud"),
            ("LOG_FORMAT", "xml"),
            ("HTTP_HEADER_TIMEOUT_S", "0"),
            ("HTTP_BODY_MIN_RATE", "0"),
            ("HTTP_MAX_CONNECTIONS", "0"),
        ],
    )
    def test_stop_start_up_with_one_line_naming_the_variable(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str
    ) -> None:
        message = config_error(monkeypatch, **{variable: value})

        assert message.startswith(f"invalid configuration: {variable}: ")
        assert len(message) > len(f"invalid configuration: {variable}: ")
        assert "\n" not in message

    def test_several_bad_values_are_all_named_on_one_line(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        message = config_error(monkeypatch, DB_POOL_SIZE="0", ENVIRONMENT="staging")

        assert message.startswith("invalid configuration: ")
        assert "DB_POOL_SIZE: " in message
        assert "ENVIRONMENT: " in message
        assert "\n" not in message

    def test_the_database_password_is_not_repeated(self, monkeypatch: pytest.MonkeyPatch) -> None:
        message = config_error(monkeypatch, DATABASE_URL="mysql://admin:hunter2-secret@db/app")

        assert message.startswith("invalid configuration: DATABASE_URL: ")
        assert "hunter2-secret" not in message

    def test_the_rejected_value_is_not_repeated(self, monkeypatch: pytest.MonkeyPatch) -> None:
        message = config_error(monkeypatch, DB_POOLER="s3cr3t-looking-value")

        assert "s3cr3t-looking-value" not in message


class TestSafeDatabaseUrl:
    def test_masks_the_password(self) -> None:
        settings = load_settings(
            _env_file=None, database_url="postgres://app:hunter2-secret@db.example/app"
        )

        assert settings.safe_database_url() == "postgresql+asyncpg://app:***@db.example/app"


class TestJwksUrlInProduction:
    def test_plain_http_is_refused(self) -> None:
        with pytest.raises(ConfigurationError, match="AUTH_JWKS_URL: must use https"):
            load_settings(
                _env_file=None,
                environment="production",
                auth_jwks_url="http://idp.example.com/.well-known/jwks.json",
            )

    @pytest.mark.parametrize(
        "url",
        ["https://idp.example.com/.well-known/jwks.json", "http://127.0.0.1:3000/api/auth/jwks"],
    )
    def test_https_or_a_local_provider_is_accepted(self, url: str) -> None:
        settings = load_settings(_env_file=None, environment="production", auth_jwks_url=url)

        assert str(settings.auth_jwks_url) == url

    def test_plain_http_is_fine_in_development(self) -> None:
        settings = load_settings(_env_file=None, auth_jwks_url="http://idp.example.com/jwks")

        assert settings.auth_enabled is True


class TestSecretsStayOutOfRepr:
    def test_urls_with_credentials_are_not_shown(self) -> None:
        settings = load_settings(
            _env_file=None,
            database_url="postgresql://app:db-secret@h/db",
            redis_url="redis://:redis-secret@127.0.0.1:6379/0",
            auth_jwks_url="https://u:jwks-secret@idp.example.com/jwks",
            auth_jwt_secret="s" * 40,
        )

        shown = repr(settings)
        for secret in ("db-secret", "redis-secret", "jwks-secret", "s" * 40):
            assert secret not in shown


class TestOptionalExtras:
    """redis and sentry-sdk are extras: configuring one that is not installed stops start-up
    with the install command. (Their absence is simulated: this environment has every extra.)"""

    @pytest.mark.parametrize(
        ("variable", "value", "module", "extra"),
        [
            ("REDIS_URL", "redis://127.0.0.1:6379/0", "redis", "redis"),
            ("SENTRY_DSN", "https://key@sentry.example/1", "sentry_sdk", "sentry"),
        ],
    )
    def test_a_configured_extra_that_is_missing_is_named(
        self, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, module: str, extra: str
    ) -> None:
        real_find_spec = importlib.util.find_spec
        monkeypatch.setattr(
            importlib.util,
            "find_spec",
            lambda name, *args: None if name == module else real_find_spec(name, *args),
        )

        message = config_error(monkeypatch, **{variable: value})

        assert message == (
            f"invalid configuration: {variable}: needs the {extra} extra: "
            f"pip install 'todo-api[{extra}]'"
        )

    def test_installed_extras_are_accepted(self) -> None:
        settings = load_settings(_env_file=None, redis_url="redis://127.0.0.1:6379/0")

        assert settings.redis_url == "redis://127.0.0.1:6379/0"


class TestImportsStayLazy:
    def test_the_app_imports_neither_redis_nor_sentry_unless_configured(self) -> None:
        code = (
            "import sys; from todo_api.main import create_app; create_app(); "
            "print(sorted(m for m in ('redis', 'sentry_sdk') if m in sys.modules))"
        )
        env = {"PATH": os.environ.get("PATH", ""), "DATABASE_URL": "sqlite+aiosqlite://"}
        result = subprocess.run(  # noqa: S603 - our own interpreter
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )

        assert result.stdout.strip() == "[]"
