"""Mail backends: Dovecot servers that each hold the mail of the accounts pinned to them
(schema 0012_mail_backends.sql). The proxies in front route every login and delivery of
an account to its backend. A stack without backends (the single-host compose.yaml) pins
nobody: its one Dovecot holds every mailbox."""

from __future__ import annotations

import heapq
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from psycopg.rows import class_row

from vmm.db import Connection
from vmm.errors import AlreadyExists, Conflict, InvalidValue, NotFound

if TYPE_CHECKING:
    from vmm.accounts import Account

# A DNS label for the name, a host name or address for the host.
_NAME = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_HOST = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.:-]*[A-Za-z0-9])?")


@dataclass(frozen=True)
class Backend:
    name: str
    host: str
    accepting: bool
    accounts: int


def parse_name(name: str) -> str:
    if not _NAME.fullmatch(name):
        raise InvalidValue(f"invalid backend name {name!r}: lower-case letters, digits and '-', up to 63")
    return name


def parse_host(host: str) -> str:
    if len(host) > 253 or not _HOST.fullmatch(host):
        raise InvalidValue(f"invalid backend host {host!r}: a host name or an IP address")
    return host


_SELECT = """
    SELECT b.name, b.host, b.accepting,
           (SELECT count(*) FROM users u WHERE u.backend = b.name)::integer AS accounts
      FROM mail_backend b
"""


def listing(conn: Connection) -> list[Backend]:
    with conn.cursor(row_factory=class_row(Backend)) as cur:
        return cur.execute(_SELECT + " ORDER BY b.name").fetchall()


def get(conn: Connection, name: str) -> Backend:
    with conn.cursor(row_factory=class_row(Backend)) as cur:
        backend = cur.execute(_SELECT + " WHERE b.name = %s", (parse_name(name),)).fetchone()
    if backend is None:
        raise NotFound(f"the backend {name} does not exist")
    return backend


def add(conn: Connection, name: str, host: str) -> int:
    """Add a backend. The first one receives every account that has none: their mail is
    the one Dovecot's that the stack had until now, which becomes this backend. Returns
    how many accounts it received."""
    name, host = parse_name(name), parse_host(host)
    # One placement at a time: two backends added at once would both see themselves
    # as the first one.
    conn.execute("LOCK TABLE mail_backend IN SHARE ROW EXCLUSIVE MODE")
    clash = conn.execute(
        "SELECT name FROM mail_backend WHERE name = %s OR host = %s", (name, host)
    ).fetchone()
    if clash is not None:
        raise AlreadyExists(f"the backend {clash[0]} already exists with that name or host")
    first = conn.execute("SELECT NOT EXISTS (SELECT 1 FROM mail_backend)").fetchone() == (True,)
    conn.execute("INSERT INTO mail_backend (name, host) VALUES (%s, %s)", (name, host))
    if not first:
        return 0
    return conn.execute("UPDATE users SET backend = %s WHERE backend IS NULL", (name,)).rowcount


def set_accepting(conn: Connection, name: str, accepting: bool) -> None:
    updated = conn.execute("UPDATE mail_backend SET accepting = %s WHERE name = %s", (accepting, name))
    if not updated.rowcount:
        raise NotFound(f"the backend {name} does not exist")


def delete(conn: Connection, name: str) -> None:
    """Refused while accounts are pinned to it: their mail would have nowhere to go."""
    backend = get(conn, name)
    if backend.accounts:
        raise Conflict(f"{backend.accounts} account(s) are on the backend {name}; move them first")
    conn.execute("DELETE FROM mail_backend WHERE name = %s", (name,))


def place(conn: Connection, count: int = 1) -> list[str | None]:
    """Backends for ``count`` new accounts, each on the accepting one with the fewest
    accounts at that point (ties by name); None each in a stack without backends.
    Refused when backends exist and none accepts new accounts."""
    # Placements in parallel would all pick the same emptiest backend: one at a time.
    conn.execute("LOCK TABLE mail_backend IN SHARE ROW EXCLUSIVE MODE")
    backends = listing(conn)
    if not backends:
        return [None] * count
    load = [(backend.accounts, backend.name) for backend in backends if backend.accepting]
    if not load:
        raise Conflict("no backend accepts new accounts (vmm backendaccept NAME yes)")
    heapq.heapify(load)
    placed: list[str | None] = []
    for _ in range(count):
        accounts, name = heapq.heappop(load)
        placed.append(name)
        heapq.heappush(load, (accounts + 1, name))
    return placed


@dataclass(frozen=True)
class Move:
    """An account's mailbox going from one backend to another (`vmm usermove`)."""

    uid: int
    user: str  # the canonical address: Dovecot's user name
    source: str  # backend names
    destination: str
    source_host: str
    destination_host: str


def plan_move(conn: Connection, account: Account, destination: str) -> Move:
    """Where the account's mailbox is and where it goes. A move that was interrupted
    (the account still held, schema 0014) may only be finished, to its own destination."""
    if account.backend is None:
        raise Conflict("this stack has no mail backends: one Dovecot holds every mailbox")
    destination_host = _host(conn, destination)
    held = account.moving_to
    if held is not None and held != destination:
        raise Conflict(f"{account.address} is being moved to {held}; finish that move first")
    if held is None and account.backend == destination:
        raise Conflict(f"{account.address} is on the backend {destination} already")
    return Move(
        account.uid,
        account.address,
        account.backend,
        destination,
        _host(conn, account.backend),
        destination_host,
    )


def _host(conn: Connection, name: str) -> str:
    """Where the proxies reach a backend; without counting its accounts, as get() does."""
    row = conn.execute("SELECT host FROM mail_backend WHERE name = %s", (parse_name(name),)).fetchone()
    if row is None:
        raise NotFound(f"the backend {name} does not exist")
    return str(row[0])


def hold(conn: Connection, move: Move) -> None:
    """The proxies refuse the account for now: deliveries defer, logins wait (0014).
    Refused if another move of the account has begun or ended since it was planned."""
    held = conn.execute(
        "UPDATE users SET moving_to = %s"
        " WHERE uid = %s AND backend = %s AND (moving_to IS NULL OR moving_to = %s)",
        (move.destination, move.uid, move.source, move.destination),
    )
    if not held.rowcount:
        raise Conflict(f"{move.user} was moved or is being moved by another command")


def release(conn: Connection, move: Move) -> None:
    """A move given up: the account stays on its backend and takes mail again."""
    conn.execute("UPDATE users SET moving_to = NULL WHERE uid = %s", (move.uid,))


def switch(conn: Connection, move: Move) -> None:
    """The account's mail is on its destination from now on."""
    conn.execute(
        "UPDATE users SET backend = %s, moving_to = NULL WHERE uid = %s", (move.destination, move.uid)
    )
