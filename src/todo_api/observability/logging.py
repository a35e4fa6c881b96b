"""Log configuration: readable lines in development, JSON lines in production.

Every record carries the current request id; uvicorn's loggers share the same handler.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any

import orjson

from todo_api.config import Settings
from todo_api.observability.accesslog import ACCESS_LOGGER, AccessLogWriter, install_writer
from todo_api.observability.requestctx import current_request_id

_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", "-"),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and key not in {"request_id", "color_message"}:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s [%(request_id)s] %(message)s"


def configure_logging(settings: Settings) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in ("uvicorn", "uvicorn.error"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers[:] = []
        uvicorn_logger.propagate = True
    # Our access line (route template, duration, request id) replaces uvicorn's.
    logging.getLogger("uvicorn.access").disabled = True
    # Never below WARNING, whatever LOG_LEVEL says: at INFO and DEBUG these write every statement
    # with its parameters (task titles, descriptions) into the log.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
    # The MCP SDK narrates each request's transport at INFO ("Terminating session: None"); the
    # access line already says what a request did.
    logging.getLogger("mcp").setLevel(max(logging.WARNING, root.level))
    logging.getLogger("aiosqlite").setLevel(logging.WARNING)
    # Alembic announces each of its plugins at INFO when it is first imported (by `migrate`).
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    # The access line bypasses the records machinery, onto the same stream in the same format.
    if logging.getLogger(ACCESS_LOGGER).isEnabledFor(logging.INFO):
        install_writer(AccessLogWriter(handler, json=settings.log_format == "json"))
    else:
        install_writer(None)
