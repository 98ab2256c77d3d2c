"""domainadd, useradd, userinfo and friends against the real database and mail root."""

from __future__ import annotations

import json
import stat
from pathlib import Path

from passlib.hash import bcrypt

from tests.integration.conftest import Cli
from vmm import db


def test_domainadd_creates_domain_directory_and_postmaster(cli: Cli) -> None:
    cli.ok("domainadd", "example.org", "--password-stdin", stdin="postmaster-secret\n")
    info = json.loads(cli.ok("domaininfo", "example.org", "--json"))
    assert info["domain"] == "example.org"
    assert info["accounts"] == 1
    directory = Path(info["directory"])
    assert directory.parent.parent == cli.mail_root
    assert directory.is_dir() and directory.stat().st_gid == info["gid"]
    assert stat.S_IMODE(directory.stat().st_mode) == 0o770
    postmaster = json.loads(cli.ok("userinfo", "postmaster@example.org", "--json"))
    assert postmaster["gid"] == info["gid"]


def test_useradd_stores_a_hash_never_the_password(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "Alice@Example.org", "--password-stdin", stdin="wonder land!\n")
    [(stored,)] = cli.sql("SELECT passwd FROM users WHERE local_part = 'alice'")
    assert isinstance(stored, str) and stored.startswith("{BLF-CRYPT}")
    assert "wonder land" not in stored
    assert bcrypt.verify("wonder land!", stored.removeprefix("{BLF-CRYPT}"))


def test_useradd_creates_the_maildir_with_folders_owned_by_the_account(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "alice@example.org", "--password-stdin", stdin="pw-long-enough\n")
    info = json.loads(cli.ok("ui", "alice@example.org", "--json"))
    home = Path(info["home"])
    assert home.name == str(info["uid"])
    maildir = home / "Maildir"
    for box in (maildir, maildir / ".Drafts", maildir / ".Sent", maildir / ".Trash"):
        for sub in ("cur", "new", "tmp"):
            path = box / sub
            assert path.is_dir(), path
            assert (path.stat().st_uid, path.stat().st_gid) == (info["uid"], info["gid"])
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    assert (maildir / "subscriptions").read_text().split() == [
        "Drafts",
        "Sent",
        "Templates",
        "Trash",
    ]


def test_userinfo_text_shows_what_was_stored(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "bob@example.org", "-n", "night shift", "--password-stdin", stdin="pw-long-enough\n")
    out = cli.ok("userinfo", "bob@example.org")
    assert "Address..........: bob@example.org" in out
    assert "Note.............: night shift" in out
    assert "IMAP.............: enabled" in out


def test_random_password_is_printed_once(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("configset", "account.random_password", "true")
    cli.ok("da", "example.org")
    out = cli.ok("ua", "carol@example.org")
    generated = out.strip().removeprefix("Generated password: ")
    assert len(generated) == 16
    [(stored,)] = cli.sql("SELECT passwd FROM users WHERE local_part = 'carol'")
    assert bcrypt.verify(generated, str(stored).removeprefix("{BLF-CRYPT}"))


def test_getuser_finds_the_address_of_a_uid(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "dave@example.org", "--password-stdin", stdin="pw-long-enough\n")
    uid = json.loads(cli.ok("ui", "dave@example.org", "--json"))["uid"]
    assert "dave@example.org" in cli.ok("getuser", str(uid))


def test_configset_is_seen_by_the_next_command(cli: Cli) -> None:
    cli.ok("cs", "misc.password_scheme", "SHA512-CRYPT")
    assert cli.ok("cg", "misc.password_scheme").strip() == "misc.password_scheme = SHA512-CRYPT"


def test_migrate_is_idempotent(cli: Cli) -> None:
    assert cli.ok("migrate") == ""
    assert cli.sql("SELECT count(*) FROM schema_migrations") == [(len(db.migrations()),)]


def test_domains_on_the_stacks_lmtp_follow_a_new_lmtp_port(cli: Cli) -> None:
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "follow.example")
    cli.ok("da", "relay.example", "-t", "smtp:[mx.example.net]:2025")
    cli.ok("da", "pinned.example", "-t", "lmtp:inet:dovecot:24")
    cli.ok("ua", "kim@follow.example", "--password-stdin", stdin="kim's long password\n")
    moved = Cli({**cli.env, "VMM_LMTP_PORT": "2424"}, cli.mail_root)
    try:
        moved.ok("setup")  # what every start of the stack runs, here with the new port
        for domain, transport in [
            ("follow.example", "lmtp:inet:dovecot:2424"),
            ("relay.example", "smtp:[mx.example.net]:2025"),
            # Named as the stack's LMTP was: it follows the stack too.
            ("pinned.example", "lmtp:inet:dovecot:2424"),
        ]:
            assert json.loads(cli.ok("domaininfo", domain, "--json"))["transport"] == transport
        assert json.loads(cli.ok("userinfo", "kim@follow.example", "--json"))["transport"] == (
            "lmtp:inet:dovecot:2424"
        )
        lookup = "SELECT postfix_transport_map('kim', 'follow.example')"
        assert cli.sql(lookup) == [("lmtp:inet:dovecot:2424",)]
    finally:
        cli.ok("setup")
    assert json.loads(cli.ok("domaininfo", "follow.example", "--json"))["transport"] == "lmtp:inet:dovecot:24"


def test_postfix_lookups_answer_relocated_users_by_transport_and_accounts_by_alias(cli: Cli) -> None:
    """Schema 0011's fewer lookups: a relocated user's reply comes from the transport map
    (Postfix has no relocated_maps), and the alias map knows every account, so that
    smtpd's recipient check needs no mailbox lookup after it."""
    cli.ok("configset", "domain.auto_postmaster", "false")
    cli.ok("da", "lookup.example")
    cli.ok("ada", "lookup.example.net", "lookup.example")
    cli.ok("ua", "kim@lookup.example", "--password-stdin", stdin="kim's long password\n")
    cli.ok("ra", "gone@lookup.example", "gone@elsewhere.example")
    names = "FROM unnest(ARRAY['lookup.example', 'lookup.example.net']) AS name"
    assert cli.sql(f"SELECT name, postfix_transport_map('gone', name) {names}") == [
        (name, "error:5.1.6 User has moved to gone@elsewhere.example")
        for name in ("lookup.example", "lookup.example.net")
    ]
    assert cli.sql(f"SELECT name, postfix_virtual_alias_map('kim', name, '+') {names}") == [
        (name, "kim@lookup.example") for name in ("lookup.example", "lookup.example.net")
    ]
    assert cli.sql(f"SELECT postfix_virtual_alias_map('gone', name, '+') {names}") == []
    assert cli.sql("SELECT * FROM postfix_transport_map('kim', 'lookup.example')") == [
        ("lmtp:inet:dovecot:24",)
    ]
    assert cli.sql("SELECT * FROM postfix_transport_map('nobody', 'lookup.example')") == []
    assert cli.sql("SELECT to_regprocedure('postfix_relocated_map(text, text)')") == [(None,)]
    # Refused by its transport at RCPT, as smtpd does only for an address no alias knows.
    cli.ok("usertransport", "kim@lookup.example", "retry:4.0.0 Mailbox being migrated")
    assert cli.sql("SELECT * FROM postfix_virtual_alias_map('kim', 'lookup.example', '+')") == []
