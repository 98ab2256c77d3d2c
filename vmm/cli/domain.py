"""Domain and alias domain subcommands of vmm(1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmm import aliases, dkim, domains, provisioning, relocated, search
from vmm.addresses import DomainName, EmailAddress
from vmm.cli.app import command
from vmm.cli.options import (
    DeleteOption,
    ForceOption,
    JsonOption,
    MessagesOption,
    NewPassword,
    NoteOption,
    PasswordStdin,
    ServiceArgs,
    ServiceOption,
    details_wanted,
    one_of,
)
from vmm.cli.output import show, show_json, show_list
from vmm.limits import Quota, parse_messages, parse_services, parse_storage, parse_transport
from vmm.session import open_session

DETAILS = ("accounts", "aliasdomains", "aliases", "catchall", "relocated", "full")


@command("domainadd", "da")
def domainadd(
    fqdn: str,
    note: NoteOption = None,
    transport: Annotated[str | None, typer.Option("-t", "--transport")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a domain and its directory; with domain.auto_postmaster (default) also the
    account postmaster@, whose password is prompted for, read from stdin or generated."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        password = NewPassword(password_stdin, session.settings)
        provisioning.create_domain(session, name, transport, note)
        if session.settings.flag("domain.auto_postmaster"):
            typer.echo(f"Creating account for postmaster@{name.ace}", err=True)
            provisioning.create_account(session, EmailAddress("postmaster", name), password, None)
    if password.generated:
        typer.echo(f"Generated password: {password.generated}")


@command("domaindelete", "dd")
def domaindelete(
    fqdn: str,
    delete_directory: Annotated[bool, typer.Option("--delete-directory")] = False,
    force: ForceOption = False,
) -> None:
    """Delete a domain and its alias domains. Refused while it holds accounts, aliases,
    relocated users or catch-alls, unless --force (or domain.force_deletion)."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        domain = domains.get_primary(session.conn, name)
        domains.delete(session.conn, domain, force or session.settings.flag("domain.force_deletion"))
        if delete_directory or session.settings.flag("domain.delete_directory"):
            session.remove_later(Path(domain.domaindir))
        session.after_commit.append(lambda: dkim.forget(session.runtime.dkim_dir, domain.name))


@command("domaininfo", "di")
def domaininfo(
    fqdn: str,
    details: Annotated[str | None, typer.Option("-d", "--details", help=", ".join(DETAILS))] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a domain's settings and what it holds; -d lists the details too."""
    name = DomainName.parse(fqdn)
    wanted = details_wanted(details, DETAILS)
    with open_session() as session:
        domain = domains.get(session.conn, name)
        found = domains.counts(session.conn, domain.gid)
        everything = search.addresses(session.conn, "uar", search.Pattern(None, domain.name))
        lists = {
            "accounts": [item.address for item in everything if item.kind == "u"],
            "aliasdomains": domains.names(session.conn, domain.gid)[1:],
            "aliases": [item.address for item in everything if item.kind == "a"],
            "catchall": aliases.destinations(session.conn, domain.gid, aliases.CATCHALL),
            "relocated": [
                f"{local}@{domain.name} -> {target}"
                for local, target in relocated.listing(session.conn, domain.gid)
            ],
        }
    if as_json:
        show_json(
            {
                "domain": domain.name,
                "domain_unicode": DomainName(domain.name).unicode,
                "gid": domain.gid,
                "directory": domain.domaindir,
                "transport": domain.transport,
                "quota_bytes": domain.quota_bytes,
                "quota_messages": domain.quota_messages,
                "services": domain.services,
                "note": domain.note,
                "alias_domains": found.alias_domains,
                "accounts": found.accounts,
                "aliases": found.aliases,
                "relocated": found.relocated,
                "catchall": found.catchall,
                **({f"{key}_list": value for key, value in lists.items() if key in wanted}),
            }
        )
        return
    services = [service.upper() for service, on in domain.services.items() if on]
    show(
        "Domain information",
        [
            (
                "Domain Name",
                domain.name
                if domain.name == DomainName(domain.name).unicode
                else f"{domain.name} ({DomainName(domain.name).unicode})",
            ),
            ("GID", domain.gid),
            ("Domain Directory", domain.domaindir),
            ("Quota Limit/User", domain.quota.describe()),
            ("Active Services", " ".join(services) or "None"),
            ("Transport", domain.transport),
            ("Alias Domains", found.alias_domains),
            ("Accounts", found.accounts),
            ("Aliases", found.aliases),
            ("Relocated", found.relocated),
            ("Catch-All Dests", found.catchall),
            ("Note", domain.note or "None"),
        ],
    )
    titles = {
        "accounts": "Available accounts",
        "aliasdomains": "Alias domain names",
        "aliases": "Available aliases",
        "catchall": "Catch-all destinations",
        "relocated": "Relocated users",
    }
    for key in DETAILS[:-1]:
        if key in wanted:
            typer.echo("")
            show_list(titles[key], lists[key])


@command("domainquota", "dq")
def domainquota(fqdn: str, storage: str, messages: MessagesOption = "0", force: ForceOption = False) -> None:
    """Set the default quota of the domain's accounts (storage: 0, 500M, 2G ...); --force
    also drops every account's own quota."""
    name = DomainName.parse(fqdn)
    quota = Quota(parse_storage(storage), parse_messages(messages))
    with open_session() as session:
        domains.set_quota(session.conn, domains.get_primary(session.conn, name), quota, force)


@command("domainservices", "ds")
def domainservices(
    fqdn: str, more: ServiceArgs = None, service: ServiceOption = None, force: ForceOption = False
) -> None:
    """Enable the named services (imap, pop3, sieve, smtp) for the domain's accounts and
    disable the others; --force also drops every account's own services."""
    name = DomainName.parse(fqdn)
    services = parse_services([*(service or []), *(more or [])])
    with open_session() as session:
        domains.set_services(session.conn, domains.get_primary(session.conn, name), services, force)


@command("domaintransport", "dt")
def domaintransport(fqdn: str, transport: str, force: ForceOption = False) -> None:
    """Set the domain's transport (transport: or transport:nexthop); --force also drops
    every account's own transport."""
    name = DomainName.parse(fqdn)
    value = parse_transport(transport)
    with open_session() as session:
        domains.set_transport(session.conn, domains.get_primary(session.conn, name), value, force)


@command("domainnote", "do")
def domainnote(fqdn: str, note: NoteOption = None, delete: DeleteOption = False) -> None:
    """Set (-n NOTE) or delete (-d) the domain's note."""
    name = DomainName.parse(fqdn)
    value = one_of(note, delete, "-n NOTE")
    with open_session() as session:
        domains.set_note(session.conn, domains.get_primary(session.conn, name), value)


@command("aliasdomainadd", "ada")
def aliasdomainadd(fqdn: str, destination: str) -> None:
    """Add an alias domain of the domain DESTINATION: its accounts, aliases and relocated
    users answer under the alias domain's name too."""
    name, target = DomainName.parse(fqdn), DomainName.parse(destination)
    with open_session() as session:
        domains.add_alias_domain(session.conn, name, domains.get_primary(session.conn, target))


@command("aliasdomaindelete", "add")
def aliasdomaindelete(fqdn: str) -> None:
    """Delete an alias domain."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        domains.delete_alias_domain(session.conn, name)


@command("aliasdomaininfo", "adi")
def aliasdomaininfo(fqdn: str, as_json: JsonOption = False) -> None:
    """Show the domain an alias domain belongs to."""
    name = DomainName.parse(fqdn)
    with open_session() as session:
        target = domains.alias_domain_target(session.conn, name)
    if as_json:
        show_json({"alias_domain": name.ace, "alias_domain_unicode": name.unicode, "domain": target.name})
        return
    typer.echo("Alias domain information\n------------------------")
    typer.echo(f"\tThe alias domain {name.ace} belongs to:\n\t    * {target.name}")


@command("aliasdomainswitch", "ads")
def aliasdomainswitch(fqdn: str, destination: str) -> None:
    """Make an alias domain belong to another domain."""
    name, target = DomainName.parse(fqdn), DomainName.parse(destination)
    with open_session() as session:
        domains.switch_alias_domain(session.conn, name, domains.get_primary(session.conn, target))
