"""Every vmm(1) subcommand against the real database: what it stores and shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.conftest import Cli
from vmm.errors import ExitCode
from vmm.settings import OPTIONS


@pytest.fixture
def org(cli: Cli) -> Cli:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "alice@example.org", "--password-stdin", stdin="pw-long-enough\n")
    return cli


def _json(cli: Cli, *args: str) -> dict[str, Any]:
    value = json.loads(cli.ok(*args, "--json"))
    assert isinstance(value, dict)
    return value


def test_short_and_long_forms_are_the_same_command(org: Cli) -> None:
    assert org.ok("userinfo", "alice@example.org") == org.ok("ui", "alice@example.org")
    long_help, short_help = org.ok("help", "useradd"), org.ok("h", "ua")
    assert "Short form: ua" in long_help and "Long form: useradd" in short_help
    assert long_help.split("Short form")[0].replace("useradd", "ua") == short_help.split("Long form")[0]


def test_help_lists_every_man_page_subcommand(cli: Cli) -> None:
    out = cli.ok("help")
    for name in (
        "configget",
        "configset",
        "configure",
        "getuser",
        "listdomains",
        "listaddresses",
        "listaliases",
        "listrelocated",
        "listusers",
        "listpwschemes",
        "domainadd",
        "domaindelete",
        "domaininfo",
        "domainquota",
        "domainservices",
        "domaintransport",
        "domainnote",
        "aliasdomainadd",
        "aliasdomaindelete",
        "aliasdomaininfo",
        "aliasdomainswitch",
        "useradd",
        "userdelete",
        "userinfo",
        "username",
        "userpassword",
        "usernote",
        "userquota",
        "userservices",
        "usertransport",
        "aliasadd",
        "aliasdelete",
        "aliasinfo",
        "catchalladd",
        "catchallinfo",
        "catchalldelete",
        "relocatedadd",
        "relocatedinfo",
        "relocateddelete",
        "version",
    ):
        assert f"  {name} " in out, name


def test_domain_settings_and_account_overrides(org: Cli) -> None:
    org.ok("dq", "example.org", "500M", "-m", "10000")
    org.ok("ds", "example.org", "-s", "imap", "sieve")
    org.ok("dt", "example.org", "smtp:[mx.example.net]:2025")
    org.ok("do", "example.org", "-n", "Belongs to Robert")
    info = _json(org, "di", "example.org")
    assert info["quota_bytes"] == 500 * 1024**2 and info["quota_messages"] == 10000
    assert info["services"] == {"smtp": False, "pop3": False, "imap": True, "sieve": True}
    assert info["transport"] == "smtp:[mx.example.net]:2025"
    assert info["note"] == "Belongs to Robert"
    user = _json(org, "ui", "alice@example.org")
    assert user["quota_bytes"] == 500 * 1024**2 and user["own_quota"] is False
    assert user["services"] == info["services"]

    org.ok("uq", "alice@example.org", "1G", "-m", "50")
    org.ok("us", "alice@example.org", "-s", "pop3")
    org.ok("ut", "alice@example.org", "lmtp:inet:dovecot:24")
    user = _json(org, "ui", "alice@example.org")
    assert (user["quota_bytes"], user["quota_messages"]) == (1024**3, 50)
    assert user["services"] == {"smtp": False, "pop3": True, "imap": False, "sieve": False}
    assert user["transport"] == "lmtp:inet:dovecot:24"

    # A domain change without --force leaves the overrides; with --force it drops them.
    org.ok("dq", "example.org", "2G")
    assert _json(org, "ui", "alice@example.org")["quota_bytes"] == 1024**3
    org.ok("dq", "example.org", "2G", "--force")
    org.ok("ds", "example.org", "-s", "imap", "--force")
    org.ok("dt", "example.org", "dovecot:", "--force")
    user = _json(org, "ui", "alice@example.org")
    assert user["quota_bytes"] == 2 * 1024**3 and user["own_quota"] is False
    assert user["services"]["imap"] is True and user["own_services"] is False
    assert user["transport"] == "dovecot:"

    # The `domain` keyword drops a single override.
    org.ok("uq", "alice@example.org", "1k")
    org.ok("uq", "alice@example.org", "domain")
    assert _json(org, "ui", "alice@example.org")["quota_bytes"] == 2 * 1024**3
    org.ok("us", "alice@example.org", "-s", "smtp")
    org.ok("us", "alice@example.org", "domain")
    assert _json(org, "ui", "alice@example.org")["own_services"] is False
    org.ok("ut", "alice@example.org", "smtp:")
    org.ok("ut", "alice@example.org", "domain")
    assert _json(org, "ui", "alice@example.org")["transport"] == "dovecot:"


def test_name_note_and_password(org: Cli) -> None:
    org.ok("un", "alice@example.org", "-n", "Alice Liddell")
    org.ok("uo", "alice@example.org", "-n", "down the rabbit hole")
    user = _json(org, "ui", "alice@example.org")
    assert (user["name"], user["note"]) == ("Alice Liddell", "down the rabbit hole")
    org.ok("un", "alice@example.org", "-d")
    org.ok("uo", "alice@example.org", "-d")
    user = _json(org, "ui", "alice@example.org")
    assert (user["name"], user["note"]) == (None, None)

    org.ok("up", "alice@example.org", "-s", "SSHA512.hex", "--password-stdin", stdin="new-password\n")
    [(stored,)] = org.sql("SELECT passwd FROM users WHERE local_part = 'alice'")
    assert str(stored).startswith("{SSHA512.HEX}")
    ready = "{SHA512-CRYPT}$6$saltsalt$" + "a" * 86
    org.ok("up", "alice@example.org", "--hash", stdin=ready + "\n")
    assert org.sql("SELECT passwd FROM users WHERE local_part = 'alice'") == [(ready,)]
    weak = org("up", "alice@example.org", "--hash", stdin="{PLAIN-MD5}1a1dc91c907325c69271ddf0c944bc72\n")
    assert weak.returncode == ExitCode.INVALID and "weak" in weak.stderr


@pytest.mark.parametrize(
    "ready", ["{PLAIN-MD5}1a1dc91c907325c69271ddf0c944bc72", "{CRAM-MD5}" + "a" * 64, "{PLAIN}old-secret"]
)
def test_weak_material_is_taken_with_a_warning_where_the_postmaster_allows_it(org: Cli, ready: str) -> None:
    allowing = Cli({**org.env, "VMM_ALLOW_WEAK_SCHEMES": "yes"}, org.mail_root)
    result = allowing("up", "alice@example.org", "--hash", stdin=ready + "\n")
    assert result.returncode == 0 and "weak password hash" in result.stderr
    assert org.sql("SELECT passwd FROM users WHERE local_part = 'alice'") == [(ready,)]
    allowing.ok("configset", "misc.password_scheme", "SHA256")
    allowing.ok("up", "alice@example.org", "--password-stdin", stdin="pw-long-enough\n")
    [(stored,)] = org.sql("SELECT passwd FROM users WHERE local_part = 'alice'")
    assert str(stored).startswith("{SHA256}")
    # Without the switch the stored weak scheme hashes nothing more.
    refused = org("up", "alice@example.org", "--password-stdin", stdin="pw-long-enough\n")
    assert refused.returncode == ExitCode.INVALID and "VMM_ALLOW_WEAK_SCHEMES" in refused.stderr


def test_a_chosen_password_must_be_as_long_as_the_setting_says(org: Cli) -> None:
    short = org("up", "alice@example.org", "--password-stdin", stdin="elevenchars\n")
    assert short.returncode == ExitCode.PASSWORD and "shorter than 12" in short.stderr
    org.ok("configset", "account.min_password_length", "8")
    org.ok("up", "alice@example.org", "--password-stdin", stdin="elevenchars\n")
    org.ok("configset", "account.min_password_length", "20")
    org.ok("configset", "account.random_password", "true")
    generated = org.ok("up", "alice@example.org").strip().removeprefix("Generated password: ")
    assert len(generated) >= 20


def test_aliases_with_placeholders_and_alias_domains(org: Cli) -> None:
    org.ok("ada", "example.net", "example.org")
    org.ok("aa", "team@example.org", "alice@example.org", "Bob@Remote.Example")
    org.ok("aa", "team@example.net", "%n+%d@example.org")  # the same alias: adds a destination
    info = _json(org, "ai", "team@example.org")
    assert info["destinations"] == ["%n+%d@example.org", "alice@example.org", "bob@remote.example"]
    assert _json(org, "adi", "example.net")["domain"] == "example.org"
    listed = json.loads(org.ok("la", "--json"))
    assert {(item["address"], item["alias_domain"]) for item in listed} == {
        ("team@example.org", False),
        ("team@example.net", True),
    }
    org.ok("ad", "team@example.org", "bob@remote.example")
    assert len(_json(org, "ai", "team@example.org")["destinations"]) == 2
    org.ok("ad", "team@example.org")
    assert org("ai", "team@example.org").returncode == ExitCode.NOT_FOUND


def test_alias_domain_switch_and_delete(org: Cli) -> None:
    org.ok("da", "example.com")
    org.ok("ada", "example.net", "example.org")
    org.ok("ads", "example.net", "example.com")
    assert _json(org, "adi", "example.net")["domain"] == "example.com"
    domains = json.loads(org.ok("ld", "--json"))
    assert [(d["domain"], d["primary"], d["belongs_to"]) for d in domains] == [
        ("example.com", True, "example.com"),
        ("example.net", False, "example.com"),
        ("example.org", True, "example.org"),
    ]
    org.ok("add", "example.net")
    assert org("adi", "example.net").returncode == ExitCode.NOT_FOUND


def test_catchall_and_relocated(org: Cli) -> None:
    org.ok("caa", "example.org", "alice@example.org", "archive@example.com")
    assert _json(org, "cai", "example.org")["destinations"] == [
        "alice@example.org",
        "archive@example.com",
    ]
    org.ok("cad", "example.org", "archive@example.com")
    assert _json(org, "cai", "example.org")["destinations"] == ["alice@example.org"]
    org.ok("ra", "bob@example.org", "bob@new.example")
    assert _json(org, "ri", "bob@example.org")["destination"] == "bob@new.example"
    assert "User `bob@example.org' has moved to `bob@new.example'" in org.ok("ri", "bob@example.org")
    info = _json(org, "di", "example.org", "-d", "full")
    assert info["catchall_list"] == ["alice@example.org"]
    assert info["relocated_list"] == ["bob@example.org -> bob@new.example"]
    assert info["accounts_list"] == ["alice@example.org"]
    org.ok("rd", "bob@example.org")
    org.ok("cad", "example.org")
    assert _json(org, "di", "example.org")["catchall"] == 0


def test_one_address_is_exactly_one_object(org: Cli) -> None:
    org.ok("aa", "team@example.org", "alice@example.org")
    org.ok("ra", "gone@example.org", "gone@new.example")
    for args in (
        ["aa", "alice@example.org", "x@example.com"],
        ["ra", "alice@example.org", "a@b.example"],
        ["ra", "team@example.org", "a@b.example"],
        ["aa", "gone@example.org", "x@example.com"],
    ):
        result = org(*args)
        assert result.returncode == ExitCode.EXISTS, args
    result = org("ua", "team@example.org", "--password-stdin", stdin="pw-long-enough\n")
    assert result.returncode == ExitCode.EXISTS and "already an alias" in result.stderr


def test_list_commands_and_patterns(org: Cli) -> None:
    org.ok("ua", "webmaster@example.org", "--password-stdin", stdin="pw-long-enough\n")
    org.ok("aa", "postmaster@example.org", "alice@example.org")
    org.ok("ra", "old@example.org", "old@new.example")
    org.ok("da", "other.example")
    org.ok("ua", "master@other.example", "--password-stdin", stdin="pw-long-enough\n")
    assert "[u+] alice@example.org" in org.ok("ll", "-p", "example.org")
    assert "[a+] postmaster@example.org" in org.ok("ll")
    assert "[r+] old@example.org" in org.ok("ll")
    found = [item["address"] for item in json.loads(org.ok("lu", "-p", "%master@%", "--json"))]
    assert found == ["webmaster@example.org", "master@other.example"]  # by domain, then local part
    assert [item["address"] for item in json.loads(org.ok("lr", "--json"))] == ["old@example.org"]
    assert [d["domain"] for d in json.loads(org.ok("ld", "-p", "%example", "--json"))] == ["other.example"]
    assert org("lu", "-p", "ex%ample").returncode == ExitCode.INVALID


def test_userdelete_refuses_while_aliases_point_at_the_account(org: Cli) -> None:
    org.ok("aa", "team@example.org", "alice@example.org", "bob@remote.example")
    home = Path(str(_json(org, "ui", "alice@example.org")["home"]))
    result = org("ud", "alice@example.org")
    assert result.returncode == ExitCode.CONFLICT and "--force" in result.stderr
    org.ok("ud", "alice@example.org", "--force")
    assert org("ui", "alice@example.org").returncode == ExitCode.NOT_FOUND
    assert _json(org, "ai", "team@example.org")["destinations"] == ["bob@remote.example"]
    assert home.is_dir(), "without --delete-directory the Maildir stays"


def test_userdelete_with_delete_directory_removes_the_maildir(org: Cli) -> None:
    home = Path(str(_json(org, "ui", "alice@example.org")["home"]))
    org.ok("ud", "alice@example.org", "--delete-directory")
    assert not home.exists()
    assert not list(home.parent.iterdir()), "no renamed leftovers"


def test_domaindelete_force_removes_everything_including_catchall(org: Cli) -> None:
    org.ok("aa", "team@example.org", "alice@example.org")
    org.ok("ra", "gone@example.org", "gone@new.example")
    org.ok("caa", "example.org", "alice@example.org")
    org.ok("ada", "example.net", "example.org")
    directory = Path(str(_json(org, "di", "example.org")["directory"]))
    result = org("dd", "example.org")
    assert result.returncode == ExitCode.CONFLICT
    org.ok("dd", "example.org", "--force", "--delete-directory")
    assert org("di", "example.org").returncode == ExitCode.NOT_FOUND
    assert org("adi", "example.net").returncode == ExitCode.NOT_FOUND
    assert org.sql("SELECT count(*) FROM users") == [(0,)]
    assert org.sql("SELECT count(*) FROM alias") == [(0,)]
    assert org.sql("SELECT count(*) FROM relocated") == [(0,)]
    assert not directory.exists()


def test_idn_domains_are_stored_in_ace_and_shown_in_both(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "bücher.example")
    info = _json(cli, "di", "xn--bcher-kva.example")
    assert (info["domain"], info["domain_unicode"]) == ("xn--bcher-kva.example", "bücher.example")
    assert "xn--bcher-kva.example (bücher.example)" in cli.ok("di", "bücher.example")
    cli.ok("ua", "anna@bücher.example", "--password-stdin", stdin="pw-long-enough\n")
    assert _json(cli, "ui", "anna@xn--bcher-kva.example")["address"] == "anna@xn--bcher-kva.example"


def test_configure_reads_one_answer_per_option(cli: Cli) -> None:
    options = [
        line
        for line in cli.ok("configure", "-s", "account", stdin="\n" * 20).splitlines()
        if line.startswith("Enter new value")
    ]
    assert len(options) == len([name for name in OPTIONS if name.startswith("account.")])
    answers = "\n".join(["true", "", "", "", "12", "true"]) + "\n"
    cli.ok("cf", "-s", "account", stdin=answers)
    assert cli.ok("cg", "account.delete_directory").strip() == "account.delete_directory = true"
    assert cli.ok("cg", "account.password_length").strip() == "account.password_length = 12"


def test_listpwschemes_marks_weak_schemes(cli: Cli) -> None:
    schemes = json.loads(cli.ok("lp", "--json"))
    names = [scheme["name"] for scheme in schemes["schemes"]]
    for name in (
        "SHA512-CRYPT",
        "SHA256-CRYPT",
        "BLF-CRYPT",
        "ARGON2I",
        "ARGON2ID",
        "PBKDF2",
        "SSHA512",
        "SSHA256",
        "SSHA",
    ):
        assert name in names
    assert "MD5-CRYPT" in schemes["refused_unless_weak_allowed"]
    assert schemes["default"] == "BLF-CRYPT"
    assert "(weak)" in cli.ok("lp")


def test_a_failed_directory_step_leaves_no_row(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    blocker = cli.mail_root / "not-a-directory"
    blocker.write_text("")
    cli.ok("cs", "misc.base_directory", str(blocker))
    result = cli("da", "example.org")
    assert result.returncode == ExitCode.FILESYSTEM, result.stderr
    assert cli.sql("SELECT count(*) FROM domain_data") == [(0,)]


def test_a_failed_maildir_leaves_no_account_and_keeps_what_was_there(org: Cli) -> None:
    domain_dir = Path(str(_json(org, "di", "example.org")["directory"]))
    [(next_uid,)] = org.sql("SELECT last_value + 1 FROM pg_sequences WHERE sequencename = 'users_uid_seq'")
    squatter = domain_dir / str(next_uid)
    squatter.mkdir()
    (squatter / "keep.txt").write_text("not vmm's")
    result = org("ua", "bob@example.org", "--password-stdin", stdin="pw-long-enough\n")
    assert result.returncode == ExitCode.FILESYSTEM, result.stderr
    assert org("ui", "bob@example.org").returncode == ExitCode.NOT_FOUND
    assert (squatter / "keep.txt").read_text() == "not vmm's"


def test_a_failed_domain_command_after_the_directory_removes_it(cli: Cli) -> None:
    # The postmaster account fails (no password): the domain row and its new directory
    # both disappear.
    result = cli("da", "example.org")
    assert result.returncode == ExitCode.PASSWORD
    assert cli.sql("SELECT count(*) FROM domain_data") == [(0,)]
    # The hash directories (<root>/<char>) stay; no domain directory below them does.
    assert list(cli.mail_root.glob("*/*")) == []
