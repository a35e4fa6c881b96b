"""Database URLs as hosts hand them out, translated for SQLAlchemy and asyncpg (DESIGN.md §6)."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from tests.support.databases import make_settings, postgres_url, requires_postgres
from todo_api.db.connect import create_database
from todo_api.db.url import parse_database_url

NEON_URL = (
    "postgresql://neondb_owner:pw@ep-cool-name-123456-pooler.eu-central-1.aws.neon.tech/neondb"
    "?sslmode=require&channel_binding=require"
)


class TestPostgresUrls:
    @pytest.mark.parametrize(
        "raw",
        [
            "postgres://u:p@h/db",
            "postgresql://u:p@h/db",
            "postgresql+asyncpg://u:p@h/db",
            "POSTGRESQL://u:p@h/db",
        ],
    )
    def test_every_postgres_scheme_uses_asyncpg(self, raw: str) -> None:
        target = parse_database_url(raw)

        assert target.backend == "postgresql"
        assert target.is_sqlite is False
        assert target.url.render_as_string(hide_password=False) == "postgresql+asyncpg://u:p@h/db"
        assert target.connect_args == {}
        assert target.server_options is None

    def test_keeps_port_user_and_password(self) -> None:
        target = parse_database_url("postgres://app:s%40cret@db.example:6543/tasks")

        assert target.url.host == "db.example"
        assert target.url.port == 6543
        assert target.url.username == "app"
        assert target.url.password == "s@cret"
        assert target.url.database == "tasks"

    def test_surrounding_whitespace_is_ignored(self) -> None:
        target = parse_database_url("  postgresql://u:p@h/db\n")

        assert target.url.render_as_string(hide_password=False) == "postgresql+asyncpg://u:p@h/db"


class TestNeonUrl:
    def test_sslmode_becomes_asyncpgs_ssl_argument(self) -> None:
        target = parse_database_url(NEON_URL)

        assert target.connect_args == {"ssl": "require"}

    def test_no_libpq_parameter_is_left_in_the_url(self) -> None:
        target = parse_database_url(NEON_URL)

        assert dict(target.url.query) == {}
        assert target.url.drivername == "postgresql+asyncpg"
        assert target.url.host == "ep-cool-name-123456-pooler.eu-central-1.aws.neon.tech"
        assert target.url.database == "neondb"

    def test_pooler_host_looks_pooled(self) -> None:
        assert parse_database_url(NEON_URL).looks_pooled is True

    @pytest.mark.parametrize(
        "raw",
        [
            "postgresql://u:p@ep-cool-name-123456.eu-central-1.aws.neon.tech/neondb",
            "postgresql://u:p@db.example/app",
            # Only the first label counts: a `-pooler` further up the domain is not the endpoint.
            "postgresql://u:p@db.my-pooler.example/app",
        ],
    )
    def test_other_hosts_do_not_look_pooled(self, raw: str) -> None:
        assert parse_database_url(raw).looks_pooled is False

    @pytest.mark.parametrize(
        "mode", ["disable", "allow", "prefer", "require", "verify-ca", "verify-full"]
    )
    def test_every_libpq_sslmode_is_accepted(self, mode: str) -> None:
        target = parse_database_url(f"postgresql://u:p@h/db?sslmode={mode}")

        assert target.connect_args == {"ssl": mode}


class TestQueryParameters:
    def test_options_become_server_options(self) -> None:
        target = parse_database_url("postgresql://u:p@h/db?options=-c%20statement_timeout%3D5000")

        assert target.server_options == "-c statement_timeout=5000"
        assert dict(target.url.query) == {}

    def test_application_name_becomes_a_server_setting(self) -> None:
        target = parse_database_url("postgresql://u:p@h/db?application_name=worker")

        assert target.connect_args == {"server_settings": {"application_name": "worker"}}
        assert dict(target.url.query) == {}

    @pytest.mark.parametrize(
        "raw",
        [
            "postgresql://u:p@h/db?sslmode=sometimes",
            "postgresql://u:p@h/db?sslmode=require&sslmode=disable",
        ],
    )
    def test_bad_sslmode_is_refused(self, raw: str) -> None:
        with pytest.raises(ValueError, match="sslmode"):
            parse_database_url(raw)

    def test_an_unencoded_at_sign_in_the_password_is_refused(self) -> None:
        # Otherwise part of the password would be taken for the host and shown in logs.
        with pytest.raises(ValueError, match="%40"):
            parse_database_url("postgresql://app:Sup3r@Secret@127.0.0.1:5432/db")

    def test_a_percent_encoded_at_sign_is_fine(self) -> None:
        target = parse_database_url("postgresql://app:Sup3r%40Secret@127.0.0.1:5432/db")

        assert target.url.password == "Sup3r@Secret"
        assert target.url.host == "127.0.0.1"

    def test_bad_ssl_value_is_refused(self) -> None:
        # asyncpg would only fail on the first connection, far from the configuration.
        with pytest.raises(ValueError, match="ssl"):
            parse_database_url("postgresql://u:p@h/db?ssl=sometimes")

    @pytest.mark.parametrize(
        "raw",
        [
            "postgresql://u:p@h/db?foo=bar",
            "postgresql://u:p@h/db?sslmode=require&connect_timeout=10",
        ],
    )
    def test_unknown_query_parameters_are_refused(self, raw: str) -> None:
        with pytest.raises(ValueError, match="unsupported query parameter"):
            parse_database_url(raw)


class TestSqliteUrls:
    @pytest.mark.parametrize(
        ("raw", "database"),
        [
            ("sqlite:///./todo.db", "./todo.db"),
            ("sqlite+aiosqlite:///./todo.db", "./todo.db"),
            ("sqlite:////var/lib/todo/todo.db", "/var/lib/todo/todo.db"),
        ],
    )
    def test_are_normalised_to_aiosqlite(self, raw: str, database: str) -> None:
        target = parse_database_url(raw)

        assert target.backend == "sqlite"
        assert target.is_sqlite is True
        assert target.url.drivername == "sqlite+aiosqlite"
        assert target.url.database == database
        assert target.is_memory is False
        assert target.connect_args == {}

    @pytest.mark.parametrize("raw", ["sqlite://", "sqlite:///:memory:", "sqlite+aiosqlite://"])
    def test_in_memory_databases_are_recognised(self, raw: str) -> None:
        assert parse_database_url(raw).is_memory is True


class TestUnusableUrls:
    @pytest.mark.parametrize(
        "raw",
        [
            "mysql://x/y",
            "mssql+pyodbc://u:p@h/db",
            "postgresql+psycopg2://u:p@h/db",
            "oracle://u:p@h/db",
        ],
    )
    def test_unknown_schemes_are_refused(self, raw: str) -> None:
        with pytest.raises(ValueError, match="unsupported scheme"):
            parse_database_url(raw)

    @pytest.mark.parametrize("raw", ["", "   "])
    def test_an_empty_url_is_refused(self, raw: str) -> None:
        with pytest.raises(ValueError, match="empty"):
            parse_database_url(raw)

    def test_a_postgres_url_without_database_name_is_refused(self) -> None:
        with pytest.raises(ValueError, match="no database name"):
            parse_database_url("postgresql://u:p@h")


@pytest.mark.postgres_only
@pytest.mark.direct_postgres
@requires_postgres
class TestOnPostgres:
    async def test_libpq_style_url_connects_and_applies_options(self) -> None:
        base = postgres_url()
        assert base is not None
        url = (
            make_url(base)
            .update_query_dict({"sslmode": "disable", "options": "-c search_path=public"})
            .render_as_string(hide_password=False)
        )
        assert "options=-c" in url
        database = create_database(make_settings(database_url=url))
        try:
            await database.ping()
            async with database.engine.connect() as conn:
                search_path = (await conn.execute(text("SHOW search_path"))).scalar_one()
                ssl_in_use = (
                    await conn.execute(
                        text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                    )
                ).scalar_one()
        finally:
            await database.dispose()

        assert search_path == "public"
        assert ssl_in_use is False


class TestTlsFiles:
    def test_libpq_tls_parameters_reach_the_driver(self) -> None:
        target = parse_database_url(
            "postgresql://u:p@h/db?sslmode=verify-full&sslrootcert=/etc/ca%20dir/root.crt"
            "&sslcert=/c.crt&sslkey=/c.key&sslcrl=/revoked.crl&sslpassword=a%26b"
        )

        assert dict(target.url.query) == {}
        assert target.connect_args == {
            "ssl": "verify-full",
            "dsn": "postgresql://?sslrootcert=%2Fetc%2Fca%20dir%2Froot.crt&sslcert=%2Fc.crt"
            "&sslkey=%2Fc.key&sslcrl=%2Frevoked.crl&sslpassword=a%26b",
        }

    def test_a_tls_parameter_given_twice_is_refused(self) -> None:
        with pytest.raises(ValueError, match="sslrootcert given more than once"):
            parse_database_url("postgresql://u:p@h/db?sslrootcert=/a&sslrootcert=/b")

    def test_the_printed_url_carries_no_key_passphrase(self) -> None:
        settings = make_settings(database_url="postgresql://u:p@h/db?sslpassword=hunter2")

        assert "hunter2" not in settings.safe_database_url()
