"""A Virtual Mail Manager 0.6 installation moves into a running stack and its users
notice nothing: old passwords log in over IMAP, old messages keep their UIDs and flags,
Sieve still files, and mail to every old address, alias, alias domain and catch-all
arrives; a relocated address still answers 550 5.1.6.

The old database is vmm 0.6's own schema file in a schema of the stack's PostgreSQL
(tests/oldvmm.py), read as vmm's role; the old mail root is a directory mounted
read-only into the `vmm` container, as the README says."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from passlib.hash import sha512_crypt

from tests import oldvmm
from tests.e2e.conftest import ROOT, Stack, wait_until_delivered
from tests.mail import message

STACK_ENV = {"VMM_ALLOW_WEAK_SCHEMES": "yes"}
PW_CRAM, PW_SHA = "old cram password", "old sha password"
UIDVALIDITY = 1700000000

# vmm 0.6's rows: one domain with an alias domain, a catch-all, an alias, a relocated
# user; `cram` inherits everything and has vmm 0.6's default CRAM-MD5 hash.
ROWS = """
INSERT INTO domain_data (gid, domaindir) VALUES (79001, '/srv/mail/9/79001');
INSERT INTO domain_name VALUES ('moved.example', 79001, true), ('alias-moved.example', 79001, false);
INSERT INTO users (local_part, passwd, uid, gid) VALUES ('cram', %(cram)s, 79010, 79001);
INSERT INTO users (local_part, passwd, uid, gid) VALUES ('sha', %(sha)s, 79011, 79001);
INSERT INTO alias VALUES (79001, 'team', 'cram@moved.example'), (79001, 'team', 'sha@moved.example');
INSERT INTO catchall VALUES (79001, 'sha@moved.example');
INSERT INTO relocated VALUES (79001, 'gone', 'gone@elsewhere.example');
"""


def old_mail(root: Path) -> Path:
    """cram's home as Dovecot left it: two messages at UIDs 7 and 9 (one flagged and
    seen, one with the keyword $Forwarded), the next UID 12, a Lists folder, a Sieve
    script that files "[list]" mail there."""
    home = root / "9" / "79001" / "79010"
    messages = {
        # 8 KiB: Dovecot counts quota in KiB.
        7: ("1700000000.M1P1.old:2,FS", "Subject: first\r\n\r\n" + "kept\r\n" * 1365),
        9: ("1700000001.M2P1.old:2,a", "Subject: second\r\n\r\nkept\r\n"),
    }
    maildir = oldvmm.maildir(home / "Maildir", messages, 12, UIDVALIDITY)
    oldvmm.maildir(maildir / ".Lists", {}, 1, UIDVALIDITY + 1)
    (maildir / "dovecot-keywords").write_text("0 $Forwarded\n")
    (maildir / "subscriptions").write_text("Lists\n")
    (home / ".dovecot.sieve").write_text(
        'require "fileinto";\nif header :contains "subject" "[list]" { fileinto "Lists"; }\n'
    )
    (root / "9" / "79001" / "79011" / "Maildir" / "cur").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def moved(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    cram, err, code = stack.exec("dovecot", "doveadm", "pw", "-s", "CRAM-MD5", "-p", PW_CRAM)
    assert code == 0, err
    sha = "{SHA512-CRYPT}" + sha512_crypt.hash(PW_SHA)
    rows = ROWS % {"cram": oldvmm.sql_literal(cram.strip()), "sha": oldvmm.sql_literal(sha)}
    _, err, code = stack.exec_input(oldvmm.database(rows), "postgres", *oldvmm.PSQL)
    assert code == 0, err
    source = old_mail(tmp_path_factory.mktemp("old-mail"))
    moving = subprocess.run(
        oldvmm.migrate_from(source),
        cwd=ROOT,
        capture_output=True,
        text=True,
        env=os.environ,
        timeout=120,
        check=False,
    )
    assert moving.returncode == 0, moving.stderr
    assert "moved 2 accounts of 1 domains" in moving.stderr
    yield stack


def test_old_messages_keep_their_uids_flags_and_keywords(moved: Stack) -> None:
    client = moved.imap_login("cram@moved.example", PW_CRAM)
    try:
        client.select("INBOX", readonly=True)
        assert client.response("UIDVALIDITY")[1] == [str(UIDVALIDITY).encode()]
        _, fetched = client.uid("FETCH", "1:*", "(FLAGS)")
        lines = [line for line in fetched if isinstance(line, bytes)]
        found = [re.search(rb"UID (\d+) FLAGS \(([^)]*)\)", line) for line in lines]
        flags = {int(m[1]): m[2] for m in found if m}
        assert flags.keys() == {7, 9}
        assert set(flags[7].split()) == {b"\\Flagged", b"\\Seen"}
        assert flags[9].split() == [b"$Forwarded"]
        folders = [line for line in client.list()[1] if isinstance(line, bytes)]
        assert any(line.endswith(b"Lists") for line in folders), folders
    finally:
        client.logout()


def test_old_passwords_log_in_and_quota_counts_the_old_mail(moved: Stack) -> None:
    moved.imap_login("sha@moved.example", PW_SHA).logout()
    out, err, code = moved.exec(
        "dovecot", "doveadm", "-f", "flow", "quota", "get", "-u", "cram@moved.example"
    )
    assert code == 0, err
    storage = re.search(r"Type=STORAGE Value=(\d+)", out)
    assert storage and int(storage[1]) >= 8, out


def test_every_old_address_receives_and_sieve_still_files(moved: Stack) -> None:
    for to in ("cram@moved.example", "cram@alias-moved.example", "team@moved.example"):
        moved.send("s@sender.example", [to], message(to, f"to {to}"))
    moved.send(
        "s@sender.example", ["cram@moved.example"], message("cram@moved.example", subject="[list] news")
    )
    moved.send("s@sender.example", ["anyone@moved.example"], message("anyone@moved.example", "catch-all"))
    assert len(wait_until_delivered(moved, "cram@moved.example", PW_CRAM, count=5)) == 5
    assert len(wait_until_delivered(moved, "cram@moved.example", PW_CRAM, folder="Lists")) == 1
    received = wait_until_delivered(moved, "sha@moved.example", PW_SHA, count=2)
    assert any(b"catch-all" in body for body in received)
    client = moved.imap_login("cram@moved.example", PW_CRAM)
    try:
        client.select("INBOX", readonly=True)
        _, found = client.uid("SEARCH", "ALL")
        # New mail goes on from the old next UID: clients see only the new messages as new.
        assert [int(uid) for uid in found[0].split()] == [7, 9, 12, 13, 14]
    finally:
        client.logout()


def test_a_relocated_address_still_answers_with_the_new_one(moved: Stack) -> None:
    code, reply = moved.rcpt("gone@moved.example")
    assert code == 550 and reply.startswith(b"5.1.6") and b"gone@elsewhere.example" in reply
