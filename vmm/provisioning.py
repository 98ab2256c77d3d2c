"""Creating domains and accounts as the settings say: the rows, the directories and DKIM
keys (undone if the command's transaction fails), and many accounts at once with their
passwords hashed on every core."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from vmm import accounts, dkim, domains, mailboxes, passwords
from vmm.addresses import DomainName, EmailAddress
from vmm.errors import AlreadyExists, InvalidValue, PasswordError
from vmm.limits import SERVICES, Quota, parse_default_transport, parse_storage
from vmm.session import Session


def create_domain(
    session: Session, name: DomainName, transport: str | None, note: str | None
) -> domains.Domain:
    """Row, directory and DKIM key of a new domain, with the defaults of the domain.* options."""
    settings = session.settings
    domain = domains.add(
        session.conn,
        name,
        Path(settings.get("misc.base_directory")),
        parse_default_transport(transport or settings.get("domain.transport")),
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
    session: Session, address: EmailAddress, new_password: Callable[[], str], note: str | None
) -> accounts.Account:
    """Row and Maildir of a new account. The password is asked for (``new_password``)
    only once the domain is known to exist."""
    domain = domains.get(session.conn, address.domain)
    hashed = session.password_policy.hash_new(new_password())
    account = accounts.add(session.conn, address, domain, hashed, note)
    if account.backend is None:
        create_maildir(session, Path(account.home), account.uid, account.gid)
    return account


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


@dataclass(frozen=True)
class Imported:
    """What `import` stored: the (uid, gid, home) of the new accounts whose Maildirs
    are this stack's to create (not those on a backend), and its phases."""

    imported: int
    created: list[tuple[int, int, Path]]
    hashed: int
    hash_seconds: float
    workers: int
    store_seconds: float
    weak_hashes: int


def _hash(job: tuple[str, str, passwords.Rounds]) -> str:
    password, scheme, cost = job
    return passwords.hash_password(password, scheme, cost)


def import_accounts(session: Session, rows: list[tuple[str, str]]) -> Imported:
    """Many accounts (address, password or ready {SCHEME}hash) in the session's
    transaction: all or none. Domains must exist; ready hashes are stored as they are,
    the other passwords hashed with misc.password_scheme on every core. Their Maildirs
    are the caller's to create (create_maildir), one by one, so that it can show how far
    it is."""
    if not rows:
        raise InvalidValue("no accounts in the input")
    parsed = [EmailAddress.parse(address) for address, _ in rows]
    if len({str(address) for address in parsed}) != len(parsed):
        raise AlreadyExists("the input names an address twice")
    policy = session.password_policy
    passwords.writable_scheme(policy.scheme, policy.allow_weak)
    found: dict[str, domains.Domain] = {}
    for address in parsed:
        if address.domain.ace not in found:
            domain = domains.get(session.conn, address.domain)
            domains.lock(session.conn, domain)
            found[address.domain.ace] = domain
    pairs = [(found[a.domain.ace].gid, a.local_part) for a in parsed]
    taken = accounts.addresses_in_use(session.conn, pairs)
    if taken:
        raise AlreadyExists(f"{len(taken)} addresses already exist, e.g. {taken[0]}")
    hashes: list[str] = [""] * len(rows)
    plain, weak_hashes = [], 0
    for index, (_, secret) in enumerate(rows):
        if secret.startswith("{"):
            hashed, weak = policy.ready_hash(secret)
            hashes[index] = hashed
            weak_hashes += weak
        elif not secret:
            raise InvalidValue(f"empty password for {parsed[index]}")
        else:
            try:
                policy.check_length(secret)
            except PasswordError as exc:
                raise PasswordError(f"{parsed[index]}: {exc}") from None
            plain.append(index)
    started = time.monotonic()
    workers = len(os.sched_getaffinity(0))  # a process a core this container may use
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [(rows[index][1], policy.scheme, policy.rounds) for index in plain]
        for index, hashed in zip(plain, pool.map(_hash, jobs, chunksize=64), strict=True):
            hashes[index] = hashed
    hashed_in = time.monotonic() - started
    created = accounts.add_many(
        session.conn, [(gid, local, hashed) for (gid, local), hashed in zip(pairs, hashes, strict=True)]
    )
    stored_in = time.monotonic() - started - hashed_in
    home = accounts.homes(session.conn, [uid for uid, _, _ in created])
    return Imported(
        len(created),
        [(uid, gid, Path(home[uid])) for uid, gid, backend in created if backend is None],
        len(plain),
        hashed_in,
        workers,
        stored_in,
        weak_hashes,
    )
