"""A Virtual Mail Manager installation moving in (``vmm migrate-from``): its database,
read in vmm 0.5.x, 0.6.x or 0.7-dev's schema (kmohrf/vmm, pgsql/create_tables.pgsql),
becomes rows of ours in the command's one transaction, and its users' home directories
(Maildir, Dovecot's uidlist and keywords, Sieve scripts) are copied into our mail root.

vmm's layout is ours: a domain lives in ``<base>/<hash char>/<gid>`` and an account in
``<uid>`` below it, with the same gids and uids, so every file keeps its path relative to
the mail root and IMAP clients keep their UIDs and flags. Nothing is written to the old
database: it is read in a read-only transaction."""

from __future__ import annotations

import configparser
import gzip
import os
import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from vmm import backends, mailboxes, passwords, provisioning, settings
from vmm.db import Connection, first_line
from vmm.errors import DatabaseError, FileSystemError, InvalidValue, NotFound, VmmError
from vmm.limits import SERVICES
from vmm.session import Session

# vmm's transports that meant "deliver to this host's Dovecot": the stack's LMTP now.
LOCAL_TRANSPORTS = frozenset({"dovecot:", "lmtp:unix:private/dovecot-lmtp"})
# vmm.cfg options the stack sets itself: the mail root is its volume.
STACK_OWNED = frozenset({"misc.base_directory"})
# The tables every vmm schema has; the columns tell the versions apart.
VMM_TABLES = frozenset({"domain_data", "domain_name", "users", "alias", "relocated", "transport"})


@dataclass(frozen=True)
class OldDomain:
    gid: int
    domaindir: str
    note: str | None
    transport: str
    quota: tuple[int, int]  # bytes, messages
    services: dict[str, bool]
    names: list[tuple[str, bool]]  # (name, is primary)


@dataclass(frozen=True)
class OldAccount:
    uid: int
    gid: int
    local_part: str
    passwd: str
    name: str | None
    note: str | None
    # None: the domain's (vmm's NULL, "inherit").
    transport: str | None
    quota: tuple[int, int] | None
    services: dict[str, bool] | None
    mailbox: str  # the Maildir's name below the home directory
    mailbox_format: str


@dataclass
class Installation:
    """What an old database holds, in our terms."""

    version: str
    domains: list[OldDomain] = field(default_factory=list)
    accounts: list[OldAccount] = field(default_factory=list)
    aliases: list[tuple[int, str, str]] = field(default_factory=list)  # gid, local part ('' catch-all), dest
    relocated: list[tuple[int, str, str]] = field(default_factory=list)

    def address(self, account: OldAccount) -> str:
        primary = next(n for d in self.domains if d.gid == account.gid for n, p in d.names if p)
        return f"{account.local_part}@{primary}"


def connect(dsn: str, password: str) -> Connection:
    """The old database, read-only (``read`` runs in one read-only transaction)."""
    import psycopg

    if "password" in dsn.lower():
        raise InvalidValue("the old database's password goes in --password-file, never on the command line")
    try:
        return psycopg.connect(dsn, password=password or None, connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot connect to the old database: {first_line(exc)}") from None


# A plain pg_dump's table definitions and data (pg_dump's default format). What goes back
# into SQL is checked against these first: a column is a name and a plain type.
_CREATE_TABLE = re.compile(r'CREATE TABLE (?:"?\w+"?\.)?"?(\w+)"? \($')
_COPY = re.compile(r'COPY (?:"?\w+"?\.)?"?(\w+)"? \(([\w", ]+)\) FROM stdin;$')
_COLUMN = re.compile(
    r'("?\w+"? [a-z ]+(?:\(\d+(?:, ?\d+)?\))?(?:\[\])?)(?: (?:DEFAULT|NOT NULL|NULL)\b.*)?,?$'
)


def load_dump(conn: Connection, path: Path) -> None:
    """The tables of a plain-format ``pg_dump`` (gzipped or not) of the old database,
    as temporary tables of ``conn``'s session (ours; nothing else sees them and they go
    with the connection), which then reads like the old database itself."""
    import psycopg

    try:
        data = path.read_bytes()
        if data.startswith(b"\x1f\x8b"):
            data = gzip.decompress(data)
    except (OSError, EOFError) as exc:
        raise NotFound(f"cannot read the dump {path}: {exc}") from None
    if data.startswith(b"PGDMP"):
        raise InvalidValue(
            f"{path} is a custom-format dump: make it plain first (pg_restore -f dump.sql {path})"
        )
    try:
        lines = iter(data.decode("utf-8").splitlines(keepends=True))
    except UnicodeError:
        raise InvalidValue(f"{path} is not a plain-text pg_dump") from None
    try:
        copied = _load(conn, lines, path)
    except psycopg.Error as exc:
        raise InvalidValue(f"cannot load the dump {path}: {first_line(exc)}") from None
    if not copied:
        raise InvalidValue(f"no table data in {path}: a plain pg_dump (COPY, not --inserts) is needed")


def _load(conn: Connection, lines: Iterator[str], path: Path) -> int:
    """Create and fill the dump's tables; returns how many were filled."""
    conn.execute("SET search_path = pg_temp")
    copied = 0
    for line in lines:
        if table := _CREATE_TABLE.match(line.rstrip()):
            columns = []
            for definition in lines:
                definition = definition.strip()
                if definition.startswith(")"):
                    break
                if column := _COLUMN.match(definition):
                    columns.append(column[1])
                elif not definition.startswith("CONSTRAINT"):
                    raise InvalidValue(f"a table definition in {path} I cannot read: {definition[:60]!r}")
            conn.execute(f"CREATE TEMPORARY TABLE {table[1]} ({', '.join(columns)})".encode())
        elif copy := _COPY.match(line.rstrip()):
            with conn.cursor() as cur, cur.copy(f"COPY {copy[1]} ({copy[2]}) FROM STDIN".encode()) as rows:
                for row in lines:
                    if row.rstrip("\r\n") == "\\.":
                        break
                    rows.write(row)
            copied += 1
    return copied


def read_only(conn: Connection) -> Installation:
    """:func:`read` in a read-only transaction: nothing of the old installation changes."""
    import psycopg

    try:
        with conn.transaction():
            conn.execute("SET TRANSACTION READ ONLY")
            return read(conn)
    except psycopg.Error as exc:
        raise DatabaseError(f"cannot read the old database: {first_line(exc)}") from None


def _columns(conn: Connection, table: str) -> set[str]:
    rows = conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema()"
        " AND table_name = %s",
        (table,),
    ).fetchall()
    return {str(name) for (name,) in rows}


def detect(conn: Connection) -> str:
    """Which vmm schema the database holds: "0.5", "0.6" or "0.7-dev"."""
    present = {table for table in VMM_TABLES if _columns(conn, table)}
    if present != VMM_TABLES:
        missing = ", ".join(sorted(VMM_TABLES - present))
        raise InvalidValue(f"not a Virtual Mail Manager database: no table {missing}")
    if "managesieve" in _columns(conn, "users"):
        return "0.5"
    services = _columns(conn, "service_set")
    if "managesieve" in services:
        return "0.6"
    if "sieve" in services:
        return "0.7-dev"
    raise InvalidValue("a Virtual Mail Manager database of an unknown version (no service_set I know)")


def read(conn: Connection) -> Installation:
    """Everything of the old installation that still means something here."""
    found = Installation(detect(conn))
    names: dict[int, list[tuple[str, bool]]] = {}
    for name, gid, primary in conn.execute("SELECT domainname, gid, is_primary FROM domain_name ORDER BY 1"):
        names.setdefault(_int(gid), []).append((str(name), bool(primary)))
    if found.version == "0.5":
        _read_05(conn, found, names)
    else:
        _read_06(conn, found, names, "managesieve" if found.version == "0.6" else "sieve")
    found.aliases = _triples(conn, "SELECT gid, address, destination FROM alias")
    if _columns(conn, "catchall"):
        found.aliases += _triples(conn, "SELECT gid, '', destination FROM catchall")
    found.relocated = _triples(conn, "SELECT gid, address, destination FROM relocated")
    return found


def _triples(conn: Connection, query: str) -> list[tuple[int, str, str]]:
    """(gid, local part, destination) rows: aliases, catch-alls, relocated users."""
    return [(_int(g), str(a), str(d)) for g, a, d in conn.execute(query.encode())]


def _int(value: object) -> int:
    return int(str(value))


def _services(row: tuple[object, ...]) -> dict[str, bool]:
    return dict(zip(SERVICES, (bool(value) for value in row), strict=True))


def _read_06(
    conn: Connection, found: Installation, names: dict[int, list[tuple[str, bool]]], sieve: str
) -> None:
    """0.6 and 0.7-dev: defaults in shared quotalimit/service_set/transport rows, an
    account's NULL reference meaning the domain's."""
    note = "d.note" if "note" in _columns(conn, "domain_data") else "NULL"
    for row in conn.execute(
        f"SELECT d.gid, d.domaindir, {note}, t.transport, q.bytes, q.messages,"  # noqa: S608 (column names)
        f" s.smtp, s.pop3, s.imap, s.{sieve}"
        " FROM domain_data d JOIN transport t ON t.tid = d.tid JOIN quotalimit q ON q.qid = d.qid"
        " JOIN service_set s ON s.ssid = d.ssid ORDER BY d.gid"
    ):
        gid = _int(row[0])
        found.domains.append(
            OldDomain(
                gid, str(row[1]), _text(row[2]), str(row[3]), (_int(row[4]), _int(row[5])),
                _services(row[6:10]), names.get(gid, []),
            )
        )  # fmt: skip
    note = "u.note" if "note" in _columns(conn, "users") else "NULL"
    for row in conn.execute(
        f"SELECT u.uid, u.gid, u.local_part, u.passwd, u.name, {note}, t.transport,"  # noqa: S608 (column names)
        f" q.bytes, q.messages, s.smtp, s.pop3, s.imap, s.{sieve}, m.directory, f.format"
        " FROM users u LEFT JOIN transport t ON t.tid = u.tid LEFT JOIN quotalimit q ON q.qid = u.qid"
        " LEFT JOIN service_set s ON s.ssid = u.ssid JOIN maillocation m ON m.mid = u.mid"
        " JOIN mailboxformat f ON f.fid = m.fid ORDER BY u.uid"
    ):
        found.accounts.append(
            OldAccount(
                _int(row[0]), _int(row[1]), str(row[2]), str(row[3]), _text(row[4]), _text(row[5]),
                _text(row[6]), None if row[7] is None else (_int(row[7]), _int(row[8])),
                None if row[9] is None else _services(row[9:13]), str(row[13]), str(row[14]),
            )
        )  # fmt: skip


def _read_05(conn: Connection, found: Installation, names: dict[int, list[tuple[str, bool]]]) -> None:
    """0.5: no quota, services per account, every account with a transport of its own;
    what equals the domain's becomes "the domain's"."""
    transports: dict[int, str] = {}
    for gid, domaindir, transport in conn.execute(
        "SELECT d.gid, d.domaindir, t.transport FROM domain_data d"
        " JOIN transport t ON t.tid = d.tid ORDER BY 1"
    ):
        transports[_int(gid)] = str(transport)
        found.domains.append(
            OldDomain(_int(gid), str(domaindir), None, str(transport), (0, 0), dict.fromkeys(SERVICES, True),
                      names.get(_int(gid), []))
        )  # fmt: skip
    for row in conn.execute(
        "SELECT u.uid, u.gid, u.local_part, u.passwd, u.name, t.transport, u.smtp, u.pop3, u.imap,"
        " u.managesieve, m.maillocation FROM users u JOIN transport t ON t.tid = u.tid"
        " JOIN maillocation m ON m.mid = u.mid ORDER BY u.uid"
    ):
        services = _services(row[6:10])
        transport = None if str(row[5]) == transports.get(_int(row[1])) else str(row[5])
        found.accounts.append(
            OldAccount(
                _int(row[0]), _int(row[1]), str(row[2]), str(row[3]), _text(row[4]), None, transport, None,
                None if all(services.values()) else services, str(row[10]), "maildir",
            )
        )  # fmt: skip


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def read_config(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The old vmm.cfg's options that still mean something here, each valid as
    ``configset`` would take it, and the others with why they are left out."""
    parser = configparser.RawConfigParser()
    try:
        with path.open(encoding="utf-8") as file:
            parser.read_file(file)
    except (OSError, UnicodeError, configparser.Error) as exc:
        raise InvalidValue(f"cannot read the old configuration {path}: {exc}") from None
    taken: dict[str, str] = {}
    left: dict[str, str] = {}
    for section in parser.sections():
        for key, value in parser.items(section):
            name = f"{section}.{key}"
            if name in STACK_OWNED:
                left[name] = "the stack sets it"
                continue
            if name not in settings.OPTIONS:
                left[name] = "no such option here"
                continue
            if name == "domain.transport" and value.strip() in LOCAL_TRANSPORTS:
                value = ""  # the stack's LMTP
            try:
                settings.OPTIONS[name].parse(value)
            except VmmError as exc:
                left[name] = str(exc)
                continue
            taken[name] = value
    return taken, left


@dataclass
class Report:
    """What a run would do, and what stands in its way."""

    version: str
    counts: dict[str, int]
    conflicts: list[str]
    # Accounts whose hash Dovecot cannot verify here, or only with weak schemes allowed.
    unverifiable: dict[str, str]
    weak: dict[str, str]
    disk_bytes: int
    # The old vmm.cfg's options taken over, and those left out with why.
    config: dict[str, str] = field(default_factory=dict)
    config_left: dict[str, str] = field(default_factory=dict)

    @property
    def blocked(self) -> bool:
        return bool(self.conflicts)


def check(conn: Connection, old: Installation, maildirs: Path | None, allow_weak: bool) -> Report:
    """The report of a run into the database ``conn`` holds now: counts, conflicts with
    what is there already (a name, gid, uid or address), hashes, disk space."""
    conflicts: list[str] = []
    for domain in old.domains:
        if conn.execute("SELECT 1 FROM domain_data WHERE gid = %s", (domain.gid,)).fetchone():
            conflicts.append(f"gid {domain.gid} ({_primary(domain)}) is taken here")
        for name, _ in domain.names:
            if conn.execute("SELECT 1 FROM domain_name WHERE domainname = %s", (name,)).fetchone():
                conflicts.append(f"the domain {name} exists here (delete it first if it is empty)")
        if not domain.names:
            conflicts.append(f"gid {domain.gid} has no domain name in the old database")
    for account in old.accounts:
        if conn.execute("SELECT 1 FROM users WHERE uid = %s", (account.uid,)).fetchone():
            conflicts.append(f"uid {account.uid} ({old.address(account)}) is taken here")
        if account.mailbox_format != "maildir":
            conflicts.append(
                f"{old.address(account)}: mailbox format {account.mailbox_format} (only Maildir here)"
            )
    unverifiable: dict[str, str] = {}
    weak: dict[str, str] = {}
    for account in old.accounts:
        try:
            stored, is_weak = passwords.check_ready_hash(account.passwd, allow_weak=True)
        except VmmError as exc:
            unverifiable[old.address(account)] = str(exc)
            continue
        if is_weak:
            weak[old.address(account)] = passwords.scheme_of(stored)
    if weak and not allow_weak:
        conflicts.append(
            f"{len(weak)} accounts have weak hashes ({', '.join(sorted(set(weak.values())))}): "
            "run with VMM_ALLOW_WEAK_SCHEMES=yes, or have those users set new passwords first"
        )
    disk = 0
    if maildirs is not None:
        if not maildirs.is_dir():
            raise NotFound(f"no mail root at {maildirs}: mount the old one there (README)")
        for account in old.accounts:
            home = _old_home(maildirs, old, account)
            if not home.is_dir():
                conflicts.append(f"{old.address(account)}: no home directory at {home}")
            disk += sum(file.stat().st_size for file in _files(home))
    counts = {
        "domains": len(old.domains),
        "alias domains": sum(1 for d in old.domains for _, primary in d.names if not primary),
        "accounts": len(old.accounts),
        "aliases": len({(g, a) for g, a, _ in old.aliases if a}),
        "catch-alls": len({g for g, a, _ in old.aliases if not a}),
        "relocated": len(old.relocated),
    }
    return Report(old.version, counts, conflicts, unverifiable, weak, disk)


def _primary(domain: OldDomain) -> str:
    return next((name for name, primary in domain.names if primary), f"gid {domain.gid}")


def relative_dir(domaindir: str) -> PurePosixPath:
    """``<hash char>/<gid>``: a domain's directory below the mail root, old or new."""
    parts = PurePosixPath(domaindir).parts
    if len(parts) < 2:
        raise InvalidValue(f"an old domain directory I cannot read: {domaindir!r}")
    return PurePosixPath(*parts[-2:])


def _old_home(maildirs: Path, old: Installation, account: OldAccount) -> Path:
    domain = next(d for d in old.domains if d.gid == account.gid)
    return maildirs / relative_dir(domain.domaindir) / str(account.uid)


def _files(path: Path) -> Iterator[Path]:
    for root, _, files in os.walk(path):
        for name in files:
            yield Path(root, name)


def store(conn: Connection, old: Installation, base: Path, stack_lmtp: str, config: dict[str, str]) -> None:
    """Write the installation's rows and the vmm.cfg options taken over (never commits:
    the command owns the transaction), and move the identity counters past the old gids
    and uids."""
    for name, value in config.items():
        settings.store(conn, name, value)
    for domain in old.domains:
        default = stack_lmtp if domain.transport in LOCAL_TRANSPORTS else domain.transport
        conn.execute(
            "INSERT INTO domain_data (gid, domaindir, transport, quota_bytes, quota_messages,"
            " smtp, pop3, imap, sieve, note) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (domain.gid, str(base / relative_dir(domain.domaindir)), default, *domain.quota,
             *(domain.services[s] for s in SERVICES), domain.note),
        )  # fmt: skip
        for name, primary in domain.names:
            conn.execute(
                "INSERT INTO domain_name (domainname, gid, is_primary) VALUES (%s, %s, %s)",
                (name, domain.gid, primary),
            )
    placed = backends.place(conn, len(old.accounts))
    for account, backend in zip(old.accounts, placed, strict=True):
        transport = stack_lmtp if account.transport in LOCAL_TRANSPORTS else account.transport
        quota = account.quota or (None, None)
        services: list[bool | None] = [None] * len(SERVICES)
        if account.services:
            services = [account.services[s] for s in SERVICES]
        conn.execute(
            "INSERT INTO users (uid, gid, local_part, passwd, name, note, transport, quota_bytes,"
            " quota_messages, smtp, pop3, imap, sieve, backend)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (account.uid, account.gid, account.local_part, account.passwd, account.name, account.note,
             transport, *quota, *services, backend),
        )  # fmt: skip
    for gid, address, destination in old.aliases:
        conn.execute(
            "INSERT INTO alias (gid, address, destination) VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
            (gid, address, destination),
        )
    for gid, address, destination in old.relocated:
        conn.execute(
            "INSERT INTO relocated (gid, address, destination) VALUES (%s, %s, %s)",
            (gid, address, destination),
        )
    for table, column in (("domain_data", "gid"), ("users", "uid")):
        conn.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', '{column}'),"  # noqa: S608 (our names)
            f" greatest((SELECT max({column}) FROM {table}), 69999))"
        )


def provision(
    session: Session, old: Installation, maildirs: Path | None, progress: Callable[[str], None]
) -> None:
    """What a domain and an account have on disk besides their rows: the domain's
    directory and DKIM key (signing once the command commits), and with ``maildirs``
    each account's home directory copied whole. Every step is undone if the command
    fails, the copies with the transaction."""
    base = Path(session.settings.get("misc.base_directory"))
    mode = session.settings.number("domain.directory_mode")
    for domain in old.domains:
        path = base / relative_dir(domain.domaindir)
        if not path.exists():
            mailboxes.create_domain_dir(path, domain.gid, mode)
            session.created(path)
        provisioning.create_key(session, _primary(domain))
        if maildirs is None:
            continue
        accounts = [account for account in old.accounts if account.gid == domain.gid]
        progress(f"{_primary(domain)}: copying {len(accounts)} home directories")
        for account in accounts:
            target = path / str(account.uid)
            session.created(target)
            _copy_home(_old_home(maildirs, old, account), target, account.uid, account.gid)


def _copy_home(source: Path, target: Path, uid: int, gid: int) -> None:
    """An account's home directory, whole (Maildir with Dovecot's uidlist and keywords,
    Sieve scripts), handed to the account: written beside the target and renamed into
    place, so a copy cut off half-way leaves no account half there."""
    if not source.is_dir():
        raise NotFound(f"no home directory at {source}")
    partial = target.with_name(f".{target.name}.moving")
    try:
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(source, partial, symlinks=True)
        for root, dirs, files in os.walk(partial):
            for name in [*dirs, *files]:
                os.chown(Path(root, name), uid, gid, follow_symlinks=False)
        os.chown(partial, uid, gid)
        partial.rename(target)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        raise FileSystemError(f"cannot copy {source} to {target}: {exc}") from None
