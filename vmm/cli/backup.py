"""backup and restore of the whole installation (not in vmm(1))."""

from __future__ import annotations

import os
import sys
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Annotated

import typer

from vmm import accounts, db
from vmm import backup as archive
from vmm.cli.app import app
from vmm.errors import Conflict, FileSystemError, InvalidValue
from vmm.runtime import Runtime
from vmm.session import open_session
from vmm.settings import Settings

FileArgument = Annotated[str, typer.Argument(help="The archive's path, or - for standard in/output.")]


def trees(config: Settings, runtime: Runtime) -> dict[str, Path]:
    """Archive prefix -> the directory it holds."""
    found = {
        "mail": Path(config.get("misc.base_directory")),
        "dkim": runtime.dkim_dir,
        "tls": runtime.tls_dir,
    }
    for root in found.values():
        if not root.is_dir():
            raise FileSystemError(f"{root} is not a directory")
    return found


@app.command("backup")
def backup(file: FileArgument = "-") -> None:
    """Write the whole installation (database with the settings, Maildirs, DKIM keys,
    TLS certificate) into one tar.gz archive while the stack runs. vmm commands wait
    until it is done; mail keeps flowing."""
    if file == "-" and sys.stdout.isatty():
        raise InvalidValue("the archive is binary: redirect standard output, or give a file name")
    runtime = Runtime.from_env()
    with ExitStack() as stack, db.connect(runtime) as conn:
        out: IO[bytes]
        if file == "-":
            out = sys.stdout.buffer
        else:
            # Written beside the target and renamed: a failed backup leaves no half archive.
            partial = Path(f"{file}.partial")
            out = stack.enter_context(_create(partial))
            stack.callback(lambda: partial.unlink(missing_ok=True))
        with db.writers_locked(conn):
            found = trees(Settings.load(conn), runtime)  # before the snapshot: nothing changes now
            with db.transaction(conn):
                manifest = archive.write(conn, out, found)
        out.flush()
        if file != "-":
            os.replace(partial, file)
    rows = ", ".join(f"{name} {count}" for name, count in manifest.tables.items())
    typer.echo(f"backup of schema version {manifest.schema_version} written ({rows})", err=True)


@app.command("restore")
def restore(
    file: FileArgument = "-",
    force: Annotated[bool, typer.Option("--force", help="Replace an installation with accounts.")] = False,
) -> None:
    """Replace the installation's data with a backup's: the tables, Maildirs, DKIM keys
    and certificate. All or nothing; restart the stack afterwards so that the daemons
    load the restored certificate."""
    with ExitStack() as stack:
        source = sys.stdin.buffer if file == "-" else stack.enter_context(_open(Path(file)))
        with open_session() as session:
            found = trees(session.settings, session.runtime)
            held = accounts.count(session.conn)
            if held and not force:
                raise Conflict(f"this installation has {held} account(s); give --force to replace them")
            staged = archive.read(source, found)
            session.on_rollback.append(lambda: archive.discard(staged.staging))
            archive.load(session.conn, staged)
            aside = archive.swap_in(staged, found)
            session.on_rollback.append(lambda: archive.swap_back(staged, aside, found))
            session.after_commit.append(lambda: archive.discard(aside, staged.staging))
    typer.echo(f"restored the backup of {staged.manifest.created}; now run: docker compose restart", err=True)


def _create(path: Path) -> IO[bytes]:
    """The archive file, readable by root alone whatever the umask: it holds every
    password hash, the DKIM and TLS keys and all mail."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "wb")
    except OSError as exc:
        raise FileSystemError(f"cannot create {path}: {exc.strerror}") from None


def _open(path: Path) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise FileSystemError(f"cannot read {path}: {exc.strerror}") from None
