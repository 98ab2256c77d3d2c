"""Accounts: the rows in ``users``, each an address with a password and a Maildir."""

from __future__ import annotations

from dataclasses import dataclass

from psycopg.rows import class_row, scalar_row

from vmm import aliases, backends, domains
from vmm.addresses import EmailAddress
from vmm.db import Connection
from vmm.domains import Domain
from vmm.errors import AlreadyExists, Conflict, NotFound
from vmm.limits import SERVICES, HasLimits, Quota


@dataclass(frozen=True)
class Account(HasLimits):
    uid: int
    gid: int
    address: str
    home: str
    name: str | None
    note: str | None
    transport: str  # in force: the account's own or its domain's
    own_transport: bool
    quota_bytes: int
    quota_messages: int
    own_quota: bool
    smtp: bool
    pop3: bool
    imap: bool
    sieve: bool
    own_services: bool
    local_part: str
    backend: str | None  # the Dovecot backend holding its mail (vmm/backends.py)
    moving_to: str | None  # the backend a `usermove` in progress takes it to


# The account at an address: one view (schema 0005_account_address.sql) that Postfix's
# and Dovecot's lookups read too.
_SELECT = """
    SELECT uid, gid, canonical AS address, home, name, note, transport, own_transport,
           quota_bytes, quota_messages, own_quota, smtp, pop3, imap, sieve, own_services,
           local_part, backend, moving_to
      FROM account_address
"""


def find(conn: Connection, address: EmailAddress) -> Account | None:
    """The account at ``address``, also when it is given in an alias domain."""
    with conn.cursor(row_factory=class_row(Account)) as cur:
        return cur.execute(
            _SELECT + " WHERE domainname = %s AND local_part = %s",
            (address.domain.ace, address.local_part),
        ).fetchone()


def get(conn: Connection, address: EmailAddress) -> Account:
    account = find(conn, address)
    if account is None:
        raise NotFound(f"the account {address} does not exist")
    return account


def by_uid(conn: Connection, uid: int) -> Account:
    with conn.cursor(row_factory=class_row(Account)) as cur:
        account = cur.execute(_SELECT + " WHERE uid = %s AND is_primary", (uid,)).fetchone()
    if account is None:
        raise NotFound(f"there is no account with the uid {uid}")
    return account


def address_in_use(conn: Connection, gid: int, local_part: str) -> str | None:
    """What the local part already is in the domain: account, alias or relocated."""
    row = conn.execute(
        """SELECT CASE
                    WHEN EXISTS (SELECT 1 FROM users WHERE gid = %(g)s AND local_part = %(l)s)
                      THEN 'an account'
                    WHEN EXISTS (SELECT 1 FROM alias WHERE gid = %(g)s AND address = %(l)s)
                      THEN 'an alias'
                    WHEN EXISTS (SELECT 1 FROM relocated WHERE gid = %(g)s AND address = %(l)s)
                      THEN 'a relocated user'
                  END""",
        {"g": gid, "l": local_part},
    ).fetchone()
    return str(row[0]) if row and row[0] else None


def lock_address(conn: Connection, gid: int, local_part: str) -> None:
    """Serialise commands that create or change the same address (one address is one
    object: concurrent aliasadd and useradd must not both succeed)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s, hashtext(%s))", (gid, local_part))


def claim(conn: Connection, domain: Domain, address: EmailAddress, allowed: str | None = None) -> None:
    """Lock ``address`` for a new account, alias or relocated user and check that it is
    free: one address is exactly one of them (``allowed``: what it may already be, e.g.
    "an alias" when destinations are added to one)."""
    domains.lock(conn, domain)
    lock_address(conn, domain.gid, address.local_part)
    existing = address_in_use(conn, domain.gid, address.local_part)
    if existing and existing != allowed:
        raise AlreadyExists(f"the address {address} is already {existing}")


def add(
    conn: Connection, address: EmailAddress, domain: Domain, password_hash: str, note: str | None
) -> Account:
    claim(conn, domain, address)
    [backend] = backends.place(conn)
    conn.execute(
        "INSERT INTO users (gid, local_part, passwd, note, backend) VALUES (%s, %s, %s, %s, %s)",
        (domain.gid, address.local_part, password_hash, note, backend),
    )
    return get(conn, address)


def pointing_here(conn: Connection, account: Account) -> list[tuple[str, str]]:
    """The aliases and catch-alls (address, destination) that deliver to the account,
    under any of its domain's names."""
    return aliases.pointing_at(conn, domains.names(conn, account.gid), account.local_part)


def delete(conn: Connection, account: Account, force: bool) -> None:
    """Delete the account. Refused while aliases or catch-alls deliver to it (they would
    bounce), unless ``force``, which removes those destinations too."""
    names = domains.names(conn, account.gid)
    pointing = aliases.pointing_at(conn, names, account.local_part)
    if pointing and not force:
        raise Conflict(
            f"{len(pointing)} alias destination(s) point at {account.address}"
            f" (first: {pointing[0][0]}); use --force to delete them too"
        )
    aliases.delete_pointing_at(conn, names, account.local_part)
    conn.execute("DELETE FROM users WHERE uid = %s", (account.uid,))


def count(conn: Connection) -> int:
    """How many accounts the installation holds."""
    with conn.cursor(row_factory=scalar_row) as cur:
        return int(cur.execute("SELECT count(*) FROM users").fetchone() or 0)


def hashes_by_scheme(conn: Connection) -> list[tuple[str, int]]:
    """How many stored password hashes each scheme has, most first."""
    rows = conn.execute(
        "SELECT password_scheme(passwd), count(*) FROM users GROUP BY 1 ORDER BY 2 DESC, 1"
    ).fetchall()
    return [(str(scheme), int(str(number))) for scheme, number in rows]


def set_password(conn: Connection, account: Account, password_hash: str) -> None:
    conn.execute("UPDATE users SET passwd = %s WHERE uid = %s", (password_hash, account.uid))


def set_name(conn: Connection, account: Account, name: str | None) -> None:
    conn.execute("UPDATE users SET name = %s WHERE uid = %s", (name, account.uid))


def set_note(conn: Connection, account: Account, note: str | None) -> None:
    conn.execute("UPDATE users SET note = %s WHERE uid = %s", (note, account.uid))


def set_quota(conn: Connection, account: Account, quota: Quota | None) -> None:
    """The account's own quota; None falls back to the domain's."""
    conn.execute(
        "UPDATE users SET quota_bytes = %s, quota_messages = %s WHERE uid = %s",
        (quota.bytes if quota else None, quota.messages if quota else None, account.uid),
    )


def set_services(conn: Connection, account: Account, services: dict[str, bool] | None) -> None:
    """The account's own services; None falls back to the domain's."""
    values = services or dict.fromkeys(SERVICES)
    conn.execute(
        "UPDATE users SET smtp = %(smtp)s, pop3 = %(pop3)s, imap = %(imap)s,"
        " sieve = %(sieve)s WHERE uid = %(uid)s",
        {**values, "uid": account.uid},
    )


def set_transport(conn: Connection, account: Account, transport: str | None) -> None:
    """The account's own transport; None falls back to the domain's."""
    conn.execute("UPDATE users SET transport = %s WHERE uid = %s", (transport, account.uid))


def add_many(conn: Connection, rows: list[tuple[int, str, str]]) -> list[tuple[int, int, str | None]]:
    """Bulk insert of (gid, local part, hash) with COPY, PostgreSQL's fastest way in;
    returns (uid, gid, backend) in uid order (Maildirs made in that order are made
    fastest). The uids come from the identity's sequence first, so no read-back is
    needed. Each is placed on a backend (vmm/backends.py). The caller has locked the
    domains and checked that no address is in use."""
    uids = sorted(
        int(str(uid))
        for (uid,) in conn.execute(
            "SELECT nextval(pg_get_serial_sequence('users', 'uid')) FROM generate_series(1, %s)", (len(rows),)
        )
    )
    placed = backends.place(conn, len(rows))
    with conn.cursor().copy("COPY users (uid, gid, local_part, passwd, backend) FROM STDIN") as copy:
        for uid, row, backend in zip(uids, rows, placed, strict=True):
            copy.write_row((uid, *row, backend))
    return [(uid, gid, backend) for uid, (gid, _, _), backend in zip(uids, rows, placed, strict=True)]


def homes(conn: Connection, uids: list[int]) -> dict[int, str]:
    """The home directories of the accounts with these uids, as the lookups answer them."""
    rows = conn.execute(
        "SELECT uid, home FROM account_address WHERE is_primary AND uid = ANY(%s::integer[])", (uids,)
    ).fetchall()
    return {int(str(uid)): str(home) for uid, home in rows}


def addresses_in_use(conn: Connection, pairs: list[tuple[int, str]]) -> list[str]:
    """Which of the (gid, local part) pairs are already an account, alias or relocated."""
    gids = [gid for gid, _ in pairs]
    locals_ = [local for _, local in pairs]
    rows = conn.execute(
        """SELECT x.local_part || '@' || n.domainname
             FROM unnest(%s::integer[], %s::text[]) AS x(gid, local_part)
             JOIN domain_name n ON n.gid = x.gid AND n.is_primary
            WHERE EXISTS (SELECT 1 FROM users u WHERE u.gid = x.gid AND u.local_part = x.local_part)
               OR EXISTS (SELECT 1 FROM alias a WHERE a.gid = x.gid AND a.address = x.local_part)
               OR EXISTS (SELECT 1 FROM relocated r WHERE r.gid = x.gid AND r.address = x.local_part)""",
        (gids, locals_),
    ).fetchall()
    return [str(row[0]) for row in rows]
