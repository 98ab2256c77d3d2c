"""Account subcommands of vmm(1)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from vmm import accounts, mailboxes, passwords, provisioning
from vmm.addresses import EmailAddress
from vmm.cli.app import command
from vmm.cli.options import (
    DeleteOption,
    ForceOption,
    JsonOption,
    MessagesOption,
    NameOption,
    NewPassword,
    NoteOption,
    PasswordStdin,
    ServiceArgs,
    ServiceOption,
    details_wanted,
    one_of,
    read_password,
    read_secret,
)
from vmm.cli.output import show, show_json, show_list
from vmm.errors import InvalidValue
from vmm.limits import Quota, format_storage, parse_messages, parse_services, parse_storage, parse_transport
from vmm.session import open_session

DETAILS = ("aliases", "du", "full")
DOMAIN_KEYWORD = "domain"  # vmm(1): drop the account's override, use the domain's value


@command("useradd", "ua")
def useradd(address: str, note: NoteOption = None, password_stdin: PasswordStdin = False) -> None:
    """Add an account and its Maildir. The password is prompted for (twice), read from
    stdin with --password-stdin, or generated when account.random_password is on."""
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        password = NewPassword(password_stdin, session.settings)
        provisioning.create_account(session, parsed, password, note)
    if password.generated:
        typer.echo(f"Generated password: {password.generated}")


@command("userdelete", "ud")
def userdelete(
    address: str,
    delete_directory: Annotated[bool, typer.Option("--delete-directory")] = False,
    force: ForceOption = False,
) -> None:
    """Delete an account. Refused while aliases point at it, unless --force (which
    deletes those destinations too). The Maildir stays unless --delete-directory (or
    account.delete_directory)."""
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        account = accounts.get(session.conn, parsed)
        accounts.delete(session.conn, account, force)
        if delete_directory or session.settings.flag("account.delete_directory"):
            session.remove_later(Path(account.home))


@command("userinfo", "ui")
def userinfo(
    address: str,
    details: Annotated[str | None, typer.Option("-d", "--details", help=", ".join(DETAILS))] = None,
    as_json: JsonOption = False,
) -> None:
    """Show an account's settings; -d aliases, du (disk usage) or full adds those."""
    parsed = EmailAddress.parse(address)
    wanted = details_wanted(details, DETAILS)
    with open_session() as session:
        account = accounts.get(session.conn, parsed)
        pointing = accounts.pointing_here(session.conn, account)
        show_du = "du" in wanted or session.settings.flag("account.disk_usage")
    usage = mailboxes.disk_usage(Path(account.home)) if show_du else None
    if as_json:
        show_json(
            {
                "address": account.address,
                "uid": account.uid,
                "gid": account.gid,
                "home": account.home,
                "name": account.name,
                "note": account.note,
                "transport": account.transport,
                "own_transport": account.own_transport,
                "quota_bytes": account.quota_bytes,
                "quota_messages": account.quota_messages,
                "own_quota": account.own_quota,
                "services": account.services,
                "own_services": account.own_services,
                "backend": account.backend,
                "moving_to": account.moving_to,
                "aliases": [alias for alias, _ in pointing],
                "disk_usage": usage,
            }
        )
        return
    rows: list[tuple[str, object]] = [
        ("Address", account.address),
        ("Name", account.name or "None"),
        ("UID", account.uid),
        ("GID", account.gid),
        ("Home", account.home),
        ("Mail_Location", "maildir:~/Maildir"),
        ("Quota Storage", format_storage(account.quota_bytes)),
        ("Quota Messages", f"{account.quota_messages:,}" if account.quota_messages else "unlimited"),
        ("Transport", account.transport),
        *((service.upper(), "enabled" if on else "disabled") for service, on in account.services.items()),
        ("Note", account.note or "None"),
        *((("Backend", account.backend),) if account.backend else ()),
        *((("Moving to", account.moving_to),) if account.moving_to else ()),
    ]
    if usage is not None:
        rows.append(("Disk Usage", format_storage(usage) if usage else "0 B"))
    show("Account information", rows)
    if "aliases" in wanted:
        typer.echo("")
        show_list("Alias addresses", [alias for alias, _ in pointing])


@command("username", "un")
def username(
    address: str,
    name: NameOption = None,
    delete: DeleteOption = False,
) -> None:
    """Set (-n NAME) or delete (-d) the account's real name."""
    value = one_of(name, delete, "-n NAME")
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        accounts.set_name(session.conn, accounts.get(session.conn, parsed), value)


@command("usernote", "uo")
def usernote(
    address: str,
    note: NoteOption = None,
    delete: DeleteOption = False,
) -> None:
    """Set (-n NOTE) or delete (-d) the account's note."""
    value = one_of(note, delete, "-n NOTE")
    parsed = EmailAddress.parse(address)
    with open_session() as session:
        accounts.set_note(session.conn, accounts.get(session.conn, parsed), value)


@command("userpassword", "up")
def userpassword(
    address: str,
    scheme: Annotated[
        str | None, typer.Option("-s", "--scheme", help="Overrides misc.password_scheme.")
    ] = None,
    ready_hash: Annotated[
        bool,
        typer.Option("--hash", help="Read a ready {SCHEME}hash (`doveadm pw` prints one) from stdin."),
    ] = False,
    password_stdin: PasswordStdin = False,
) -> None:
    """Change an account's password: prompted for (twice), read from stdin, generated
    (account.random_password), or given as a ready {SCHEME}hash on stdin."""
    parsed = EmailAddress.parse(address)
    if ready_hash and (scheme is not None or password_stdin):
        raise InvalidValue("--hash excludes --scheme and --password-stdin")
    with open_session() as session:
        account = accounts.get(session.conn, parsed)
        generated = None
        if ready_hash:
            hashed, weak = session.password_policy.ready_hash(read_secret("hash"))
            if weak:
                typer.echo(f"Warning: {account.address} now has a weak password hash", err=True)
        else:
            if scheme is not None:
                passwords.writable_scheme(scheme, session.runtime.allow_weak_schemes)
            password, was_generated = read_password(password_stdin, session.settings)
            generated = password if was_generated else None
            hashed = session.password_policy.hash_new(password, scheme)
        accounts.set_password(session.conn, account, hashed)
    if generated:
        typer.echo(f"Generated password: {generated}")


@command("userquota", "uq")
def userquota(
    address: str,
    storage: str,
    messages: MessagesOption = "0",
) -> None:
    """Set the account's quota (storage: 0, 750M, 2G ...; -m messages), or `domain` to use
    the domain's again."""
    parsed = EmailAddress.parse(address)
    quota = None if storage == DOMAIN_KEYWORD else Quota(parse_storage(storage), parse_messages(messages))
    with open_session() as session:
        accounts.set_quota(session.conn, accounts.get(session.conn, parsed), quota)


@command("userservices", "us")
def userservices(
    address: str,
    more: ServiceArgs = None,
    service: ServiceOption = None,
) -> None:
    """Enable the named services for the account and disable the others, or `domain` to
    use the domain's again."""
    parsed = EmailAddress.parse(address)
    named = [*(service or []), *(more or [])]
    services = None if named == [DOMAIN_KEYWORD] else parse_services(named)
    with open_session() as session:
        accounts.set_services(session.conn, accounts.get(session.conn, parsed), services)


@command("usertransport", "ut")
def usertransport(address: str, transport: str) -> None:
    """Set the account's transport, or `domain` to use the domain's again."""
    parsed = EmailAddress.parse(address)
    value = None if transport == DOMAIN_KEYWORD else parse_transport(transport)
    with open_session() as session:
        accounts.set_transport(session.conn, accounts.get(session.conn, parsed), value)
