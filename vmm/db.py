"""Connections, schema migrations, and the mapping of database failures to VmmError."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import psycopg
from psycopg import errors as pg_errors

from vmm.errors import AlreadyExists, Conflict, DatabaseError, InvalidValue, VmmError
from vmm.runtime import Runtime

Connection = psycopg.Connection[tuple[object, ...]]

# A locked migration table serialises concurrent `vmm migrate` runs.
_MIGRATION_LOCK = 4_711_001
# Every command holds this shared; a backup or a restore holds it alone.
_WRITERS_LOCK = 4_711_002


def connect(runtime: Runtime, *, attempts: int = 1, role: str | None = None) -> Connection:
    """Open a connection; retry up to ``attempts`` times one second apart (start-up)."""
    user = role or runtime.db_user
    last: Exception | None = None
    for attempt in range(attempts):
        try:
            return psycopg.connect(
                host=runtime.db_host,
                port=runtime.db_port,
                dbname=runtime.db_name,
                user=user,
                password=runtime.db_password(user),
                connect_timeout=5,
                application_name="vmm",
                autocommit=True,  # transaction() below is the one transaction
            )
        except psycopg.OperationalError as exc:
            last = exc
            if attempt + 1 < attempts:
                time.sleep(1)
    detail = str(last).strip().splitlines()[0] if last else "no attempt"
    raise DatabaseError(f"cannot connect to the database at {runtime.db_host}: {detail}")


@contextmanager
def transaction(conn: Connection) -> Iterator[Connection]:
    """One command, one transaction: commit on success, roll back on any error, and
    translate database errors into VmmError on the way out."""
    try:
        with conn.transaction():
            yield conn
    except VmmError:
        raise
    except pg_errors.UniqueViolation as exc:
        raise AlreadyExists(first_line(exc)) from None
    except pg_errors.ForeignKeyViolation as exc:
        raise Conflict(first_line(exc)) from None
    except (pg_errors.CheckViolation, pg_errors.DataError) as exc:
        raise InvalidValue(first_line(exc)) from None
    except psycopg.Error as exc:
        raise DatabaseError(f"database error: {first_line(exc)}") from None


def share_with_writers(conn: Connection) -> None:
    """Wait while a backup or restore runs (until the caller's transaction ends)."""
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s)", (_WRITERS_LOCK,))


def lock_writers(conn: Connection) -> None:
    """Wait for running commands to finish and keep new ones waiting until the
    caller's transaction ends."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITERS_LOCK,))


@contextmanager
def writers_locked(conn: Connection) -> Iterator[None]:
    """:func:`lock_writers` for a whole connection, taken *before* the transaction
    whose snapshot must include every command that committed before it."""
    conn.execute("SELECT pg_advisory_lock(%s)", (_WRITERS_LOCK,))
    try:
        yield
    finally:
        conn.execute("SELECT pg_advisory_unlock(%s)", (_WRITERS_LOCK,))


def first_line(exc: Exception) -> str:
    """A database error's message in one line (psycopg adds context lines)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def migrations() -> list[tuple[int, str, str]]:
    """The shipped migrations as (version, name, sql), in order."""
    found = []
    for entry in resources.files("vmm.schema").iterdir():
        name = entry.name
        if name.endswith(".sql") and name[:4].isdigit():
            found.append((int(name[:4]), name, entry.read_text(encoding="utf-8")))
    return sorted(found)


def migrate(conn: Connection) -> list[str]:
    """Apply the migrations not yet applied; returns their names. Runs in the caller's
    transaction, so a failing migration leaves the schema as it was."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
    conn.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    applied = {row[0] for row in conn.execute("SELECT version FROM schema_migrations")}
    done = []
    for version, name, sql in migrations():
        if version in applied:
            continue
        conn.execute(sql.encode())
        conn.execute("INSERT INTO schema_migrations (version, name) VALUES (%s, %s)", (version, name))
        done.append(name)
    return done


def schema_version(conn: Connection) -> int:
    """The newest applied migration, 0 on an empty database."""
    row = conn.execute("SELECT to_regclass('schema_migrations') IS NOT NULL").fetchone()
    if not (row and row[0]):
        return 0
    row = conn.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()
    return int(str(row[0])) if row else 0
