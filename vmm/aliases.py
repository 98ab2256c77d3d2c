"""Aliases: an address of a domain that forwards to one or more destinations. A
catch-all is an alias without a local part (``CATCHALL``): the same rows, the same
functions, the lowest priority in postfix_virtual_alias_map."""

from __future__ import annotations

from vmm.addresses import DomainName, EmailAddress
from vmm.db import Connection
from vmm.errors import AlreadyExists, InvalidValue, NotFound

CATCHALL = ""
# Substituted by the lookup function at delivery time (vmm(1), ALIAS SUBCOMMANDS).
PLACEHOLDERS = {"%n": "localpart", "%d": "example.org", "%=": "localpart=example.org"}


def label(local_part: str, domain: str) -> str:
    """How messages name the alias: its address, or the domain's catch-all."""
    return f"the catch-all of {domain}" if local_part == CATCHALL else f"the alias {local_part}@{domain}"


def parse_destination(text: str) -> str:
    """A destination address, normalised, that may hold the %n, %d, %= placeholders."""
    probe = text.strip()
    for placeholder, sample in PLACEHOLDERS.items():
        probe = probe.replace(placeholder, sample)
    EmailAddress.parse(probe)  # raises InvalidValue with the reason
    local, _, domain = text.strip().rpartition("@")
    if "%" not in domain:
        domain = DomainName.parse(domain).ace
    return f"{local.lower()}@{domain.lower()}"


def parse_destinations(texts: list[str], address: str | None = None) -> list[str]:
    if not texts:
        raise InvalidValue("at least one destination is needed")
    destinations = list(dict.fromkeys(parse_destination(text) for text in texts))
    if address is not None and address in destinations:
        raise InvalidValue(f"the alias {address} cannot point to itself")
    return destinations


def destinations(conn: Connection, gid: int, local_part: str) -> list[str]:
    rows = conn.execute(
        "SELECT destination FROM alias WHERE gid = %s AND address = %s ORDER BY destination",
        (gid, local_part),
    ).fetchall()
    return [str(row[0]) for row in rows]


def add(conn: Connection, gid: int, local_part: str, domain: str, new: list[str]) -> None:
    """Add destinations (creating the alias). For a named alias the caller has locked
    the address and checked that it is not an account or relocated user."""
    existing = set(destinations(conn, gid, local_part))
    duplicate = [destination for destination in new if destination in existing]
    if duplicate:
        raise AlreadyExists(f"{label(local_part, domain)} already forwards to {duplicate[0]}")
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO alias (gid, address, destination) VALUES (%s, %s, %s)",
            [(gid, local_part, destination) for destination in new],
        )


def delete(conn: Connection, gid: int, local_part: str, domain: str, only: list[str] | None) -> None:
    """Remove the given destinations, or all of them when none are given."""
    existing = destinations(conn, gid, local_part)
    if not existing:
        raise NotFound(f"{label(local_part, domain)} does not exist")
    missing = [destination for destination in only or [] if destination not in existing]
    if missing:
        raise NotFound(f"{label(local_part, domain)} does not forward to {missing[0]}")
    conn.execute(
        "DELETE FROM alias WHERE gid = %s AND address = %s"
        " AND (%s::text[] IS NULL OR destination = ANY(%s::text[]))",
        (gid, local_part, only, only),
    )


def pointing_at(conn: Connection, names: list[str], local_part: str) -> list[tuple[str, str]]:
    """Aliases and catch-alls (address, destination) whose destination is ``local_part``
    at one of the domain's ``names``: they would bounce once the account is gone."""
    rows = conn.execute(
        """SELECT CASE WHEN a.address = '' THEN '@' ELSE a.address || '@' END || p.domainname,
                  a.destination
             FROM alias a JOIN domain_name p ON p.gid = a.gid AND p.is_primary
            WHERE a.destination = ANY(%s::text[]) ORDER BY 1, 2""",
        ([f"{local_part}@{name}" for name in names],),
    ).fetchall()
    return [(str(address), str(destination)) for address, destination in rows]


def delete_pointing_at(conn: Connection, names: list[str], local_part: str) -> None:
    conn.execute(
        "DELETE FROM alias WHERE destination = ANY(%s::text[])",
        ([f"{local_part}@{name}" for name in names],),
    )
