"""`todo-api purge`: expired idempotency keys and old tombstones go, everything else stays."""

from __future__ import annotations

import os
import sqlite3
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.support.processes import run_cli


def _env(database_url: str) -> dict[str, str]:
    env = {"PATH": os.environ.get("PATH", os.defpath), "DATABASE_URL": database_url}
    if "PYTHONPATH" in os.environ:
        env["PYTHONPATH"] = os.environ["PYTHONPATH"]
    return env


def _stamp(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")


def _add_task(conn: sqlite3.Connection, *, deleted_at: datetime | None) -> str:
    task_id = uuid.uuid4()
    now = _stamp(datetime.now(UTC) - timedelta(days=60))
    conn.execute(
        "INSERT INTO tasks (id, user_id, title, completed, priority, tags, tag_keys, created_at, "
        "updated_at, version, deleted_at) VALUES (?, 'alice', 't', 0, 2, '[]', '[]', ?, ?, 1, ?)",
        (
            task_id.hex,
            now,
            _stamp(deleted_at) if deleted_at else now,
            _stamp(deleted_at) if deleted_at else None,
        ),
    )
    return task_id.hex


def _add_key(conn: sqlite3.Connection, key: str, *, expires_at: datetime) -> None:
    conn.execute(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, status_code, headers, body, "
        "created_at, expires_at) VALUES ('alice', ?, ?, 201, '{}', '{}', ?, ?)",
        (key, "0" * 64, _stamp(expires_at - timedelta(days=1)), _stamp(expires_at)),
    )


def test_purge_deletes_what_has_expired_and_keeps_the_rest(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'purge.db'}"
    migrated = run_cli("migrate", cwd=tmp_path, env=_env(url))
    assert migrated.returncode == 0, migrated.stderr
    now = datetime.now(UTC)
    with sqlite3.connect(tmp_path / "purge.db") as conn:
        live = _add_task(conn, deleted_at=None)
        recent = _add_task(conn, deleted_at=now - timedelta(days=29))
        _add_task(conn, deleted_at=now - timedelta(days=31))
        _add_key(conn, "expired", expires_at=now - timedelta(minutes=1))
        _add_key(conn, "valid", expires_at=now + timedelta(hours=1))

    result = run_cli("purge", cwd=tmp_path, env=_env(url))

    assert result.returncode == 0, result.stderr
    assert "purged 1 expired idempotency keys and 1 tombstones older than 30 days" in result.stderr
    with sqlite3.connect(tmp_path / "purge.db") as conn:
        tasks = {row[0] for row in conn.execute("SELECT id FROM tasks")}
        keys = {row[0] for row in conn.execute("SELECT key FROM idempotency_keys")}
    assert tasks == {live, recent}
    assert keys == {"valid"}


def test_purge_without_a_database_says_so(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'missing' / 'todo.db'}"

    result = run_cli("purge", cwd=tmp_path, env=_env(url))

    assert result.returncode == 3
    assert "cannot use the database" in result.stderr
    assert "Traceback" not in result.stderr
