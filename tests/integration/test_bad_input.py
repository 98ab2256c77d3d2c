"""Bad input: one clear line on stderr, a documented exit code, no traceback, and the
database and mail root exactly as before."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.conftest import Cli, fresh_cli
from vmm.errors import ExitCode

DUMP = """SELECT 'domain', domainname || ' ' || gid FROM domain_name
          UNION ALL SELECT 'user', local_part || ' ' || uid || ' ' || passwd FROM users
          UNION ALL SELECT 'setting', name || '=' || value FROM settings ORDER BY 1, 2"""


def _tree(root: Path) -> list[str]:
    return sorted(str(path.relative_to(root)) for path in root.rglob("*"))


@pytest.fixture(scope="module")
def populated(
    database: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cli]:
    """One domain with one account, shared by the cases: each must leave it unchanged."""
    with fresh_cli(database, tmp_path_factory.mktemp("bad-input") / "mail") as cli:
        cli.ok("cs", "domain.auto_postmaster", "false")
        cli.ok("da", "example.org")
        cli.ok("ua", "alice@example.org", "--password-stdin", stdin="pw\n")
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
    (["useradd", "alice@example.org", "--password-stdin"], "pw\n", ExitCode.EXISTS),
    (["useradd", "ALICE@example.org", "--password-stdin"], "pw\n", ExitCode.EXISTS),
    (["useradd", "bob@missing.example", "--password-stdin"], "pw\n", ExitCode.NOT_FOUND),
    (["useradd", "bob@example.org", "--password-stdin"], "\n", ExitCode.PASSWORD),
    (["useradd", "bob@example.org"], "", ExitCode.PASSWORD),
    (["useradd", "bob", "--password-stdin"], "pw\n", ExitCode.INVALID),
    (["useradd", "bob'; DROP TABLE users; --@example.org", "--password-stdin"], "pw\n",
     ExitCode.INVALID),
    (["userinfo", "nobody@example.org"], None, ExitCode.NOT_FOUND),
    (["userinfo", "alice@example.org", "-d", "bogus"], None, ExitCode.INVALID),
    (["getuser", "12"], None, ExitCode.NOT_FOUND),
    (["getuser", "twelve"], None, ExitCode.USAGE),
    (["configget", "misc.nothing"], None, ExitCode.NOT_FOUND),
    (["configset", "account.random_password", "maybe"], None, ExitCode.INVALID),
    (["configset", "misc.password_scheme", "MD5-CRYPT"], None, ExitCode.INVALID),
    (["configset", "domain.quota_bytes", "12X"], None, ExitCode.INVALID),
    (["nosuchcommand"], None, ExitCode.USAGE),
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
