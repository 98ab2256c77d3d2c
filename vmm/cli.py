"""The vmm command: one function per vmm(1) subcommand, long and short form, and the one
place where errors become messages and exit codes."""

from __future__ import annotations

import getpass
import json
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypeVar

import click
import typer

from vmm import __version__, accounts, db, domains, mailboxes, passwords, settings, tls
from vmm.addresses import DomainName, EmailAddress
from vmm.config import Runtime
from vmm.errors import InvalidValue, PasswordError, VmmError
from vmm.limits import SERVICES, Quota, parse_storage, parse_transport
from vmm.settings import Settings

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="vmm: manage the domains, accounts, aliases and relocated users of the mail stack.",
    context_settings={"help_option_names": ["-h", "--help"]},
)
F = TypeVar("F", bound=Callable[..., Any])

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON (stable keys).")]
PasswordStdin = Annotated[
    bool,
    typer.Option("--password-stdin", help="Read the password from the first line of stdin."),
]
NoteOption = Annotated[str | None, typer.Option("-n", "--note", help="The note to set.")]


def command(name: str, short: str) -> Callable[[F], F]:
    """Register a subcommand under its long and its (hidden) short name, as vmm(1) does."""

    def register(function: F) -> F:
        doc = (function.__doc__ or "").strip()
        app.command(name, help=f"{doc}\n\nShort form: {short}")(function)
        app.command(short, hidden=True, help=f"Short form of {name}.")(function)
        return function

    return register


@contextmanager
def session(attempts: int = 1) -> Iterator[tuple[db.Connection, Settings]]:
    """A command's connection and transaction, with the settings in force."""
    runtime = Runtime.from_env()
    with db.connect(runtime, attempts=attempts) as conn, db.transaction(conn):
        yield conn, Settings.load(conn)


def rounds(config: Settings) -> passwords.Rounds:
    return passwords.Rounds(
        blowfish=config.number("misc.crypt_blowfish_rounds"),
        sha256=config.number("misc.crypt_sha256_rounds"),
        sha512=config.number("misc.crypt_sha512_rounds"),
    )


def read_password(from_stdin: bool, config: Settings) -> tuple[str, bool]:
    """The new password and whether vmm generated it. Never from argv: stdin, a hidden
    prompt (twice), or generated when account.random_password is on."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise PasswordError("no password on stdin")
        return password, False
    if config.flag("account.random_password"):
        return passwords.random_password(config.number("account.password_length")), True
    if not sys.stdin.isatty():
        raise PasswordError("no password: give --password-stdin or run with a terminal")
    first = getpass.getpass("Enter new password: ")
    if not first:
        raise PasswordError("empty password")
    if getpass.getpass("Retype new password: ") != first:
        raise PasswordError("the passwords do not match")
    return first, False


def show(title: str, rows: list[tuple[str, object]]) -> None:
    """vmm's info layout: a title, a rule, and dotted labels."""
    width = max(len(label) for label, _ in rows) + 3
    typer.echo(f"{title}\n{'-' * len(title)}")
    for label, value in rows:
        typer.echo(f"\t{label.ljust(width, '.')}: {value}")


def show_json(data: object) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def on_off(flag: bool) -> str:
    return "enabled" if flag else "disabled"


def create_domain(
    conn: db.Connection, config: Settings, name: DomainName, transport: str | None,
    note: str | None,
) -> domains.Domain:
    """Row and directory of a new domain, with the defaults of the domain.* options."""
    domain = domains.add(
        conn, name, Path(config.get("misc.base_directory")),
        parse_transport(transport or config.get("domain.transport")),
        Quota(parse_storage(config.get("domain.quota_bytes")),
              config.number("domain.quota_messages")),
        {service: config.flag(f"domain.{service}") for service in SERVICES},
        note,
    )
    mailboxes.create_domain_dir(
        Path(domain.domaindir), domain.gid, config.number("domain.directory_mode")
    )
    return domain


def create_account(
    conn: db.Connection, config: Settings, address: EmailAddress, password_stdin: bool,
    note: str | None,
) -> tuple[accounts.Account, str | None]:
    """Row and Maildir of a new account; returns it with the password if generated."""
    domain = domains.get(conn, address.domain)
    password, generated = read_password(password_stdin, config)
    hashed = passwords.hash_password(password, config.get("misc.password_scheme"), rounds(config))
    account = accounts.add(conn, address, domain, hashed, note)
    mailboxes.create_account_dir(
        Path(account.home), account.uid, account.gid, config.number("account.directory_mode"),
        config.get("mailbox.root"), mailboxes.parse_folders(config.get("mailbox.folders")),
        config.flag("mailbox.subscribe"),
    )
    return account, password if generated else None


# General subcommands ------------------------------------------------------------------


@command("version", "v")
def version() -> None:
    """Show vmm's version."""
    typer.echo(f"vmm {__version__}")


@command("configget", "cg")
def configget(option: str) -> None:
    """Show the value of a configuration option (section.option)."""
    with session() as (_, config):
        typer.echo(f"{settings.option(option).name} = {config.get(option)}")


@command("configset", "cs")
def configset(option: str, value: str) -> None:
    """Set a configuration option (section.option) for every later command."""
    with session() as (conn, _):
        settings.store(conn, option, value)


@command("listpwschemes", "lp")
def listpwschemes(as_json: JsonOption = False) -> None:
    """List the password schemes vmm writes and the shipped Dovecot verifies."""
    if as_json:
        show_json({
            "schemes": [{"name": s.name, "weak": s.weak, "note": s.note} for s in passwords.WRITABLE],
            "import_only": sorted(passwords.IMPORT_ONLY),
            "refused_unless_weak_allowed": passwords.REFUSED_BY_DOVECOT,
            "encodings": passwords.ENCODINGS,
            "default": passwords.DEFAULT_SCHEME,
        })
        return
    typer.echo("Usable password schemes\n-----------------------")
    for scheme in passwords.WRITABLE:
        mark = " (weak)" if scheme.weak else ""
        typer.echo(f"\t{scheme.name:<13}{mark:<8}{scheme.note}")
    typer.echo("\nUsable encoding suffixes (plain digest schemes)\n" + "-" * 47)
    typer.echo("\t" + " ".join(passwords.ENCODINGS))


@command("getuser", "gu")
def getuser(uid: int) -> None:
    """Show the address of the account with the given uid."""
    with session() as (conn, _):
        account = accounts.by_uid(conn, uid)
    show("Account information", [("UID", account.uid), ("GID", account.gid),
                                 ("Address", account.address)])


# Domain subcommands -------------------------------------------------------------------


@command("domainadd", "da")
def domainadd(
    fqdn: str,
    note: NoteOption = None,
    transport: Annotated[str | None, typer.Option("-t", "--transport")] = None,
    password_stdin: PasswordStdin = False,
) -> None:
    """Add a domain and its directory; with domain.auto_postmaster also postmaster@."""
    name = DomainName.parse(fqdn)
    with session() as (conn, config):
        create_domain(conn, config, name, transport, note)
        generated = None
        if config.flag("domain.auto_postmaster"):
            typer.echo(f"Creating account for postmaster@{name.ace}", err=True)
            _, generated = create_account(
                conn, config, EmailAddress("postmaster", name), password_stdin, None
            )
    if generated:
        typer.echo(f"Generated password: {generated}")


@command("domaininfo", "di")
def domaininfo(
    fqdn: str,
    details: Annotated[str | None, typer.Option("-d", "--details")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show a domain's settings and what it holds."""
    name = DomainName.parse(fqdn)
    if details not in (None, "accounts", "aliasdomains", "aliases", "catchall", "relocated", "full"):
        raise InvalidValue(f"invalid details {details!r}")
    with session() as (conn, _):
        domain = domains.get(conn, name)
        found = domains.counts(conn, domain.gid)
    services = [service.upper() for service, on in domain.services.items() if on]
    if as_json:
        show_json({
            "domain": domain.name, "domain_unicode": DomainName(domain.name).unicode,
            "gid": domain.gid, "directory": domain.domaindir, "transport": domain.transport,
            "quota_bytes": domain.quota_bytes, "quota_messages": domain.quota_messages,
            "services": domain.services, "note": domain.note,
            "alias_domains": found.alias_domains, "accounts": found.accounts,
            "aliases": found.aliases, "relocated": found.relocated, "catchall": found.catchall,
        })
        return
    show("Domain information", [
        ("Domain Name", domain.name), ("GID", domain.gid), ("Domain Directory", domain.domaindir),
        ("Quota Limit/User", domain.quota.describe()),
        ("Active Services", " ".join(services) or "None"), ("Transport", domain.transport),
        ("Alias Domains", found.alias_domains), ("Accounts", found.accounts),
        ("Aliases", found.aliases), ("Relocated", found.relocated),
        ("Catch-All Dests", found.catchall), ("Note", domain.note or "None"),
    ])


# Account subcommands ------------------------------------------------------------------


@command("useradd", "ua")
def useradd(address: str, note: NoteOption = None, password_stdin: PasswordStdin = False) -> None:
    """Add an account and its Maildir. The password is prompted for (twice), read from
    stdin with --password-stdin, or generated when account.random_password is on."""
    parsed = EmailAddress.parse(address)
    with session() as (conn, config):
        _, generated = create_account(conn, config, parsed, password_stdin, note)
    if generated:
        typer.echo(f"Generated password: {generated}")


@command("userinfo", "ui")
def userinfo(
    address: str,
    details: Annotated[str | None, typer.Option("-d", "--details")] = None,
    as_json: JsonOption = False,
) -> None:
    """Show an account's settings."""
    parsed = EmailAddress.parse(address)
    if details not in (None, "aliases", "du", "full"):
        raise InvalidValue(f"invalid details {details!r} (aliases, du, full)")
    with session() as (conn, _):
        account = accounts.get(conn, parsed)
    if as_json:
        show_json({
            "address": account.address, "uid": account.uid, "gid": account.gid,
            "home": account.home, "name": account.name, "note": account.note,
            "transport": account.transport, "quota_bytes": account.quota_bytes,
            "quota_messages": account.quota_messages, "services": account.services,
        })
        return
    show("Account information", [
        ("Address", account.address), ("Name", account.name or "None"),
        ("UID", account.uid), ("GID", account.gid), ("Home", account.home),
        ("Quota Storage", Quota(account.quota_bytes, 0).describe().split(";")[0]),
        ("Quota Messages", account.quota_messages or "unlimited"),
        ("Transport", account.transport),
        *((service.upper(), on_off(on)) for service, on in account.services.items()),
        ("Note", account.note or "None"),
    ])


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
        if new_database:
            name = DomainName.parse(runtime.domain)
            create_domain(conn, Settings.load(conn), name, None, "the default domain (VMM_DOMAIN)")
            typer.echo(f"created the default domain {name.ace}")


def main() -> None:
    """The error boundary: every VmmError becomes one line on stderr and its exit code."""
    try:
        app(standalone_mode=False)
    except VmmError as exc:
        typer.echo(f"Error: {exc}", err=True)
        sys.exit(exc.code)
    except click.exceptions.Abort:
        typer.echo("Error: aborted", err=True)
        sys.exit(1)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
