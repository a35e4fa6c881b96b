"""Settings: one validated object, read from the environment and an optional `.env` file."""

from __future__ import annotations

import importlib.util
import json
from functools import cached_property
from typing import Annotated, Any, Literal

from limits import parse as parse_limit
from pydantic import (
    AliasChoices,
    Field,
    HttpUrl,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict
from sqlalchemy.engine import URL
from sqlalchemy.exc import ArgumentError

from todo_api.db.url import DatabaseTarget, parse_database_url
from todo_api.users import is_valid_user_id

Environment = Literal["development", "production"]
LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
MIN_SECRET_BYTES = 32
DEFAULT_RATE_LIMIT = "1200/minute"
MIN_METRICS_TOKEN_LENGTH = 16
LOCAL_HOSTS = frozenset({"localhost", "127.0.0.1", "::1", "[::1]"})
DEFAULT_MCP_DEV_USER = "dev"
# Where a development server's MCP endpoint is, unless MCP_PUBLIC_URL says (`todo-api serve`
# names its own port).
DEFAULT_MCP_PUBLIC_URL = "http://localhost:8000/mcp"
# The Host values a development server answers on /mcp besides its public URL's: this machine,
# on any port.
LOCAL_MCP_HOSTS = ("localhost:*", "127.0.0.1:*", "[::1]:*")


class Settings(BaseSettings):
    """Every setting the service reads; `.env.example` and docs/configuration.md explain each."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        frozen=True,
    )

    environment: Environment = "development"
    database_url: str = Field(default="sqlite+aiosqlite:///./todo.db", repr=False)
    db_pool_size: int = Field(default=10, ge=1, le=1000)
    db_max_overflow: int = Field(default=5, ge=0, le=1000)
    db_pool_timeout: float = Field(default=30.0, gt=0, le=3600)
    db_pool_recycle: int = Field(default=3600, ge=-1)
    db_connect_timeout: float = Field(default=5.0, gt=0, le=300)
    db_statement_timeout_ms: int = Field(default=15000, ge=0)
    db_pooler: Literal["auto", "pgbouncer", "none"] = "auto"
    shutdown_grace_s: float = Field(default=30.0, gt=0, le=3600)
    idempotency_key_ttl_hours: float = Field(default=24.0, gt=0, le=24 * 365)
    tombstone_retention_days: float = Field(default=30.0, gt=0, le=3650)
    cors_origins: Annotated[list[str], NoDecode] = ["http://localhost:3000"]
    log_level: LogLevel = "INFO"
    log_format: Literal["text", "json"] | None = None
    # Unset: on in development, off in production (see `expose_metrics`).
    metrics_enabled: bool | None = None
    metrics_token: SecretStr | None = None
    sentry_dsn: SecretStr | None = None
    sentry_environment: str | None = None
    sentry_traces_sample_rate: float = Field(default=0.0, ge=0, le=1)

    auth_jwt_secret: SecretStr | None = Field(
        default=None, validation_alias=AliasChoices("auth_jwt_secret", "better_auth_secret")
    )
    auth_jwks_url: HttpUrl | None = Field(default=None, repr=False)
    auth_jwt_audience: str | None = None
    auth_jwt_issuer: str | None = None
    auth_user_claim: str = Field(default="sub", min_length=1)
    auth_leeway_seconds: int = Field(default=30, ge=0, le=600)
    # The longest a token may still be valid for: a token whose `exp` lies further ahead is
    # refused, so a leaked long-lived token (or one minted with a stolen secret) cannot be
    # used for years.
    auth_max_token_ttl: int = Field(default=24 * 3600, ge=60, le=366 * 24 * 3600)
    auth_jwks_timeout: float = Field(default=3.0, gt=0, le=60)
    auth_jwks_cache_seconds: int = Field(default=300, ge=1)
    auth_jwks_min_refresh_seconds: int = Field(default=30, ge=0)

    rate_limit: str | None = None
    redis_url: str | None = Field(default=None, repr=False)
    max_body_size: int = Field(default=65536, ge=1024)
    # What `todo-api serve` allows one connection (see `http.server`).
    http_header_timeout_s: float = Field(default=10.0, gt=0, le=300)
    http_body_min_rate: int = Field(default=1024, ge=1)
    http_max_connections: int = Field(default=1000, ge=1, le=1_000_000)
    # The MCP endpoint (`api.mcp`): on by default; its public URL and the Host values it answers
    # are settings, never read off a request.
    mcp_enabled: bool = True
    mcp_public_url: HttpUrl | None = None
    mcp_allowed_hosts: Annotated[list[str], NoDecode] = []
    mcp_dev_user: str = DEFAULT_MCP_DEV_USER

    @field_validator("environment", "db_pooler", "log_format", mode="before")
    @classmethod
    def _lowercase(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("log_level", mode="before")
    @classmethod
    def _uppercase(cls, value: Any) -> Any:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("log_format", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any) -> Any:
        return None if value == "" else value

    @field_validator("cors_origins", "mcp_allowed_hosts", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        text = value.strip()
        if text.startswith("["):
            try:
                return json.loads(text)
            except json.JSONDecodeError as exc:
                raise ValueError(f"not a valid JSON list ({exc.msg})") from None
        return [origin.strip() for origin in text.split(",") if origin.strip()]

    @field_validator(
        "auth_jwt_secret",
        "auth_jwks_url",
        "auth_jwt_audience",
        "auth_jwt_issuer",
        "redis_url",
        "metrics_enabled",
        "metrics_token",
        "sentry_dsn",
        "sentry_environment",
        "mcp_public_url",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("auth_jwt_secret")
    @classmethod
    def _check_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().encode()) < MIN_SECRET_BYTES:
            raise ValueError(f"must be at least {MIN_SECRET_BYTES} bytes (HS256 needs 256 bits)")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _check_rate_limit(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        if value in {"0", "off"}:
            return "0"
        try:
            parse_limit(value)
        except ValueError:
            raise ValueError("must look like 600/minute (or 0 for no limit)") from None
        return value

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis:// or rediss:// URL")
        if value is not None:
            _require_extra("redis", "redis")
        return value

    @field_validator("metrics_token")
    @classmethod
    def _check_metrics_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < MIN_METRICS_TOKEN_LENGTH:
            raise ValueError(f"must be at least {MIN_METRICS_TOKEN_LENGTH} characters")
        return value

    @field_validator("sentry_dsn")
    @classmethod
    def _check_sentry_dsn(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith(("https://", "http://")):
            raise ValueError("must be a Sentry DSN, like https://<key>@<host>/<project>")
        if value is not None:
            _require_extra("sentry_sdk", "sentry")
        return value

    @field_validator("mcp_dev_user")
    @classmethod
    def _check_dev_user(cls, value: str) -> str:
        if not is_valid_user_id(value):
            raise ValueError("must be a user id: 1-255 printable ASCII characters, no space or /")
        return value

    @field_validator("mcp_public_url")
    @classmethod
    def _check_mcp_public_url(cls, value: HttpUrl | None) -> HttpUrl | None:
        if value is not None and (value.query or value.fragment):
            raise ValueError(
                "must be a URL without a query or fragment, like https://api.example.com/mcp"
            )
        return value

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        try:
            parse_database_url(value)
        except (ArgumentError, ValueError) as exc:
            raise ValueError(f"not a usable database URL ({exc})") from None
        return value

    @model_validator(mode="after")
    def _defaults_and_modes(self) -> Settings:
        if self.log_format is None:
            fmt = "json" if self.environment == "production" else "text"
            object.__setattr__(self, "log_format", fmt)
        if self.is_production and not self.auth_enabled:
            raise ValueError(
                "ENVIRONMENT=production requires authentication: "
                "set AUTH_JWT_SECRET (or BETTER_AUTH_SECRET) or AUTH_JWKS_URL"
            )
        jwks = self.auth_jwks_url
        if self.is_production and jwks is not None and jwks.scheme != "https":
            if jwks.host not in LOCAL_HOSTS:
                # Keys fetched in the clear can be swapped in transit, and then tokens forged.
                raise ValueError("AUTH_JWKS_URL: must use https in production")
        return self

    @property
    def auth_enabled(self) -> bool:
        return self.auth_jwt_secret is not None or self.auth_jwks_url is not None

    @property
    def expose_metrics(self) -> bool:
        """METRICS_ENABLED, or by default on in development and off in production."""
        if self.metrics_enabled is not None:
            return self.metrics_enabled
        return not self.is_production

    @property
    def effective_rate_limit(self) -> str:
        """RATE_LIMIT, or by default a per-user budget when authenticated and none when open
        (an open development server has no users to budget, only one laptop's address)."""
        if self.rate_limit is not None:
            return self.rate_limit
        return DEFAULT_RATE_LIMIT if self.auth_enabled else "0"

    @cached_property
    def database(self) -> DatabaseTarget:
        """The database URL normalised for SQLAlchemy, with its driver connect arguments."""
        return parse_database_url(self.database_url)

    @property
    def mcp_serving(self) -> bool:
        """Whether `/mcp` is served: MCP_ENABLED, and in production only with MCP_PUBLIC_URL
        (the resource its tokens are for is never guessed from a request)."""
        return self.mcp_enabled and (self.mcp_public_url is not None or not self.is_production)

    @property
    def mcp_resource_url(self) -> str:
        """The MCP endpoint's public URL: the resource its tokens are for (RFC 9728)."""
        url = self.mcp_public_url
        return DEFAULT_MCP_PUBLIC_URL if url is None else str(url).rstrip("/")

    @property
    def mcp_hosts(self) -> list[str]:
        """The `Host` values /mcp answers: its public URL's (with and without its port),
        MCP_ALLOWED_HOSTS, and in development this machine's on any port (`name:*`)."""
        url = self.mcp_public_url or HttpUrl(DEFAULT_MCP_PUBLIC_URL)
        host = url.host or ""
        own = f"[{host}]" if ":" in host else host
        default_port = {"http": 80, "https": 443}.get(url.scheme)
        # The name alone too: a proxy may pass it on without the port (nginx's `$host`).
        hosts = [own] if url.port == default_port else [f"{own}:{url.port}", own]
        hosts.extend(self.mcp_allowed_hosts)
        if not self.is_production:
            hosts.extend(LOCAL_MCP_HOSTS)
        return list(dict.fromkeys(hosts))

    @property
    def is_production(self) -> bool:
        return self.environment == "production"

    def safe_database_url(self) -> str:
        """The database URL with its password masked, for logs."""
        url: URL = self.database.url
        return url.render_as_string(hide_password=True)


def _require_extra(module: str, extra: str) -> None:
    """An optional integration that is configured must be installed (found, not imported)."""
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"needs the {extra} extra: pip install 'todo-api[{extra}]'")


class ConfigurationError(Exception):
    """Settings could not be loaded; the message is one line naming the variable."""


def load_settings(**overrides: Any) -> Settings:
    """Read settings, turning a validation failure into one line that names the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigurationError(describe_validation_error(exc)) from None


def describe_validation_error(exc: ValidationError) -> str:
    problems = []
    for error in exc.errors(include_url=False, include_input=False):
        message = error["msg"].removeprefix("Value error, ")
        if error["loc"]:
            problems.append(f"{_variable_name(str(error['loc'][0]))}: {message}")
        else:
            problems.append(message)
    return "invalid configuration: " + "; ".join(problems)


def _variable_name(field: str) -> str:
    if field == "auth_jwt_secret":
        return "AUTH_JWT_SECRET (or BETTER_AUTH_SECRET)"
    return field.upper()
