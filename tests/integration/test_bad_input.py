"""Bad input: one clear line on stderr, a documented exit code, no traceback, and the
database and mail root exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import DUMP, Cli, fresh_cli
from vmm.errors import ExitCode


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture(scope="module")
def populated(database: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cli]:
    """One domain with one account, shared by the cases: each must leave it unchanged."""
    with fresh_cli(database, tmp_path_factory.mktemp("bad-input") / "mail") as cli:
        cli.ok("cs", "domain.auto_postmaster", "false")
        cli.ok("da", "example.org")
        cli.ok("ua", "alice@example.org", "--password-stdin", stdin="pw-long-enough\n")
        cli.ok("aa", "team@example.org", "alice@example.org")
        cli.ok("ra", "gone@example.org", "gone@new.example")
        cli.ok("ada", "example.net", "example.org")
        yield cli


CASES = [
    (["domainadd", "example.org"], None, ExitCode.EXISTS),
    (["domainadd", "Example.ORG."], None, ExitCode.EXISTS),
    (["domainadd", "no_dots"], None, ExitCode.INVALID),
    (["domainadd", "bad..example"], None, ExitCode.INVALID),
    (["domainadd", "x" * 64 + ".example"], None, ExitCode.INVALID),
    (["domainadd", "ok.example", "-t", "no transport"], None, ExitCode.INVALID),
    (["domaininfo", "missing.example"], None, ExitCode.NOT_FOUND),
    (["domaininfo", "example.org", "-d", "everything"], None, ExitCode.INVALID),
    (["useradd", "alice@example.org", "--password-stdin"], "pw-long-enough\n", ExitCode.EXISTS),
    (["useradd", "ALICE@example.org", "--password-stdin"], "pw-long-enough\n", ExitCode.EXISTS),
    (["useradd", "bob@missing.example", "--password-stdin"], "pw-long-enough\n", ExitCode.NOT_FOUND),
    (["useradd", "bob@example.org", "--password-stdin"], "\n", ExitCode.PASSWORD),
    (["useradd", "bob@example.org"], "", ExitCode.PASSWORD),
    (["useradd", "bob", "--password-stdin"], "pw-long-enough\n", ExitCode.INVALID),
    (
        ["useradd", "bob'; DROP TABLE users; --@example.org", "--password-stdin"],
        "pw-long-enough\n",
        ExitCode.INVALID,
    ),
    (["userinfo", "nobody@example.org"], None, ExitCode.NOT_FOUND),
    (["userinfo", "alice@example.org", "-d", "bogus"], None, ExitCode.INVALID),
    (["getuser", "12"], None, ExitCode.NOT_FOUND),
    (["getuser", "twelve"], None, ExitCode.USAGE),
    (["configget", "misc.nothing"], None, ExitCode.NOT_FOUND),
    (["configset", "account.random_password", "maybe"], None, ExitCode.INVALID),
    (["configset", "misc.password_scheme", "MD5-CRYPT"], None, ExitCode.INVALID),
    (["configset", "domain.quota_bytes", "12X"], None, ExitCode.INVALID),
    (["nosuchcommand"], None, ExitCode.USAGE),
    (["domaindelete", "example.org"], None, ExitCode.CONFLICT),
    (["domaindelete", "example.net"], None, ExitCode.CONFLICT),
    (["domaindelete", "missing.example", "--force"], None, ExitCode.NOT_FOUND),
    (["domainquota", "example.org", "lots"], None, ExitCode.INVALID),
    (["domainquota", "example.org", "1G", "-m", "-5"], None, ExitCode.INVALID),
    (["domainservices", "example.org", "-s", "imap", "ftp"], None, ExitCode.INVALID),
    (["domaintransport", "example.org", "smtp:a b"], None, ExitCode.INVALID),
    (["domainnote", "example.org"], None, ExitCode.INVALID),
    (["domainnote", "example.org", "-n", "x", "-d"], None, ExitCode.INVALID),
    (["aliasdomainadd", "example.net", "example.org"], None, ExitCode.EXISTS),
    (["aliasdomainadd", "example.org", "example.org"], None, ExitCode.EXISTS),
    (["aliasdomainadd", "alias.example", "missing.example"], None, ExitCode.NOT_FOUND),
    (["aliasdomainadd", "alias.example", "example.net"], None, ExitCode.CONFLICT),
    (["aliasdomainswitch", "example.net", "example.org"], None, ExitCode.EXISTS),
    (["aliasdomaindelete", "example.org"], None, ExitCode.NOT_FOUND),
    (["userdelete", "alice@example.org"], None, ExitCode.CONFLICT),
    (["userdelete", "nobody@example.org"], None, ExitCode.NOT_FOUND),
    (["userquota", "alice@example.org", "12Q"], None, ExitCode.INVALID),
    (["userservices", "alice@example.org", "-s", "telnet"], None, ExitCode.INVALID),
    (["usertransport", "alice@example.org", "nocolon"], None, ExitCode.INVALID),
    (
        ["userpassword", "alice@example.org", "-s", "ROT13", "--password-stdin"],
        "pw-long-enough\n",
        ExitCode.INVALID,
    ),
    # Weak or plaintext material, and short passwords (VMM_ALLOW_WEAK_SCHEMES is off here).
    (
        ["userpassword", "alice@example.org", "-s", "SHA256", "--password-stdin"],
        "pw-long-enough\n",
        ExitCode.INVALID,
    ),
    (["userpassword", "alice@example.org", "--password-stdin"], "eleven-char\n", ExitCode.PASSWORD),
    (["useradd", "bob@example.org", "--password-stdin"], "eleven-char\n", ExitCode.PASSWORD),
    (["userpassword", "alice@example.org", "--hash"], "plainhash\n", ExitCode.INVALID),
    (["userpassword", "alice@example.org", "--hash"], "{MD5-CRYPT}$1$x$y\n", ExitCode.INVALID),
    (["userpassword", "alice@example.org", "--hash"], "{PLAIN}secret\n", ExitCode.INVALID),
    (["userpassword", "alice@example.org", "--hash"], "{CLEAR}secret\n", ExitCode.INVALID),
    (["userpassword", "alice@example.org", "--hash"], "{CRAM-MD5}" + "a" * 64 + "\n", ExitCode.INVALID),
    (
        ["userpassword", "alice@example.org", "--hash"],
        "{SHA1}W6ph5Mm5Pz8GgiULbPgzG37mj9g=\n",
        ExitCode.INVALID,
    ),
    (["userpassword", "alice@example.org", "--hash"], "", ExitCode.PASSWORD),
    # A hash never travels in argv.
    (["userpassword", "alice@example.org", "--hash", "{SHA512-CRYPT}$6$s$h"], None, ExitCode.USAGE),
    (["import", "-"], "address,password\nnew@example.org,{PLAIN}secret\n", ExitCode.INVALID),
    (["import", "-"], "address,password\nnew@example.org,{SHA256}abcd\n", ExitCode.INVALID),
    (["import", "-"], "address,password\nnew@example.org,eleven-char\n", ExitCode.PASSWORD),
    (["configset", "misc.password_scheme", "SHA1"], None, ExitCode.INVALID),
    (["configset", "misc.crypt_blowfish_rounds", "4"], None, ExitCode.INVALID),
    (["configset", "account.min_password_length", "6"], None, ExitCode.INVALID),
    (["username", "alice@example.org"], None, ExitCode.INVALID),
    (["aliasadd", "alice@example.org", "bob@example.com"], None, ExitCode.EXISTS),
    (["aliasadd", "gone@example.org", "bob@example.com"], None, ExitCode.EXISTS),
    (["aliasadd", "team@example.org", "alice@example.org"], None, ExitCode.EXISTS),
    (["aliasadd", "team@example.org", "team@example.org"], None, ExitCode.INVALID),
    (["aliasadd", "team@example.org", "not an address"], None, ExitCode.INVALID),
    (["aliasadd", "x@missing.example", "bob@example.com"], None, ExitCode.NOT_FOUND),
    (["aliasdelete", "team@example.org", "bob@example.com"], None, ExitCode.NOT_FOUND),
    (["aliasinfo", "nobody@example.org"], None, ExitCode.NOT_FOUND),
    (["catchalladd", "example.org", "%x@example.com"], None, ExitCode.INVALID),
    (["catchalldelete", "example.org"], None, ExitCode.NOT_FOUND),
    (["relocatedadd", "alice@example.org", "a@new.example"], None, ExitCode.EXISTS),
    (["relocatedadd", "x@example.org", "not-an-address"], None, ExitCode.INVALID),
    (["relocatedinfo", "alice@example.org"], None, ExitCode.NOT_FOUND),
    (["relocateddelete", "team@example.org"], None, ExitCode.NOT_FOUND),
    (["listusers", "-p", "a%b"], None, ExitCode.INVALID),
    (["listdomains", "-p", "x@y"], None, ExitCode.INVALID),
    (["domainadd", "evil\x01.example"], None, ExitCode.INVALID),
    (["domainadd", "x.example", "-n", "note\x1b[31m"], None, ExitCode.INVALID),
    (["configure", "-s", "nosection"], "\n", ExitCode.NOT_FOUND),
    (["username", "alice@example.org", "-n", "Alice\nInjected: header"], None, ExitCode.INVALID),
]


@pytest.mark.parametrize(("args", "stdin", "code"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_bad_input_is_refused_cleanly(
    populated: Cli, args: list[str], stdin: str | None, code: ExitCode
) -> None:
    before = (populated.sql(DUMP), _tree(populated.mail_root))
    result = populated(*args, stdin=stdin)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr
    message = result.stderr.strip().splitlines()
    assert message and message[-1].startswith(("Error:", "Usage:", "Try"))
    if code != ExitCode.USAGE:
        assert len(message) == 1, result.stderr
    assert (populated.sql(DUMP), _tree(populated.mail_root)) == before


def test_unreachable_database_is_a_clear_error(cli: Cli) -> None:
    unreachable = Cli({**cli.env, "VMM_DB_PORT": "1"}, cli.mail_root)
    result = unreachable("domaininfo", "example.org")
    assert result.returncode == ExitCode.DATABASE
    assert result.stderr.startswith("Error: cannot connect to the database")
