"""Alias, catch-all and relocated subcommands of vmm(1)."""

from __future__ import annotations

from typing import Annotated

import typer

from vmm import accounts, aliases, domains, relocated
from vmm.addresses import DomainName, EmailAddress
from vmm.cli.app import JsonOption, Session, command, session, show_json, show_list
from vmm.errors import AlreadyExists, NotFound

Destinations = Annotated[list[str], typer.Argument(help="One or more destination addresses.")]
OptionalDestinations = Annotated[list[str] | None, typer.Argument(help="Only these destinations.")]


def _claim(s: Session, address: EmailAddress, allowed: str | None = None) -> domains.Domain:
    """The domain of a new alias or relocated address, with the address locked and
    checked: one address is exactly one of account, alias or relocated user."""
    domain = domains.get(s.conn, address.domain)
    domains.lock(s.conn, domain)
    accounts.lock_address(s.conn, domain.gid, address.local_part)
    existing = accounts.address_in_use(s.conn, domain.gid, address.local_part)
    if existing and existing != allowed:
        raise AlreadyExists(f"the address {address} is already {existing}")
    return domain


@command("aliasadd", "aa")
def aliasadd(address: str, destination: Destinations) -> None:
    """Add an alias with one or more destinations (or add destinations to it). In a
    destination %n, %d and %= stand for the local part, the domain, and the address with
    @ replaced by =."""
    parsed = EmailAddress.parse(address)
    new = aliases.parse_destinations(destination, str(parsed))
    with session() as s:
        domain = _claim(s, parsed, allowed="an alias")
        aliases.add(s.conn, domain.gid, parsed.local_part, domain.name, new)


@command("aliasdelete", "ad")
def aliasdelete(address: str, destination: OptionalDestinations = None) -> None:
    """Delete the given destinations of an alias, or the whole alias."""
    parsed = EmailAddress.parse(address)
    only = aliases.parse_destinations(destination) if destination else None
    with session() as s:
        domain = domains.get(s.conn, parsed.domain)
        aliases.delete(s.conn, domain.gid, parsed.local_part, domain.name, only)


@command("aliasinfo", "ai")
def aliasinfo(address: str, as_json: JsonOption = False) -> None:
    """Show where mail for an alias goes."""
    parsed = EmailAddress.parse(address)
    with session() as s:
        domain = domains.get(s.conn, parsed.domain)
        found = aliases.destinations(s.conn, domain.gid, parsed.local_part)
    if not found:
        raise NotFound(f"the alias {parsed} does not exist")
    if as_json:
        show_json({"alias": str(parsed), "destinations": found})
        return
    show_list(
        "Alias information",
        [f"Mail for {parsed} will be redirected to:", *(f"     * {item}" for item in found)],
    )


@command("catchalladd", "caa")
def catchalladd(fqdn: str, destination: Destinations) -> None:
    """Add destinations for mail to unknown local parts of a domain. An account, alias or
    relocated user of the domain always wins over the catch-all."""
    name = DomainName.parse(fqdn)
    new = aliases.parse_destinations(destination)
    with session() as s:
        domain = domains.get(s.conn, name)
        domains.lock(s.conn, domain)
        aliases.add(s.conn, domain.gid, aliases.CATCHALL, domain.name, new)


@command("catchallinfo", "cai")
def catchallinfo(fqdn: str, as_json: JsonOption = False) -> None:
    """Show the catch-all destinations of a domain."""
    name = DomainName.parse(fqdn)
    with session() as s:
        domain = domains.get(s.conn, name)
        found = aliases.destinations(s.conn, domain.gid, aliases.CATCHALL)
    if as_json:
        show_json({"domain": domain.name, "destinations": found})
        return
    show_list(
        "Catch-all information",
        [
            f"Mail to unknown local-parts in domain {domain.name} will be sent to:",
            *(f"     * {item}" for item in found),
        ]
        if found
        else [f"The domain {domain.name} has no catch-all destinations."],
    )


@command("catchalldelete", "cad")
def catchalldelete(fqdn: str, destination: OptionalDestinations = None) -> None:
    """Delete the given catch-all destinations of a domain, or all of them."""
    name = DomainName.parse(fqdn)
    only = aliases.parse_destinations(destination) if destination else None
    with session() as s:
        domain = domains.get(s.conn, name)
        aliases.delete(s.conn, domain.gid, aliases.CATCHALL, domain.name, only)


@command("relocatedadd", "ra")
def relocatedadd(address: str, newaddress: str) -> None:
    """Add a relocated user: mail to ADDRESS is refused, telling the sender NEWADDRESS."""
    parsed = EmailAddress.parse(address)
    target = str(EmailAddress.parse(newaddress))
    with session() as s:
        domain = _claim(s, parsed)
        relocated.add(s.conn, domain.gid, parsed, target)


@command("relocatedinfo", "ri")
def relocatedinfo(address: str, as_json: JsonOption = False) -> None:
    """Show the new address of a relocated user."""
    parsed = EmailAddress.parse(address)
    with session() as s:
        target = relocated.destination(s.conn, domains.get(s.conn, parsed.domain).gid, parsed)
    if as_json:
        show_json({"address": str(parsed), "destination": target})
        return
    show_list("Relocated information", [f"User `{parsed}' has moved to `{target}'"])


@command("relocateddelete", "rd")
def relocateddelete(address: str) -> None:
    """Delete a relocated user."""
    parsed = EmailAddress.parse(address)
    with session() as s:
        relocated.delete(s.conn, domains.get(s.conn, parsed.domain).gid, parsed)
