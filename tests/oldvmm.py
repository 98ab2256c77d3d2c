"""An old Virtual Mail Manager 0.6 installation for `vmm migrate-from` to move in: its
database in a schema of the stack's own PostgreSQL (vmm 0.6's own schema file, readable
by vmm's role), and Maildirs as Dovecot leaves them. Plain Python, no pytest, so that
`bench` uses it too."""

from __future__ import annotations

from pathlib import Path

SCHEMA_FILE = Path(__file__).resolve().parent / "fixtures" / "vmm" / "0.6.2.pgsql"
SCHEMA = "old06"
# As the `vmm` container reaches it; the password is vmm's own, from its secrets.
DSN = f"host=postgres dbname=mailsys user=vmm sslmode=require options=-csearch_path={SCHEMA}"
PASSWORD_FILE = "/run/vmm-secrets/vmm/password"
PSQL = ("runuser", "-u", "postgres", "--", "psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", "mailsys")
DROP = f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE"
# A mailbox GUID as Dovecot writes it: a uidlist header without one is rebuilt, and with
# it the UIDs.
GUID = "d2b6b2b0a1b2c3d4e5f60718293a4b5c"


def database(rows: str) -> str:
    """SQL for PostgreSQL's superuser (``PSQL``): the schema, vmm 0.6's tables, ``rows``."""
    # PostgreSQL 17 has plpgsql built in; vmm 0.6's file still creates it.
    tables = SCHEMA_FILE.read_text().replace("CREATE LANGUAGE plpgsql;", "")
    return (
        f"{DROP}; CREATE SCHEMA {SCHEMA}; SET search_path = {SCHEMA};\n{tables}\n{rows}\n"
        f"GRANT USAGE ON SCHEMA {SCHEMA} TO vmm; GRANT SELECT ON ALL TABLES IN SCHEMA {SCHEMA} TO vmm;\n"
    )


def sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def maildir(path: Path, messages: dict[int, tuple[str, str]], next_uid: int, uidvalidity: int) -> Path:
    """A Maildir at ``path`` holding ``messages`` (UID -> (file name in cur/, text)),
    with Dovecot's uidlist: version 3, UIDVALIDITY, the next UID, the mailbox GUID."""
    for sub in ("cur", "new", "tmp"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    lines = [f"3 V{uidvalidity} N{next_uid} G{GUID}"]
    for uid, (name, text) in sorted(messages.items()):
        (path / "cur" / name).write_text(text)
        lines.append(f"{uid} :{name.partition(':')[0]}")
    (path / "dovecot-uidlist").write_text("\n".join(lines) + "\n")
    return path


def migrate_from(source: Path) -> list[str]:
    """The command a postmaster runs: the old mail root ``source`` mounted read-only into
    the `vmm` container, the old database read as vmm's role."""
    args = [DSN, "--password-file", PASSWORD_FILE, "--maildirs", "/old"]
    return ["docker", "compose", "run", "--rm", "-T", "-v", f"{source}:/old:ro", "vmm", "migrate-from", *args]
