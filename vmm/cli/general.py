"""General subcommands of vmm(1): settings, lists, lookups, version and help; and the
appliance's own operations (migrate, setup)."""

from __future__ import annotations

import sys
from typing import Annotated

import click
import typer

from vmm import __version__, accounts, db, domains, passwords, provisioning, search, settings, tls
from vmm.addresses import DomainName
from vmm.cli.app import app, command
from vmm.cli.options import JsonOption, PatternOption
from vmm.cli.output import show, show_json, show_list
from vmm.errors import NotFound
from vmm.runtime import Runtime
from vmm.session import open_session

SECTIONS = {
    "account": "Account settings",
    "domain": "Domain settings",
    "mailbox": "Mailbox settings",
    "misc": "Miscellaneous settings",
}


@command("version", "v")
def version() -> None:
    """Show vmm's version."""
    typer.echo(f"vmm {__version__}")


@command("help", "h")
def help_(ctx: typer.Context, subcommand: Annotated[str | None, typer.Argument()] = None) -> None:
    """Show the list of subcommands, or the help of one."""
    group = ctx.parent.command if ctx.parent else ctx.command
    assert isinstance(group, click.Group)
    if subcommand is None:
        typer.echo(group.get_help(ctx.parent or ctx))
        return
    target = group.get_command(ctx, subcommand)
    if target is None:
        raise NotFound(f"unknown subcommand {subcommand!r}")
    with click.Context(target, info_name=subcommand, parent=ctx.parent) as sub:
        typer.echo(target.get_help(sub))


@command("configget", "cg")
def configget(option: str) -> None:
    """Show the value of a configuration option (section.option)."""
    with open_session() as session:
        typer.echo(f"{settings.option(option).name} = {session.settings.get(option)}")


@command("configset", "cs")
def configset(option: str, value: str) -> None:
    """Set a configuration option (section.option) for every later command."""
    with open_session() as session:
        settings.store(session.conn, option, value)


@command("configure", "cf")
def configure(
    section: Annotated[str | None, typer.Option("-s", "--section", help="Only this section.")] = None,
) -> None:
    """Set the options interactively (one line each from the terminal or stdin); an empty
    line keeps the value shown in brackets."""
    if section is not None and section not in SECTIONS:
        raise NotFound(f"unknown section {section!r} (sections: {', '.join(SECTIONS)})")
    with open_session() as session:
        for name in sorted(SECTIONS if section is None else [section]):
            typer.echo(f"\n* Configuration section: `{name}'")
            for option in sorted(o for o in settings.OPTIONS if o.startswith(name + ".")):
                current = session.settings.get(option)
                typer.echo(f"Enter new value for option {option.partition('.')[2]} [{current}]: ", nl=False)
                answer = sys.stdin.readline().rstrip("\r\n")
                typer.echo("")
                if answer and answer != current:
                    settings.store(session.conn, option, answer)


@command("listpwschemes", "lp")
def listpwschemes(as_json: JsonOption = False) -> None:
    """List the password schemes vmm writes and the shipped Dovecot verifies, and how
    many stored hashes each scheme has (legacy ones are rehashed at the next login)."""
    with open_session() as session:
        stored = accounts.hashes_by_scheme(session.conn)
    legacy = sum(number for scheme, number in stored if scheme in passwords.LEGACY_SCHEMES)
    if as_json:
        show_json(
            {
                "schemes": [
                    {"name": scheme.name, "weak": scheme.weak, "note": scheme.note}
                    for scheme in passwords.WRITABLE
                ],
                "import_only": sorted(passwords.IMPORT_ONLY),
                "refused_unless_weak_allowed": passwords.REFUSED_BY_DOVECOT,
                "encodings": passwords.ENCODINGS,
                "default": passwords.DEFAULT_SCHEME,
                "stored": {scheme: number for scheme, number in stored},
                "legacy_hashes": legacy,
            }
        )
        return
    show_list(
        "Usable password schemes",
        [
            f"{scheme.name:<13}{' (weak)' if scheme.weak else '':<8}{scheme.note}"
            for scheme in passwords.WRITABLE
        ],
    )
    typer.echo("")
    show_list("Usable encoding suffixes (plain digest schemes)", [" ".join(passwords.ENCODINGS)])
    typer.echo("")
    show_list(
        "Importable as ready hashes only (userpassword --hash)",
        [
            " ".join(sorted(passwords.IMPORT_ONLY)),
            " ".join(passwords.REFUSED_BY_DOVECOT) + "  (weak: needs VMM_ALLOW_WEAK_SCHEMES=yes)",
        ],
    )
    typer.echo("")
    show_list(
        "Stored hashes",
        [
            f"{scheme:<13}{number:>8}{'  (legacy)' if scheme in passwords.LEGACY_SCHEMES else ''}"
            for scheme, number in stored
        ],
    )
    typer.echo(
        f"Legacy hashes left: {legacy}"
        + (
            " (each is rehashed in the installation's scheme at its account's next login;"
            " at 0, VMM_ALLOW_WEAK_SCHEMES can be switched off)"
            if legacy
            else ""
        )
    )


@command("getuser", "gu")
def getuser(uid: int, as_json: JsonOption = False) -> None:
    """Show the address of the account with the given uid."""
    with open_session() as session:
        account = accounts.by_uid(session.conn, uid)
    if as_json:
        show_json({"uid": account.uid, "gid": account.gid, "address": account.address})
        return
    show("Account information", [("UID", account.uid), ("GID", account.gid), ("Address", account.address)])


@command("listdomains", "ld")
def listdomains(pattern: PatternOption = None, as_json: JsonOption = False) -> None:
    """List the domains: [+] a domain, [-] an alias domain (under its domain)."""
    like = search.parse_pattern(pattern, domains_only=True)
    with open_session() as session:
        found = domains.listing(session.conn, like.domain)
    if as_json:
        show_json(
            [
                {
                    "domain": name,
                    "domain_unicode": DomainName(name).unicode,
                    "primary": primary,
                    "belongs_to": owner,
                }
                for name, primary, owner in found
            ]
        )
        return
    show_list(
        "Matching domains", [f"[+] {name}" if primary else f"[-]     {name}" for name, primary, _ in found]
    )


def _list_addresses(kinds: str, title: str, pattern: str | None, as_json: bool) -> None:
    like = search.parse_pattern(pattern)
    with open_session() as session:
        found = search.addresses(session.conn, kinds, like)
    if as_json:
        show_json(
            [
                {"address": item.address, "type": search.KINDS[item.kind], "alias_domain": not item.primary}
                for item in found
            ]
        )
        return
    show_list(
        title,
        [
            f"[{item.kind if len(kinds) > 1 else ''}{'+' if item.primary else '-'}] {item.address}"
            for item in found
        ],
    )


@command("listaddresses", "ll")
def listaddresses(pattern: PatternOption = None, as_json: JsonOption = False) -> None:
    """List every address: u account, a alias, r relocated; + domain, - alias domain."""
    _list_addresses("uar", "Matching addresses", pattern, as_json)


@command("listaliases", "la")
def listaliases(pattern: PatternOption = None, as_json: JsonOption = False) -> None:
    """List the aliases; + domain, - alias domain."""
    _list_addresses("a", "Matching aliases", pattern, as_json)


@command("listrelocated", "lr")
def listrelocated(pattern: PatternOption = None, as_json: JsonOption = False) -> None:
    """List the relocated users; + domain, - alias domain."""
    _list_addresses("r", "Matching relocated users", pattern, as_json)


@command("listusers", "lu")
def listusers(pattern: PatternOption = None, as_json: JsonOption = False) -> None:
    """List the accounts; + domain, - alias domain."""
    _list_addresses("u", "Matching user accounts", pattern, as_json)


# Operations of the appliance (not in vmm(1)) -------------------------------------------


@app.command("migrate")
def migrate() -> None:
    """Apply the database schema migrations that are not applied yet."""
    with db.connect(Runtime.from_env(), attempts=30) as conn, db.transaction(conn):
        for name in db.migrate(conn):
            typer.echo(f"applied {name}")


@app.command("setup", hidden=True)
def setup() -> None:
    """Prepare the stack before the daemons start: migrations, TLS certificate, and the
    default domain (VMM_DOMAIN) on a new database."""
    runtime = Runtime.from_env()
    if tls.ensure_certificate(runtime):
        typer.echo(f"created a self-signed certificate for {runtime.hostname}")
    with db.connect(runtime, attempts=60) as conn, db.transaction(conn):
        new_database = db.schema_version(conn) == 0
        for migration in db.migrate(conn):
            typer.echo(f"applied {migration}")
        domains.move_stack_lmtp(conn, runtime.lmtp_transport)
    if new_database:
        name = DomainName.parse(runtime.domain)
        with open_session() as session:
            provisioning.create_domain(session, name, None, "the default domain (VMM_DOMAIN)")
        typer.echo(f"created the default domain {name.ace}")
