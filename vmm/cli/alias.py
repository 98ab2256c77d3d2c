"""Alias, catch-all and relocated subcommands of vmm(1)."""

from __future__ import annotations

from typing import Annotated

import typer

from vmm import accounts, aliases, domains, relocated
from vmm.addresses import DomainName, EmailAddress
from vmm.cli.app import command
from vmm.cli.options import JsonOption
from vmm.cli.output import show_json, show_list
from vmm.errors import NotFound
from vmm.session import Session, open_session

Destinations = Annotated[list[str], typer.Argument(help="One or more destination addresses.")]
OptionalDestinations = Annotated[list[str] | None, typer.Argument(help="Only these destinations.")]


def _claim(session: Session, address: EmailAddress, allowed: str | None = None) -> domains.Domain:
    """The domain of a new alias or relocated address, with the address locked and
    checked: one address is exactly one of account, alias or relocated user."""
    domain = domains.get(session.conn, address.domain)
    accounts.claim(session.conn, domain, address, allowed)
    return domain


@command("aliasadd", "aa")
def aliasadd(address: str, destination: Destinations) -> None:
    """Add an alias with one or more destinations (or add destinations to it). In a
    destination %n, %d and %= stand for the local part, the domain, and the address with
    @ replaced by =."""
    parsed = EmailAddress.parse(address)
    new = aliases.parse_destinations(destination, str(parsed))
    with open_session() as session:
        domain = _claim(session, parsed, allowed="an alias")
        aliases.add(session.conn, domain.gid, parsed.local_part, domain.name, new)


@command("aliasdelete", "ad")
def aliasdelete(address: str, destination: OptionalDestinations = None) -> None:
    """Delete the given destinations of an alias, or the whole alias."""
    parsed = EmailAddress.parse(address)
    only = aliases.parse_destinations(destination) if destination else None
    with open_session() as session:
        domain = domains.get(session.conn, parsed.domain)
        aliases.delete(session.conn, domain.gid, parsed.local_part, domain.name, only)


@command("aliasinfo", "ai")
def aliasinfo(address: str, as_json: JsonOption = False) -> None:
    """Show where mail for an alias goes."""
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        domain = domains.get(session.conn, parsed.domain)
        found = aliases.destinations(session.conn, domain.gid, parsed.local_part)
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
    with open_session() as session:
        domain = domains.get(session.conn, name)
        domains.lock(session.conn, domain)
        aliases.add(session.conn, domain.gid, aliases.CATCHALL, domain.name, new)


@command("catchallinfo", "cai")
def catchallinfo(fqdn: str, as_json: JsonOption = False) -> None:
    """Show the catch-all destinations of a domain."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        domain = domains.get(session.conn, name)
        found = aliases.destinations(session.conn, domain.gid, aliases.CATCHALL)
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
    with open_session() as session:
        domain = domains.get(session.conn, name)
        aliases.delete(session.conn, domain.gid, aliases.CATCHALL, domain.name, only)


@command("relocatedadd", "ra")
def relocatedadd(address: str, newaddress: str) -> None:
    """Add a relocated user: mail to ADDRESS is refused, telling the sender NEWADDRESS."""
    parsed = EmailAddress.parse(address)
    target = str(EmailAddress.parse(newaddress))
    with open_session() as session:
        domain = _claim(session, parsed)
        relocated.add(session.conn, domain.gid, parsed, target)


@command("relocatedinfo", "ri")
def relocatedinfo(address: str, as_json: JsonOption = False) -> None:
    """Show the new address of a relocated user."""
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        target = relocated.destination(session.conn, domains.get(session.conn, parsed.domain).gid, parsed)
    if as_json:
        show_json({"address": str(parsed), "destination": target})
        return
    show_list("Relocated information", [f"User `{parsed}' has moved to `{target}'"])


@command("relocateddelete", "rd")
def relocateddelete(address: str) -> None:
    """Delete a relocated user."""
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        relocated.delete(session.conn, domains.get(session.conn, parsed.domain).gid, parsed)
