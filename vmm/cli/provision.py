"""The steps shared by several commands that create a domain or an account: the rows,
the directories and DKIM keys (undone if the transaction fails) and the password."""

from __future__ import annotations

from pathlib import Path

from vmm import accounts, dkim, domains, mailboxes
from vmm.addresses import DomainName, EmailAddress
from vmm.cli.options import read_password
from vmm.cli.session import Session
from vmm.limits import SERVICES, Quota, parse_storage, parse_transport


def create_domain(
    session: Session, name: DomainName, transport: str | None, note: str | None
) -> domains.Domain:
    """Row and directory of a new domain, with the defaults of the domain.* options."""
    settings = session.settings
    domain = domains.add(
        session.conn,
        name,
        Path(settings.get("misc.base_directory")),
        parse_transport(transport or settings.get("domain.transport")),
        Quota(parse_storage(settings.get("domain.quota_bytes")), settings.number("domain.quota_messages")),
        {service: settings.flag(f"domain.{service}") for service in SERVICES},
        note,
    )
    path = Path(domain.domaindir)
    mailboxes.create_domain_dir(path, domain.gid, settings.number("domain.directory_mode"))
    session.created(path)
    create_key(session, domain.name)
    return domain


def create_key(session: Session, domain: str) -> dkim.Key:
    """A new DKIM key for ``domain``: signing once the command commits, removed if it fails."""
    dkim_dir = session.runtime.dkim_dir
    key = dkim.generate(dkim_dir, domain)
    session.on_rollback.append(lambda: dkim.discard(key))
    session.after_commit.append(lambda: dkim.activate(dkim_dir, key))
    return key


def create_account(
    session: Session, address: EmailAddress, password_stdin: bool, note: str | None
) -> tuple[accounts.Account, str | None]:
    """Row and Maildir of a new account; returns it with the password if generated."""
    settings = session.settings
    domain = domains.get(session.conn, address.domain)
    password, generated = read_password(password_stdin, settings)
    hashed = session.password_policy.hash_new(password)
    account = accounts.add(session.conn, address, domain, hashed, note)
    create_maildir(session, Path(account.home), account.uid, account.gid)
    return account, password if generated else None


def create_maildir(session: Session, home: Path, uid: int, gid: int) -> None:
    """An account's home and Maildir as the mailbox.* and account.* options say; removed
    again if the command's transaction fails."""
    settings = session.settings
    mailboxes.create_account_dir(
        home,
        uid,
        gid,
        settings.number("account.directory_mode"),
        settings.get("mailbox.root"),
        mailboxes.parse_folders(settings.get("mailbox.folders")),
        settings.flag("mailbox.subscribe"),
    )
    session.created(home)
