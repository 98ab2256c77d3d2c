"""Relocated users: addresses whose mail is refused with "user has moved to NEW"."""

from __future__ import annotations

from vmm.addresses import EmailAddress
from vmm.db import Connection
from vmm.errors import NotFound


def destination(conn: Connection, gid: int, address: EmailAddress) -> str:
    row = conn.execute(
        "SELECT destination FROM relocated WHERE gid = %s AND address = %s",
        (gid, address.local_part),
    ).fetchone()
    if row is None:
        raise NotFound(f"the relocated user {address} does not exist")
    return str(row[0])


def add(conn: Connection, gid: int, address: EmailAddress, new_address: str) -> None:
    """The caller has locked the address and checked that it is not in use."""
    conn.execute(
        "INSERT INTO relocated (gid, address, destination) VALUES (%s, %s, %s)",
        (gid, address.local_part, new_address),
    )


def delete(conn: Connection, gid: int, address: EmailAddress) -> None:
    destination(conn, gid, address)
    conn.execute("DELETE FROM relocated WHERE gid = %s AND address = %s", (gid, address.local_part))


def listing(conn: Connection, gid: int) -> list[tuple[str, str]]:
    """(local part, new address) of the domain's relocated users."""
    rows = conn.execute(
        "SELECT address, destination FROM relocated WHERE gid = %s ORDER BY address", (gid,)
    ).fetchall()
    return [(str(local), str(target)) for local, target in rows]
