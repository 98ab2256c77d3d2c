"""Rehash on login, the database half: what Dovecot's passdb lookup returns for legacy
hashes, and `python3 -m vmm.rehash` fed as Dovecot's Lua step feeds it, connected as
Dovecot's own role. (The Dovecot half, a real IMAP login, is in tests/e2e.)"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from passlib.hash import sha512_crypt

from tests.integration.conftest import ROOT, Cli
from vmm import passwords
from vmm.rehash import FAILED, LEFT_ALONE, STORED

PW = "correct horse"
LEGACY = "{" + ",".join(passwords.LEGACY_SCHEMES) + "}"
# Dovecot's PLAIN-MD5 of PW (`doveadm pw -s PLAIN-MD5`), as vmm 0.5 stored many.
PLAIN_MD5 = "{PLAIN-MD5}" + hashlib.md5(PW.encode(), usedforsecurity=False).hexdigest()


def conninfo(cli: Cli) -> str:
    password = (Path(cli.env["VMM_SECRETS_DIR"]) / "dovecot" / "password").read_text().strip()
    return (
        f"host={cli.env['VMM_DB_HOST']} port={cli.env['VMM_DB_PORT']} dbname=mailsys"
        f" user=dovecot password={password} sslmode=require"
    )


def lookup(cli: Cli, address: str) -> tuple[str, str, str | None]:
    local, _, domain = address.partition("@")
    with psycopg.connect(conninfo(cli)) as conn:
        row = conn.execute(
            "SELECT * FROM dovecot_password(%s, %s, 'imap', %s)", (local, domain, LEGACY)
        ).fetchone()
    assert row is not None
    return str(row[0]), str(row[1]), row[2]


def rehash(cli: Cli, token: str, password: str = PW) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vmm.rehash"],
        input=f"{conninfo(cli)}\0{token}\0{password}",
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
        timeout=60,
        check=False,
    )


@pytest.fixture
def legacy(cli: Cli) -> Cli:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "old@example.org", "--password-stdin", stdin="initial-password\n")
    cli.env["VMM_ALLOW_WEAK_SCHEMES"] = "yes"
    cli.ok("up", "old@example.org", "--hash", stdin=PLAIN_MD5 + "\n")
    del cli.env["VMM_ALLOW_WEAK_SCHEMES"]
    return cli


def test_a_proven_legacy_password_is_stored_in_the_installation_scheme(legacy: Cli) -> None:
    legacy.ok("cs", "misc.password_scheme", "SHA512-CRYPT")
    user, stored, token = lookup(legacy, "old@example.org")
    assert (user, stored) == ("old@example.org", PLAIN_MD5) and token
    done = rehash(legacy, token)
    assert done.returncode == STORED, done.stderr
    _, stored, token_after = lookup(legacy, "old@example.org")
    assert stored.startswith("{SHA512-CRYPT}") and sha512_crypt.verify(PW, stored.partition("}")[2])
    assert token_after is None
    assert json.loads(legacy.ok("lp", "--json"))["legacy_hashes"] == 0
    # The same token again (a login answered from Dovecot's cache) changes nothing.
    again = rehash(legacy, token)
    assert again.returncode == LEFT_ALONE and lookup(legacy, "old@example.org")[1] == stored


def test_a_password_changed_after_the_lookup_is_left_alone(legacy: Cli) -> None:
    _, _, token = lookup(legacy, "old@example.org")
    assert token
    legacy.ok("up", "old@example.org", "--password-stdin", stdin="the postmaster's new one\n")
    _, changed, _ = lookup(legacy, "old@example.org")
    done = rehash(legacy, token)
    assert done.returncode == LEFT_ALONE, done.stderr
    assert lookup(legacy, "old@example.org")[1] == changed


def test_strong_hashes_come_without_a_token(legacy: Cli) -> None:
    legacy.ok("ua", "new@example.org", "--password-stdin", stdin="a strong one here\n")
    assert lookup(legacy, "new@example.org")[2] is None


def test_bad_input_fails_in_one_line_without_the_password(legacy: Cli) -> None:
    done = rehash(legacy, "not-a-token", password="s3cret-never-logged")
    assert done.returncode == FAILED
    assert len(done.stderr.strip().splitlines()) == 1 and "s3cret" not in done.stderr
    assert lookup(legacy, "old@example.org")[1] == PLAIN_MD5


@pytest.mark.parametrize(
    "stored", ["{CRAM-MD5}ab", "{sha512.hex}00", "{SSHA512.B64}x", "{BLF-CRYPT}$2y$10$x", "plain", ""]
)
def test_sql_and_python_read_the_same_scheme(cli: Cli, stored: str) -> None:
    [(scheme,)] = cli.sql(f"SELECT password_scheme('{stored}')")
    assert scheme == passwords.scheme_of(stored)
