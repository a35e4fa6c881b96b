"""TLS to PostgreSQL and the start-up errors only a locked-down server gives, against a second
PostgreSQL cluster made for the test: `initdb` on a spare loopback port, scram passwords, TLS
with a certificate from a CA made here, one role that logs in with a client certificate, no
connection without TLS. Skipped where `initdb` is missing (`.ci/run` has it); torn down after.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.certificates import Authority, issue, make_authority, revocation_list
from tests.support.databases import make_settings
from tests.support.processes import free_port, run_cli
from tests.system.test_cli_migrate import cli_env
from todo_api.cli import EXIT_DATABASE

PASSWORD = "tls-test-password"
KEY_PASSPHRASE = "key-passphrase"


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


INITDB, PG_CTL = _binary("initdb"), _binary("pg_ctl")
pytestmark = [
    pytest.mark.system,
    pytest.mark.skipif(INITDB is None or PG_CTL is None, reason="PostgreSQL's initdb is missing"),
]


@dataclass(frozen=True)
class Cluster:
    port: int
    authority: Authority
    other_authority: Authority
    client_certificate: Path
    client_key: Path
    encrypted_client_certificate: Path
    encrypted_client_key: Path  # with KEY_PASSPHRASE
    server_certificate: Path

    def url(
        self,
        *,
        user: str = "postgres",
        password: str | None = PASSWORD,
        database: str = "todo",
        **query: str,
    ) -> str:
        credentials = user if password is None else f"{user}:{password}"
        params = "&".join(f"{name}={value}" for name, value in query.items())
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{database}?{params}"

    def certificate_login(self, certificate: Path, key: Path, **query: str) -> str:
        """The URL of certuser, who logs in with a client certificate and no password."""
        return self.url(
            user="certuser",
            password=None,
            database="certdb",
            sslmode="verify-full",
            sslrootcert=str(self.authority.path),
            sslcert=str(certificate),
            sslkey=str(key),
            **query,
        )


def _as_postgres(command: list[str]) -> list[str]:
    """PostgreSQL refuses to run as root: the cluster belongs to the `postgres` user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    # Not under pytest's temporary directory: its parents are private to the user running the
    # suite, and the cluster's user must reach its files.
    root = Path(tempfile.mkdtemp(prefix="todo-tls-"))
    root.chmod(0o755)
    try:
        yield from _run_cluster(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_cluster(root: Path) -> Iterator[Cluster]:
    assert INITDB is not None
    assert PG_CTL is not None
    certificates, data = root / "certificates", root / "data"
    certificates.mkdir()
    authority = make_authority(certificates, "todo-test-ca")
    other = make_authority(certificates, "another-ca")
    server_certificate, server_key = issue(authority, certificates, "server", server=True)
    client_certificate, client_key = issue(authority, certificates, "certuser", server=False)
    encrypted_certificate, encrypted_key = issue(
        authority, certificates, "certuser", server=False, passphrase=KEY_PASSPHRASE.encode()
    )
    password_file = root / "password"
    password_file.write_text(PASSWORD)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        for path in [password_file, server_key, server_certificate, authority.path, certificates]:
            shutil.chown(path, "postgres")
    port = free_port()
    subprocess.run(  # noqa: S603 - PostgreSQL's own tools, our arguments
        _as_postgres(
            [INITDB, "-D", str(data), "-U", "postgres", f"--pwfile={password_file}",
             "--auth=scram-sha-256", "--no-sync"]
        ),
        check=True,
        capture_output=True,
    )  # fmt: skip
    with (data / "postgresql.conf").open("a") as conf:
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{root}'\nssl = on\n"
            f"ssl_cert_file = '{server_certificate}'\nssl_key_file = '{server_key}'\n"
            f"ssl_ca_file = '{authority.path}'\nfsync = off\nmax_connections = 20\n"
        )
    (data / "pg_hba.conf").write_text(
        "local all all scram-sha-256\n"
        "hostssl all certuser 127.0.0.1/32 cert\n"
        "hostssl all all 127.0.0.1/32 scram-sha-256\n"
        "hostnossl all all 127.0.0.1/32 reject\n"
    )
    log = root / "server.log"
    subprocess.run(  # noqa: S603 - PostgreSQL's own tools, our arguments
        _as_postgres([PG_CTL, "-D", str(data), "-l", str(log), "-w", "-t", "30", "start"]),
        check=True,
        capture_output=True,
    )
    env = {**os.environ, "PGPASSWORD": PASSWORD}
    try:
        psql = ["psql", "-h", str(root), "-p", str(port), "-U", "postgres", "-d", "postgres"]
        for statement in (
            "CREATE ROLE certuser LOGIN",
            "CREATE DATABASE todo",
            "CREATE DATABASE certdb OWNER certuser",
        ):
            subprocess.run(  # noqa: S603 - psql, our statements
                [*psql, "-c", statement], check=True, capture_output=True, env=env
            )
        yield Cluster(
            port,
            authority,
            other,
            client_certificate,
            client_key,
            encrypted_certificate,
            encrypted_key,
            server_certificate,
        )
    finally:
        subprocess.run(  # noqa: S603 - PostgreSQL's own tools, our arguments
            _as_postgres([PG_CTL, "-D", str(data), "-m", "immediate", "stop"]),
            check=False,
            capture_output=True,
        )


def migrate(url: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return run_cli("migrate", cwd=tmp_path, env={**cli_env(url), "DB_CONNECT_TIMEOUT": "5"})


def safe_url(url: str) -> str:
    return make_settings(database_url=url).safe_database_url()


def refusal(url: str, tmp_path: Path, *, secret: str = PASSWORD) -> str:
    """The one line `migrate` refuses `url` with; `secret` shows nowhere in its output."""
    result = migrate(url, tmp_path)
    assert result.returncode == EXIT_DATABASE, result.stderr
    assert "Traceback" not in result.stderr
    assert secret not in result.stderr
    # The line naming the database the command acts on, then the one reason it cannot.
    lines = result.stderr.splitlines()
    assert lines[0].endswith(" migrate: PostgreSQL at " + safe_url(url)), lines[0]
    [line] = [line for line in lines if line.startswith("todo-api:")]
    assert line.startswith("todo-api: cannot use the database at "), line
    assert PASSWORD not in line
    return line


class TestVerifiedTls:
    def test_verify_full_with_the_private_ca_connects(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        url = cluster.url(sslmode="verify-full", sslrootcert=str(cluster.authority.path))

        result = migrate(url, tmp_path)

        assert result.returncode == 0, result.stderr

    def test_verify_full_with_another_ca_fails_clearly(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        url = cluster.url(sslmode="verify-full", sslrootcert=str(cluster.other_authority.path))

        line = refusal(url, tmp_path)

        assert "certificate verify failed" in line

    def test_a_client_certificate_logs_in_without_a_password(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        url = cluster.certificate_login(cluster.client_certificate, cluster.client_key)

        result = migrate(url, tmp_path)

        assert result.returncode == 0, result.stderr

    def test_a_revocation_list_that_does_not_name_the_server_lets_it_connect(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        crl = revocation_list(cluster.authority, tmp_path / "empty.crl", revoked=[])
        url = cluster.url(
            sslmode="verify-full", sslrootcert=str(cluster.authority.path), sslcrl=str(crl)
        )

        result = migrate(url, tmp_path)

        assert result.returncode == 0, result.stderr

    def test_a_revoked_server_certificate_is_refused_clearly(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        crl = revocation_list(
            cluster.authority, tmp_path / "revoked.crl", revoked=[cluster.server_certificate]
        )
        url = cluster.url(
            sslmode="verify-full", sslrootcert=str(cluster.authority.path), sslcrl=str(crl)
        )

        line = refusal(url, tmp_path)

        assert "certificate revoked" in line, line

    def test_an_encrypted_client_key_opens_with_its_sslpassword(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        url = cluster.certificate_login(
            cluster.encrypted_client_certificate,
            cluster.encrypted_client_key,
            sslpassword=KEY_PASSPHRASE,
        )

        result = migrate(url, tmp_path)

        assert result.returncode == 0, result.stderr
        assert KEY_PASSPHRASE not in result.stderr

    def test_a_wrong_sslpassword_is_refused_without_showing_it(
        self, cluster: Cluster, tmp_path: Path
    ) -> None:
        url = cluster.certificate_login(
            cluster.encrypted_client_certificate,
            cluster.encrypted_client_key,
            sslpassword="not-the-passphrase",
        )

        line = refusal(url, tmp_path, secret="not-the-passphrase")

        assert line.endswith(
            ": cannot load the client certificate and key (sslcert, sslkey): "
            "a wrong sslpassword, or not a PEM certificate and key"
        ), line


class TestStartUpErrorsOfALockedDownServer:
    def test_a_wrong_password_is_named(self, cluster: Cluster, tmp_path: Path) -> None:
        line = refusal(cluster.url(password="not-the-password", sslmode="require"), tmp_path)

        assert line.endswith(': password authentication failed for user "postgres"'), line
        assert "not-the-password" not in line

    def test_tls_required_by_the_server(self, cluster: Cluster, tmp_path: Path) -> None:
        line = refusal(cluster.url(sslmode="disable"), tmp_path)

        assert "no encryption" in line, line

    @pytest.mark.parametrize(
        ("query", "reason"),
        [
            ({"password": "not-the-password", "sslmode": "require"}, "password authentication"),
            ({"sslmode": "disable"}, "no encryption"),
        ],
        ids=["wrong-password", "tls-required"],
    )
    def test_serve_says_the_same(
        self, cluster: Cluster, tmp_path: Path, query: dict[str, str], reason: str
    ) -> None:
        url = cluster.url(**query)

        result = run_cli("serve", "--port", "0", cwd=tmp_path, env=cli_env(url))

        assert result.returncode == EXIT_DATABASE
        assert "Traceback" not in result.stderr
        [line] = [line for line in result.stderr.splitlines() if line.startswith("todo-api:")]
        assert line.startswith("todo-api: cannot use the database at "), line
        assert reason in line, line
        assert "not-the-password" not in result.stderr
