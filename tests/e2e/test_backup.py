"""A running stack is backed up with `vmm backup`, and restored with `vmm restore` into a
new stack: every account logs in with its password, every message is there byte for
byte with its UID and flags, and the new stack presents the old certificate."""

from __future__ import annotations

import hashlib
import imaplib
import re
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Stack, compose_stack, wait_until_delivered
from tests.fixtures.crafted_backups import CRAFTED, with_member
from tests.mail import message, tls_context
from vmm.errors import ExitCode

USERS = {
    "alice@example.test": "Alice-password-1",
    "bob@example.test": "Bob-password-2",
    "carol@example.test": "Carol-password-3",
}
# folder -> [(uid, flags, bytes)]
Mailbox = dict[str, list[tuple[int, str, bytes]]]


def mailbox(stack: Stack, user: str) -> Mailbox:
    client = stack.imap_login(user, USERS[user])
    try:
        _, listed = client.list()
        found: Mailbox = {}
        for line in listed:
            assert isinstance(line, bytes)
            listing = re.fullmatch(r'\([^)]*\) (?:"[^"]*"|NIL) "?(?P<name>[^"]+)"?', line.decode())
            assert listing is not None, line
            name = listing["name"]
            client.select(f'"{name}"', readonly=True)
            _, data = client.uid("SEARCH", "ALL")
            found[name] = []
            for uid in data[0].split():
                _, fetched = client.uid("FETCH", uid, "(FLAGS BODY.PEEK[])")
                item = fetched[0]
                assert isinstance(item, tuple)
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0])
                assert flags is not None
                found[name].append((int(uid), flags.group(1).decode(), item[1]))
        return found
    finally:
        client.logout()


def certificate(stack: Stack) -> str:
    with (
        socket.create_connection(("127.0.0.1", stack.port(993)), timeout=30) as raw,
        tls_context().wrap_socket(raw) as tls,
    ):
        der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def fill(stack: Stack) -> None:
    for user, password in USERS.items():
        stack.add_account(user, password)
    for n, user in enumerate(USERS):
        for size in (0, 20_000 * n):
            stack.send("sender@sender.example", [user], message(user, f"for {user}", size))
    stack.send("sender@sender.example", list(USERS), message("team@example.test", "to all, caf\u00e9"))
    for user, password in USERS.items():
        wait_until_delivered(stack, user, password, count=3)
    client = stack.imap_login("alice@example.test", USERS["alice@example.test"])
    try:
        client.create("Archive")
        client.append(
            "Archive",
            r"(\Seen \Flagged)",
            imaplib.Time2Internaldate(time.time()),
            b"Subject: kept\r\n\r\nfiled by hand\r\n",
        )
        client.select("INBOX")
        client.store("1", "+FLAGS", r"(\Answered)")
    finally:
        client.logout()


def _mail_volume(stack: Stack) -> list[str]:
    """Every path in the mail volume with its mode and owner, as Dovecot's container sees it."""
    listing, _, code = stack.exec("dovecot", "find", "/srv/mail", "-printf", "%p %m %U\n")
    assert code == 0
    return sorted(listing.splitlines())


def test_a_backup_file_is_private_and_a_crafted_archive_is_refused_whole(stack: Stack) -> None:
    stack.add_account("dave@example.test", "Dave-password-4")
    # Written by the command itself: readable by root alone, whatever the umask.
    stack.vmm_ok("backup", "/srv/mail/private.tar.gz")
    mode, _, _ = stack.exec("dovecot", "stat", "-c", "%a %U", "/srv/mail/private.tar.gz")
    assert mode.split() == ["600", "root"]
    archive = subprocess.run(
        ["docker", "compose", "exec", "-T", "dovecot", "cat", "/srv/mail/private.tar.gz"],
        cwd=ROOT,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    stack.exec("dovecot", "rm", "/srv/mail/private.tar.gz")
    before = _mail_volume(stack)
    for case in ("a name that climbs out", "a symlink to an absolute path", "a device"):
        crafted = with_member(archive, CRAFTED[case], b"bad")
        restored = subprocess.run(
            ["docker", "compose", "run", "--rm", "-T", "vmm", "restore", "-", "--force"],
            cwd=ROOT,
            input=crafted,
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert restored.returncode == ExitCode.INVALID, (case, restored.stderr)
        assert _mail_volume(stack) == before, case
    stack.vmm_ok("userdelete", "dave@example.test", "--delete-directory")


def test_a_backup_restores_into_a_new_stack(stack: Stack, tmp_path: Path) -> None:
    fill(stack)
    before = {user: mailbox(stack, user) for user in USERS}
    cert = certificate(stack)
    archive = tmp_path / "vmm-backup.tar.gz"
    with archive.open("wb") as out:
        saved = subprocess.run(
            ["docker", "compose", "run", "--rm", "-T", "vmm", "backup", "-"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.PIPE,
            text=False,
            timeout=300,
            check=False,
        )
    assert saved.returncode == 0, saved.stderr
    stack.compose.stop(down=True)  # the old stack and its volumes are gone

    with compose_stack("restored", {}, []) as fresh, archive.open("rb") as source:
        for user, password in USERS.items():
            with pytest.raises(imaplib.IMAP4.error):
                fresh.imap_login(user, password)
        restored = subprocess.run(
            ["docker", "compose", "run", "--rm", "-T", "vmm", "restore", "-"],
            cwd=ROOT,
            stdin=source,
            capture_output=True,
            timeout=300,
            check=False,
        )
        assert restored.returncode == 0, restored.stderr
        for command in (["restart"], ["up", "-d", "--wait"]):
            subprocess.run(
                ["docker", "compose", *command], cwd=ROOT, check=True, capture_output=True, timeout=300
            )
        assert {user: mailbox(fresh, user) for user in USERS} == before
        assert certificate(fresh) == cert
        # The restored stack works on: mail to a restored account arrives.
        fresh.send("sender@sender.example", ["bob@example.test"], message("bob@example.test", "after"))
        wait_until_delivered(fresh, "bob@example.test", USERS["bob@example.test"], count=4)
