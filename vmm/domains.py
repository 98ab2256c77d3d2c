"""Domains and alias domains: the rows in domain_data and domain_name."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from psycopg.rows import class_row

from vmm.addresses import DomainName
from vmm.db import Connection
from vmm.errors import AlreadyExists, Conflict, NotFound
from vmm.limits import HasLimits, Quota
from vmm.mailboxes import domain_directory


@dataclass(frozen=True)
class Domain(HasLimits):
    gid: int
    name: str  # ACE form of the primary name
    domaindir: str
    transport: str
    quota_bytes: int
    quota_messages: int
    smtp: bool
    pop3: bool
    imap: bool
    sieve: bool
    note: str | None


_SELECT = """
    SELECT d.gid, p.domainname AS name, d.domaindir, d.transport, d.quota_bytes,
           d.quota_messages, d.smtp, d.pop3, d.imap, d.sieve, d.note
      FROM domain_name n
      JOIN domain_data d ON d.gid = n.gid
      JOIN domain_name p ON p.gid = n.gid AND p.is_primary
"""


def find(conn: Connection, name: DomainName) -> Domain | None:
    """The domain that ``name`` (primary or alias) belongs to."""
    with conn.cursor(row_factory=class_row(Domain)) as cur:
        return cur.execute(_SELECT + " WHERE n.domainname = %s", (name.ace,)).fetchone()


def get(conn: Connection, name: DomainName) -> Domain:
    domain = find(conn, name)
    if domain is None:
        raise NotFound(f"the domain {name.unicode!r} does not exist")
    return domain


def lock(conn: Connection, domain: Domain, exclusive: bool = False) -> None:
    """Hold the domain for the rest of the transaction: shared by commands that add to
    it, exclusive for domaindelete, so that neither sees the other half done."""
    query = (
        "SELECT 1 FROM domain_data WHERE gid = %s FOR UPDATE"
        if exclusive
        else "SELECT 1 FROM domain_data WHERE gid = %s FOR KEY SHARE"
    )
    row = conn.execute(query, (domain.gid,)).fetchone()
    if row is None:
        raise NotFound(f"the domain {domain.name!r} does not exist")


def get_primary(conn: Connection, name: DomainName) -> Domain:
    domain = get(conn, name)
    if domain.name != name.ace:
        raise Conflict(f"{name.unicode!r} is an alias domain of {domain.name!r}")
    return domain


def add(
    conn: Connection,
    name: DomainName,
    base: Path,
    transport: str | None,
    quota: Quota,
    services: dict[str, bool],
    note: str | None,
) -> Domain:
    # Serialise additions of the same name: the primary key settles the race anyway,
    # the lock turns it into "already exists" instead of a constraint error.
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name.ace,))
    if find(conn, name) is not None:
        raise AlreadyExists(f"the domain {name.unicode!r} already exists")
    row = conn.execute("SELECT nextval(pg_get_serial_sequence('domain_data', 'gid'))").fetchone()
    assert row is not None  # nextval always returns a row
    gid = int(str(row[0]))
    domaindir = str(domain_directory(base, gid))
    conn.execute(
        "INSERT INTO domain_data (gid, domaindir, transport, quota_bytes, quota_messages,"
        " smtp, pop3, imap, sieve, note) VALUES (%s, %s,"
        # None: the stack's LMTP, where `vmm setup` last found it.
        " coalesce(%s, (SELECT s.transport FROM stack_lmtp s)), %s, %s, %s, %s, %s, %s, %s)",
        (
            gid,
            domaindir,
            transport,
            quota.bytes,
            quota.messages,
            services["smtp"],
            services["pop3"],
            services["imap"],
            services["sieve"],
            note,
        ),
    )
    conn.execute(
        "INSERT INTO domain_name (domainname, gid, is_primary) VALUES (%s, %s, true)",
        (name.ace, gid),
    )
    return get(conn, name)


@dataclass(frozen=True)
class Counts:
    alias_domains: int
    accounts: int
    aliases: int
    relocated: int
    catchall: int

    @property
    def dependants(self) -> int:
        return self.accounts + self.aliases + self.relocated + self.catchall


def counts(conn: Connection, gid: int) -> Counts:
    row = conn.execute(
        """SELECT (SELECT count(*) FROM domain_name WHERE gid = %(gid)s AND NOT is_primary),
                  (SELECT count(*) FROM users WHERE gid = %(gid)s),
                  (SELECT count(DISTINCT address) FROM alias WHERE gid = %(gid)s AND address <> ''),
                  (SELECT count(*) FROM relocated WHERE gid = %(gid)s),
                  (SELECT count(*) FROM alias WHERE gid = %(gid)s AND address = '')""",
        {"gid": gid},
    ).fetchone()
    assert row is not None  # an aggregate always returns a row
    return Counts(*(int(str(value)) for value in row))


def delete(conn: Connection, domain: Domain, force: bool) -> None:
    """Remove the domain with its alias domains; with ``force`` also everything in it."""
    lock(conn, domain, exclusive=True)
    found = counts(conn, domain.gid)
    if found.dependants and not force:
        raise Conflict(
            f"the domain {domain.name!r} has {found.accounts} accounts, {found.aliases} aliases,"
            f" {found.relocated} relocated users and {found.catchall} catch-all destinations;"
            " use --force to delete them too"
        )
    conn.execute("DELETE FROM alias WHERE gid = %s", (domain.gid,))
    conn.execute("DELETE FROM relocated WHERE gid = %s", (domain.gid,))
    conn.execute("DELETE FROM users WHERE gid = %s", (domain.gid,))
    conn.execute("DELETE FROM domain_data WHERE gid = %s", (domain.gid,))


def names(conn: Connection, gid: int) -> list[str]:
    """Every name of the domain, the primary one first."""
    rows = conn.execute(
        "SELECT domainname FROM domain_name WHERE gid = %s ORDER BY is_primary DESC, domainname",
        (gid,),
    ).fetchall()
    return [str(row[0]) for row in rows]


def alias_domain_target(conn: Connection, name: DomainName) -> Domain:
    """The domain an alias domain belongs to; NotFound if ``name`` is no alias domain."""
    domain = find(conn, name)
    if domain is None or domain.name == name.ace:
        raise NotFound(f"the alias domain {name.unicode!r} does not exist")
    return domain


def add_alias_domain(conn: Connection, name: DomainName, target: Domain) -> None:
    conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (name.ace,))
    existing = find(conn, name)
    if existing is not None:
        kind = "domain" if existing.name == name.ace else f"alias domain of {existing.name}"
        raise AlreadyExists(f"{name.unicode!r} already exists as a {kind}")
    conn.execute(
        "INSERT INTO domain_name (domainname, gid, is_primary) VALUES (%s, %s, false)",
        (name.ace, target.gid),
    )


def switch_alias_domain(conn: Connection, name: DomainName, target: Domain) -> None:
    current = alias_domain_target(conn, name)
    if current.gid == target.gid:
        raise AlreadyExists(f"{name.unicode!r} already belongs to {target.name}")
    conn.execute("UPDATE domain_name SET gid = %s WHERE domainname = %s", (target.gid, name.ace))


def delete_alias_domain(conn: Connection, name: DomainName) -> None:
    alias_domain_target(conn, name)
    conn.execute("DELETE FROM domain_name WHERE domainname = %s AND NOT is_primary", (name.ace,))


def set_quota(conn: Connection, domain: Domain, quota: Quota, force: bool) -> None:
    """The accounts' default quota; ``force`` also drops every account's override."""
    conn.execute(
        "UPDATE domain_data SET quota_bytes = %s, quota_messages = %s WHERE gid = %s",
        (quota.bytes, quota.messages, domain.gid),
    )
    if force:
        conn.execute(
            "UPDATE users SET quota_bytes = NULL, quota_messages = NULL WHERE gid = %s",
            (domain.gid,),
        )


def set_services(conn: Connection, domain: Domain, services: dict[str, bool], force: bool) -> None:
    conn.execute(
        "UPDATE domain_data SET smtp = %(smtp)s, pop3 = %(pop3)s, imap = %(imap)s,"
        " sieve = %(sieve)s WHERE gid = %(gid)s",
        {**services, "gid": domain.gid},
    )
    if force:
        conn.execute(
            "UPDATE users SET smtp = NULL, pop3 = NULL, imap = NULL, sieve = NULL WHERE gid = %s",
            (domain.gid,),
        )


def set_transport(conn: Connection, domain: Domain, transport: str, force: bool) -> None:
    conn.execute("UPDATE domain_data SET transport = %s WHERE gid = %s", (transport, domain.gid))
    if force:
        conn.execute("UPDATE users SET transport = NULL WHERE gid = %s", (domain.gid,))


def move_stack_lmtp(conn: Connection, transport: str) -> None:
    """Where the stack's LMTP service is now (vmm setup, from the runtime): every domain
    and account on it where it was before moves along."""
    row = conn.execute("SELECT transport FROM stack_lmtp").fetchone()
    assert row is not None  # migration 0006 inserts the one row
    old = str(row[0])
    if old == transport:
        return
    conn.execute("UPDATE domain_data SET transport = %s WHERE transport = %s", (transport, old))
    conn.execute("UPDATE users SET transport = %s WHERE transport = %s", (transport, old))
    conn.execute("UPDATE stack_lmtp SET transport = %s", (transport,))


def set_note(conn: Connection, domain: Domain, note: str | None) -> None:
    conn.execute("UPDATE domain_data SET note = %s WHERE gid = %s", (note, domain.gid))


def listing(conn: Connection, pattern: str | None) -> list[tuple[str, bool, str]]:
    """(name, is_primary, primary name) of every domain name matching the LIKE pattern,
    each alias domain right after its primary domain."""
    rows = conn.execute(
        """SELECT n.domainname, n.is_primary, p.domainname
             FROM domain_name n JOIN domain_name p ON p.gid = n.gid AND p.is_primary
            WHERE %(pattern)s::text IS NULL OR n.domainname LIKE %(pattern)s
            ORDER BY p.domainname, n.is_primary DESC, n.domainname""",
        {"pattern": pattern},
    ).fetchall()
    return [(str(name), bool(primary), str(owner)) for name, primary, owner in rows]
