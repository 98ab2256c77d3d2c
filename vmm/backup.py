"""One archive (tar.gz) with everything an installation is: the database tables (which
hold the settings too), the Maildirs, the DKIM keys and the TLS certificate.

The tables are copied in one repeatable-read snapshot while the command holds a lock that
makes every other vmm command wait, so no account appears or goes between the snapshot
and the copy of the directories. Delivery goes on meanwhile: Maildir writes a message
into tmp/ and renames it into new/, which the copy reads before cur/, so a message that
a client moves from new/ to cur/ during the copy is still caught."""

from __future__ import annotations

import io
import json
import os
import shutil
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, cast

from psycopg import sql

from vmm import __version__, db
from vmm.db import Connection
from vmm.errors import FileSystemError, InvalidValue

FORMAT = 1
MANIFEST = "vmm-backup.json"
# The last member: how many came before it. A cut archive (a full disk, a dropped
# connection) lacks it, and its table data alone must never be restored.
TRAILER = "vmm-backup.end"
# Per Maildir: new/ before cur/ (see above); tmp/ holds deliveries not yet complete.
_MAILDIR_ORDER = {"new": 0, "cur": 1}


@dataclass(frozen=True)
class Manifest:
    schema_version: int
    tables: dict[str, int]  # name -> rows
    created: str
    vmm_version: str
    format: int = FORMAT


def tables(conn: Connection) -> list[str]:
    """The data tables, parents before the tables that refer to them."""
    rows = conn.execute(
        """SELECT c.relname, coalesce(array_agg(p.relname) FILTER (WHERE p.relname IS NOT NULL), '{}')
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_constraint f ON f.conrelid = c.oid AND f.contype = 'f'
             LEFT JOIN pg_class p ON p.oid = f.confrelid AND p.oid <> c.oid
            WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relname <> 'schema_migrations'
            GROUP BY c.relname ORDER BY c.relname"""
    ).fetchall()
    parents = {str(name): set(cast(list[str], refs)) for name, refs in rows}
    ordered: list[str] = []
    while parents:
        ready = sorted(name for name, refs in parents.items() if refs <= set(ordered))
        if not ready:
            raise InvalidValue(f"cyclic foreign keys among {', '.join(sorted(parents))}")
        ordered += ready
        for name in ready:
            del parents[name]
    return ordered


def write(conn: Connection, out: IO[bytes], trees: dict[str, Path]) -> Manifest:
    """Stream the archive to ``out``. Runs in the caller's transaction, which must be
    new (its snapshot starts here) and begun under :func:`db.writers_locked`."""
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
    names = tables(conn)
    dumps = {name: _copy_out(conn, name) for name in names}
    manifest = Manifest(
        schema_version=db.schema_version(conn),
        tables={name: data.count(b"\n") for name, data in dumps.items()},
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        vmm_version=__version__,
    )
    with tarfile.open(fileobj=out, mode="w|gz") as archive:
        _add_bytes(archive, MANIFEST, json.dumps(manifest.__dict__, indent=2).encode())
        for name in names:
            _add_bytes(archive, f"db/{name}.copy", dumps[name])
        members = 1 + len(names)
        for prefix, root in trees.items():
            for path in _walk(root):
                archive.add(path, arcname=f"{prefix}/{path.relative_to(root)}", recursive=False)
                members += 1
        _add_bytes(archive, TRAILER, json.dumps({"members": members}).encode())
    return manifest


@dataclass
class Staged:
    """A read archive: the manifest, the table data and the trees unpacked beside their
    destinations (same file system, so that moving them in is a rename)."""

    manifest: Manifest
    dumps: dict[str, bytes]
    staging: dict[str, Path]


def read(source: IO[bytes], trees: dict[str, Path]) -> Staged:
    """Unpack an archive without touching the installation; raises on anything amiss."""
    staging = {
        prefix: Path(tempfile.mkdtemp(prefix=".vmm-restore-", dir=root)) for prefix, root in trees.items()
    }
    try:
        try:
            return _unpack(source, staging)
        except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
            raise InvalidValue(f"cannot read the backup: {exc}") from None
    except BaseException:
        discard(staging)
        raise


def _unpack(source: IO[bytes], staging: dict[str, Path]) -> Staged:
    manifest, dumps, members, complete = None, {}, 0, False
    with tarfile.open(fileobj=source, mode="r|gz") as archive:
        for member in archive:
            if complete:
                raise InvalidValue(f"not a vmm backup: {member.name!r} after the end")
            if member.name == TRAILER:
                stream = archive.extractfile(member)
                complete = stream is not None and json.loads(stream.read()).get("members") == members
                if not complete:
                    raise InvalidValue("the backup is damaged: members are missing")
                continue
            members += 1
            if member.name == MANIFEST:
                manifest = _manifest(archive.extractfile(member))
            elif member.name.startswith("db/") and member.isfile():
                stream = archive.extractfile(member)
                assert stream is not None
                dumps[member.name.removeprefix("db/").removesuffix(".copy")] = stream.read()
            elif (prefix := member.name.partition("/")[0]) in staging:
                member.name = member.name.partition("/")[2]
                if member.name:
                    archive.extract(member, staging[prefix], numeric_owner=True, filter=_within_tree(prefix))
            else:
                raise InvalidValue(f"not a vmm backup: unexpected member {member.name!r}")
    if not complete or manifest is None or set(dumps) != set(manifest.tables):
        raise InvalidValue("the backup is incomplete (cut short?) or not a vmm backup")
    return Staged(manifest, dumps, staging)


def _within_tree(prefix: str) -> Callable[[tarfile.TarInfo, str], tarfile.TarInfo]:
    """The extraction filter for one tree. The archive is read as root, so it may have
    been crafted: no absolute names, nothing that lands outside the tree (through ".."
    or a link extracted before), no link that points outside it, no devices or pipes,
    no set-uid or set-gid files. Owners and modes stay as saved, which the Maildirs
    need and tarfile's own "tar" and "data" filters would change."""

    def check(member: tarfile.TarInfo, dest: str) -> tarfile.TarInfo:
        root = os.path.realpath(dest)

        def inside(path: str) -> bool:
            return os.path.commonpath([root, os.path.realpath(os.path.join(root, path))]) == root

        if os.path.isabs(member.name) or not inside(member.name):
            raise InvalidValue(f"the backup writes outside its {prefix} tree: {member.name!r}")
        if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
            raise InvalidValue(f"the backup holds a device or pipe: {member.name!r}")
        if member.mode & (stat.S_ISUID | stat.S_ISGID):
            raise InvalidValue(f"the backup holds a set-uid or set-gid file: {member.name!r}")
        if member.islnk():
            # A hard link names its target by the archive path, prefix included.
            target_prefix, _, target = member.linkname.partition("/")
            if target_prefix != prefix:
                raise InvalidValue(f"the backup links out of its {prefix} tree: {member.name!r}")
            member = member.replace(linkname=target, deep=False)
        if member.issym() or member.islnk():
            base = os.path.dirname(member.name) if member.issym() else ""
            if os.path.isabs(member.linkname) or not inside(os.path.join(base, member.linkname)):
                raise InvalidValue(f"the backup links out of its {prefix} tree: {member.name!r}")
        return member

    return check


def load(conn: Connection, staged: Staged) -> None:
    """Replace every table's rows with the backup's; runs in the caller's transaction."""
    version = db.schema_version(conn)
    if staged.manifest.schema_version != version:
        raise InvalidValue(
            f"the backup has schema version {staged.manifest.schema_version}, this installation "
            f"{version}: restore with the vmm version that made it"
        )
    names = tables(conn)
    if set(names) != set(staged.dumps):
        raise InvalidValue(f"the backup's tables ({', '.join(sorted(staged.dumps))}) are not this schema's")
    db.lock_writers(conn)
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.SQL(", ").join(map(sql.Identifier, names))))
    for name in names:
        with conn.cursor().copy(sql.SQL("COPY {} FROM STDIN").format(sql.Identifier(name))) as copy:
            copy.write(staged.dumps[name])
    # Identity columns continue after the restored ids, not from their start again.
    for table, column in conn.execute(
        """SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND is_identity = 'YES'"""
    ).fetchall():
        conn.execute(
            sql.SQL(
                "SELECT setval(pg_get_serial_sequence(%s, %s), coalesce((SELECT max({c}) FROM {t}), 1),"
                " (SELECT count(*) > 0 FROM {t}))"
            ).format(c=sql.Identifier(str(column)), t=sql.Identifier(str(table))),
            (table, column),
        )


def swap_in(staged: Staged, trees: dict[str, Path]) -> dict[str, Path]:
    """Move each tree's current content aside and the staged one in; returns where the
    old content went, for :func:`swap_back` or :func:`discard`."""
    aside = {}
    for prefix, root in trees.items():
        old = Path(tempfile.mkdtemp(prefix=".vmm-replaced-", dir=root))
        aside[prefix] = old
        _move_entries(root, old, skip={old.name, staged.staging[prefix].name})
        _move_entries(staged.staging[prefix], root, skip=set())
    return aside


def swap_back(staged: Staged, aside: dict[str, Path], trees: dict[str, Path]) -> None:
    for prefix, root in trees.items():
        _move_entries(root, staged.staging[prefix], skip={aside[prefix].name, staged.staging[prefix].name})
        _move_entries(aside[prefix], root, skip=set())


def discard(*directories: dict[str, Path]) -> None:
    for directory in (path for group in directories for path in group.values()):
        shutil.rmtree(directory, ignore_errors=True)


def _move_entries(source: Path, dest: Path, skip: set[str]) -> None:
    try:
        for entry in os.listdir(source):
            if entry not in skip:
                os.rename(source / entry, dest / entry)
    except OSError as exc:
        raise FileSystemError(f"cannot move {source} into {dest}: {exc.strerror}") from None


def _copy_out(conn: Connection, table: str) -> bytes:
    data = bytearray()
    with conn.cursor().copy(sql.SQL("COPY {} TO STDOUT").format(sql.Identifier(table))) as copy:
        for chunk in copy:
            data += chunk
    return bytes(data)


def _add_bytes(archive: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mtime = int(datetime.now(UTC).timestamp())
    info.mode = 0o600
    archive.addfile(info, io.BytesIO(data))


def _walk(root: Path) -> Iterator[Path]:
    """Every entry below ``root`` (directories before their content), Maildirs' new/
    before cur/, without the content of tmp/ or of an unfinished restore."""
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(
            (d for d in dirnames if not d.startswith((".vmm-restore-", ".vmm-replaced-"))),
            key=lambda d: (_MAILDIR_ORDER.get(d, 2), d),
        )
        if here != root:
            yield here
        if here.name == "tmp":
            dirnames[:] = []
            continue
        for name in sorted(filenames):
            yield here / name


def _manifest(stream: IO[bytes] | None) -> Manifest:
    if stream is None:
        raise InvalidValue("not a vmm backup: the manifest is not a file")
    data = json.loads(stream.read())
    if data.get("format") != FORMAT:
        raise InvalidValue(f"unknown backup format {data.get('format')!r}")
    return Manifest(**data)
