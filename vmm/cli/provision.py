"""The steps shared by several commands that create a domain or an account: the rows,
the directories and DKIM keys (undone if the transaction fails) and the password."""

from __future__ import annotations

from pathlib import Path

from vmm import accounts, dkim, domains, mailboxes
from vmm.addresses import DomainName, EmailAddress
from vmm.cli.app import Session, read_password
from vmm.limits import SERVICES, Quota, parse_storage, parse_transport


def create_domain(s: Session, name: DomainName, transport: str | None, note: str | None) -> domains.Domain:
    """Row and directory of a new domain, with the defaults of the domain.* options."""
    config = s.config
    domain = domains.add(
        s.conn,
        name,
        Path(config.get("misc.base_directory")),
        parse_transport(transport or config.get("domain.transport")),
        Quota(parse_storage(config.get("domain.quota_bytes")), config.number("domain.quota_messages")),
        {service: config.flag(f"domain.{service}") for service in SERVICES},
        note,
    )
    path = Path(domain.domaindir)
    mailboxes.create_domain_dir(path, domain.gid, config.number("domain.directory_mode"))
    s.created(path)
    create_key(s, domain.name)
    return domain


def create_key(s: Session, domain: str) -> dkim.Key:
    """A new DKIM key for ``domain``: signing once the command commits, removed if it fails."""
    dkim_dir = s.runtime.dkim_dir
    key = dkim.generate(dkim_dir, domain)
    s.on_rollback.append(lambda: dkim.discard(key))
    s.after_commit.append(lambda: dkim.activate(dkim_dir, key))
    return key


def create_account(
    s: Session, address: EmailAddress, password_stdin: bool, note: str | None
) -> tuple[accounts.Account, str | None]:
    """Row and Maildir of a new account; returns it with the password if generated."""
    config = s.config
    domain = domains.get(s.conn, address.domain)
    password, generated = read_password(password_stdin, config)
    hashed = s.password_policy.hash_new(password)
    account = accounts.add(s.conn, address, domain, hashed, note)
    create_maildir(s, Path(account.home), account.uid, account.gid)
    return account, password if generated else None


def create_maildir(s: Session, home: Path, uid: int, gid: int) -> None:
    """An account's home and Maildir as the mailbox.* and account.* options say; removed
    again if the command's transaction fails."""
    config = s.config
    mailboxes.create_account_dir(
        home,
        uid,
        gid,
        config.number("account.directory_mode"),
        config.get("mailbox.root"),
        mailboxes.parse_folders(config.get("mailbox.folders")),
        config.flag("mailbox.subscribe"),
    )
    s.created(home)
