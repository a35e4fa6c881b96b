"""Turn the database URLs that hosts hand out into SQLAlchemy URLs and driver arguments.

Neon, Heroku, Render and most consoles give libpq-style URLs (`postgres://...?sslmode=require
&channel_binding=require&options=...`). asyncpg rejects those query parameters as keyword
arguments, so they are translated here into what asyncpg understands.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote, urlencode

from sqlalchemy.engine import URL, make_url

Backend = Literal["sqlite", "postgresql"]

_POSTGRES_SCHEMES = {"postgres", "postgresql", "postgresql+asyncpg", "pgsql"}
_SQLITE_SCHEMES = {"sqlite", "sqlite+aiosqlite"}
_SSL_MODES = {"disable", "allow", "prefer", "require", "verify-ca", "verify-full"}
_SSL_ALIASES = {"true": "require", "1": "require", "false": "disable", "0": "disable"}
# libpq parameters that asyncpg has no use for.
_DROPPED_PARAMS = {"channel_binding", "gssencmode"}
# libpq's TLS files (a private CA, a client certificate and its key, a revocation list) and the
# key's passphrase: handed to asyncpg, which reads them as libpq does, in a DSN of their own.
_TLS_PARAMS = ("sslrootcert", "sslcert", "sslkey", "sslcrl", "sslpassword")


@dataclass(frozen=True)
class DatabaseTarget:
    """A database URL ready for `create_async_engine`, plus the driver's connect arguments."""

    url: URL
    backend: Backend
    connect_args: dict[str, Any] = field(default_factory=dict)
    server_options: str | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.backend == "sqlite"

    @property
    def is_memory(self) -> bool:
        return self.is_sqlite and self.url.database in (None, "", ":memory:")

    @property
    def looks_pooled(self) -> bool:
        """True for hosts that are PgBouncer-style poolers by name (Neon's `-pooler` endpoints)."""
        host = self.url.host or ""
        return "-pooler" in host.split(".", 1)[0]


def parse_database_url(raw: str) -> DatabaseTarget:
    """Parse and normalise `raw`; raises ValueError for a URL this service cannot use."""
    text = raw.strip()
    if not text:
        raise ValueError("empty")
    url = make_url(text)
    scheme = url.drivername.lower()
    if scheme in _SQLITE_SCHEMES:
        return DatabaseTarget(url=url.set(drivername="sqlite+aiosqlite"), backend="sqlite")
    if scheme not in _POSTGRES_SCHEMES:
        raise ValueError(f"unsupported scheme {url.drivername!r}; use postgresql:// or sqlite://")
    if not url.database:
        raise ValueError("no database name")
    if url.host and "@" in url.host:
        raise ValueError("'@' in the host: percent-encode '@' in the password as %40")
    query = dict(url.query)
    connect_args: dict[str, Any] = {}
    sslmode = _single(query.pop("sslmode", None), "sslmode")
    if sslmode is not None:
        if sslmode not in _SSL_MODES:
            raise ValueError(f"unknown sslmode {sslmode!r}")
        connect_args["ssl"] = sslmode
    ssl = _single(query.pop("ssl", None), "ssl")
    if ssl is not None:
        ssl = _SSL_ALIASES.get(ssl.lower(), ssl.lower())
        if ssl not in _SSL_MODES:
            raise ValueError(f"unknown ssl value {ssl!r}")
        connect_args["ssl"] = ssl
    for name in _DROPPED_PARAMS:
        query.pop(name, None)
    tls = {name: _single(query.pop(name), name) for name in _TLS_PARAMS if name in query}
    if tls:
        # asyncpg takes the host, user and the rest as arguments (from SQLAlchemy); these
        # exist only in a DSN's query, merged with those arguments.
        connect_args["dsn"] = "postgresql://?" + urlencode(tls, quote_via=quote)
    options = _single(query.pop("options", None), "options")
    unknown = sorted(set(query) - {"prepared_statement_cache_size", "application_name"})
    if unknown:
        raise ValueError(f"unsupported query parameter(s): {', '.join(unknown)}")
    if "application_name" in query:
        app_name = _single(query.pop("application_name"), "application_name")
        connect_args["server_settings"] = {"application_name": app_name}
    url = url.set(drivername="postgresql+asyncpg", query=query)
    return DatabaseTarget(
        url=url, backend="postgresql", connect_args=connect_args, server_options=options
    )


def _single(value: str | tuple[str, ...] | None, name: str) -> str | None:
    if isinstance(value, tuple):
        raise ValueError(f"{name} given more than once")
    return value
