"""The `todo-api` command: serve, migrate, purge, token.

Each command imports what it uses when it runs, so `todo-api --help` (and any command's
`--help`) loads nothing but argparse.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from todo_api.config import Settings
    from todo_api.db.database import Database
    from todo_api.services.purge import Purged

logger = logging.getLogger("todo_api.cli")
T = TypeVar("T")

EXIT_CONFIG = 2
EXIT_DATABASE = 3

# Idle keep-alive connections stay open longer than any `Retry-After` a client may wait out on
# them: a database fault's 5 s, a 429's at most 60 s (RETRY_AFTER_MAX_S; uvicorn's default is
# 5 s, so a client that waited exactly as told raced the server closing the connection).
KEEP_ALIVE_S = 75


def _say(message: str) -> None:
    sys.stderr.write(f"{message}\n")


def _parser() -> argparse.ArgumentParser:
    from todo_api import __version__

    parser = argparse.ArgumentParser(
        prog="todo-api",
        description="The Todo API service. Settings come from the environment or a .env file "
        "(docs/configuration.md); the database is DATABASE_URL, ./todo.db (SQLite) when unset.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="apply pending migrations, then serve HTTP")
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on; 0.0.0.0 for every interface (default: %(default)s)",
    )
    serve.add_argument(
        "--port", type=int, default=8000, help="port to listen on (default: %(default)s)"
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: one per CPU in production, one in development)",
    )
    serve.add_argument(
        "--reload", action="store_true", help="restart on code changes (development; default: off)"
    )
    serve.add_argument(
        "--no-migrate",
        action="store_true",
        help="skip applying migrations (default: migrate first)",
    )
    commands.add_parser("migrate", help="apply pending migrations and exit")
    commands.add_parser(
        "purge",
        help="delete expired idempotency keys and tombstones older than TOMBSTONE_RETENTION_DAYS",
    )
    token = commands.add_parser("token", help="print a bearer token for USER_ID (HS256, secret)")
    token.add_argument("user_id", help="the user the token speaks for (its `sub` claim)")
    token.add_argument(
        "--ttl", type=int, default=3600, help="lifetime in seconds (default: %(default)s)"
    )
    return parser


def _token(settings: Settings, args: argparse.Namespace) -> int:
    from todo_api.auth.tokens import issue_token

    if args.ttl < 1:
        _say("todo-api: --ttl must be at least 1 second")
        return EXIT_CONFIG
    if args.ttl > settings.auth_max_token_ttl:
        # The service would refuse such a token (AUTH_MAX_TOKEN_TTL).
        _say(
            f"todo-api: --ttl must be at most AUTH_MAX_TOKEN_TTL ({settings.auth_max_token_ttl} s)"
        )
        return EXIT_CONFIG
    try:
        token = issue_token(settings, args.user_id, ttl=args.ttl)
    except ValueError as exc:
        _say(f"todo-api: cannot issue a token: {exc}")
        return EXIT_CONFIG
    sys.stdout.write(f"{token}\n")
    return 0


class _Unreachable(Exception):
    """The database cannot be reached; the user has been told."""


def _on_database(settings: Settings, work: Callable[[Database], Awaitable[T]]) -> T:
    """Run `work` on a database opened for it, closed after; `_Unreachable` (with one line on
    stderr) when the database cannot be reached, never a traceback."""
    from todo_api.db.connect import create_database
    from todo_api.db.faults import describe_failure, is_database_unavailable
    from todo_api.errors import DatabaseUnavailable

    missing = _missing_sqlite_directory(settings)
    if missing is not None:
        _say(
            f"todo-api: cannot use the database at {settings.safe_database_url()}: "
            f"directory {missing} does not exist"
        )
        raise _Unreachable

    async def run() -> T:
        database = create_database(settings)
        try:
            return await work(database)
        finally:
            await database.dispose()

    try:
        return asyncio.run(run())
    except Exception as exc:
        if not (isinstance(exc, DatabaseUnavailable) or is_database_unavailable(exc)):
            raise
        reason = describe_failure(exc, connect_timeout=settings.db_connect_timeout)
        logger.debug("database failure at start-up", exc_info=True)
        _say(f"todo-api: cannot use the database at {settings.safe_database_url()}: {reason}")
        raise _Unreachable from None


def _run_migrations(settings: Settings) -> int:
    from todo_api.db.migrations import upgrade

    async def migrate(database: Database) -> None:
        await upgrade(database.engine)

    try:
        _on_database(settings, migrate)
    except _Unreachable:
        return EXIT_DATABASE
    logger.info("migrations applied")
    return 0


def _run_purge(settings: Settings) -> int:
    from todo_api.services.purge import purge

    async def purge_expired(database: Database) -> Purged:
        return await purge(
            database,
            now=datetime.now(UTC),
            tombstone_retention=timedelta(days=settings.tombstone_retention_days),
        )

    try:
        purged = _on_database(settings, purge_expired)
    except _Unreachable:
        return EXIT_DATABASE
    logger.info(
        "purged %d expired idempotency keys and %d tombstones older than %g days",
        purged.idempotency_keys,
        purged.tombstones,
        settings.tombstone_retention_days,
        extra={"idempotency_keys": purged.idempotency_keys, "tombstones": purged.tombstones},
    )
    return 0


def _default_workers(settings: Settings) -> int:
    if not settings.is_production or settings.database.is_sqlite:
        return 1  # one process per SQLite file keeps its single writer uncontended
    return os.cpu_count() or 1


def _sqlite_file(settings: Settings) -> Path | None:
    """The SQLite file the settings name, as an absolute path; None for PostgreSQL or memory."""
    target = settings.database
    if not target.is_sqlite or target.is_memory or target.url.database is None:
        return None
    return Path(target.url.database).expanduser().absolute()


def _database_named(settings: Settings) -> str:
    if not settings.database.is_sqlite:
        return f"PostgreSQL at {settings.safe_database_url()}"
    file = _sqlite_file(settings)
    return "SQLite in memory" if file is None else f"SQLite file {file}"


def _missing_sqlite_directory(settings: Settings) -> Path | None:
    file = _sqlite_file(settings)
    return None if file is None or file.parent.is_dir() else file.parent


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    from functools import partial

    import uvicorn

    from todo_api.http.server import BoundedHttpToolsProtocol, ServerLimits
    from todo_api.observability.metrics import prepare_multiprocess_metrics

    if not args.no_migrate:
        status = _run_migrations(settings)
        if status:
            return status
    workers = args.workers or _default_workers(settings)
    if workers < 1:
        _say("todo-api: --workers must be at least 1")
        return EXIT_CONFIG
    # Several workers share their metrics through files, set up before they start.
    prepare_multiprocess_metrics(
        enabled=settings.expose_metrics, workers=1 if args.reload else workers
    )
    if settings.mcp_enabled and settings.mcp_public_url is None:
        # A development server's MCP endpoint is where it listens (production names its own);
        # the workers read it from their environment.
        os.environ["MCP_PUBLIC_URL"] = f"http://{_url_host(args.host)}:{args.port}/mcp"
    # The server's "running on" line names the pages to open; with one worker (make run, any
    # development server) it is the last line of a start-up.
    logging.getLogger("uvicorn.error").addFilter(_name_the_pages)
    limits = ServerLimits(
        header_timeout_s=settings.http_header_timeout_s,
        body_min_rate=settings.http_body_min_rate,
        max_connections=settings.http_max_connections,
    )
    uvicorn.run(
        "todo_api.main:serve_app",
        factory=True,
        http=partial(BoundedHttpToolsProtocol, limits=limits),  # type: ignore[arg-type]
        # No WebSocket route exists; an installed websockets package must not take upgrades.
        ws="none",
        host=args.host,
        port=args.port,
        workers=None if args.reload else workers,
        reload=args.reload,
        log_config=None,
        access_log=False,
        server_header=False,
        proxy_headers=True,
        timeout_keep_alive=KEEP_ALIVE_S,
        # SIGTERM: stop accepting, let requests in flight finish (bounded), then close the pool.
        timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_s)),
    )
    return 0


_RUNNING_ON = "Uvicorn running on "


def _name_the_pages(record: logging.LogRecord) -> bool:
    """Rewrite uvicorn's "Uvicorn running on URL (Press CTRL+C to quit)" as the URLs to open."""
    message, args = record.msg, record.args
    if not (isinstance(message, str) and message.startswith(_RUNNING_ON)):
        return True
    if not (isinstance(args, tuple) and len(args) == 3 and isinstance(args[2], int)):
        return True  # a Unix socket or an inherited descriptor: no URL to give
    scheme, host, port = args
    base = f"{scheme}://{_url_host(str(host))}:{port}"
    record.msg = (
        "serving on %s: Swagger UI %s/docs, ReDoc %s/redoc, OpenAPI %s/openapi.json (Ctrl+C stops)"
    )
    record.args = (base, base, base, base)
    return True


def _url_host(host: str) -> str:
    """How a URL names the address the server listens on (all addresses: this machine)."""
    if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming it, not binding it
        return "localhost"
    return f"[{host}]" if ":" in host else host


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    from todo_api.config import ConfigurationError, load_settings
    from todo_api.observability.logging import configure_logging

    try:
        settings = load_settings()
    except ConfigurationError as exc:
        _say(f"todo-api: {exc}")
        return EXIT_CONFIG
    if args.command == "token":
        return _token(settings, args)
    configure_logging(settings)
    # First, so nobody migrates or serves one database believing it is another.
    logger.info("%s: %s", args.command, _database_named(settings))
    if args.command == "migrate":
        return _run_migrations(settings)
    if args.command == "purge":
        return _run_purge(settings)
    return _serve(settings, args)


if __name__ == "__main__":
    sys.exit(main())
