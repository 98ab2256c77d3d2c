"""Eight vmm processes at once on overlapping objects end with a consistent database:
no duplicates, no orphans, no half-done Maildir, and a clear error for each loser."""

from __future__ import annotations

import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tests.integration.conftest import Cli
from vmm.errors import ExitCode

Command = tuple[list[str], str | None]  # arguments, stdin


def _all_at_once(cli: Cli, commands: list[Command]) -> list[subprocess.CompletedProcess[str]]:
    with ThreadPoolExecutor(max_workers=len(commands)) as pool:
        return list(pool.map(lambda command: cli.process(*command[0], stdin=command[1]), commands))


def _homes_on_disk(cli: Cli) -> set[str]:
    return {str(path) for path in cli.mail_root.glob("*/*/*") if path.is_dir()}


def _homes_in_database(cli: Cli) -> set[str]:
    rows = cli.sql("SELECT d.domaindir || '/' || u.uid FROM users u JOIN domain_data d USING (gid)")
    return {str(row[0]) for row in rows}


def _assert_one_clear_line(result: subprocess.CompletedProcess[str]) -> None:
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    assert "Traceback" not in result.stderr


def test_eight_useradds_of_one_address_make_one_account(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    results = _all_at_once(cli, [(["ua", "same@example.org", "--password-stdin"], "pw-long-enough\n")] * 8)
    assert sorted(result.returncode for result in results) == [0] + [ExitCode.EXISTS] * 7
    for result in results:
        if result.returncode:
            _assert_one_clear_line(result)
    assert cli.sql("SELECT count(*) FROM users") == [(1,)]
    assert _homes_on_disk(cli) == _homes_in_database(cli)


def test_one_address_becomes_exactly_one_kind_of_object(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "owner@example.org", "--password-stdin", stdin="pw-long-enough\n")
    commands: list[Command] = [
        *[(["ua", "x@example.org", "--password-stdin"], "pw-long-enough\n")] * 3,
        *[(["aa", "x@example.org", f"d{n}@example.com"], None) for n in range(3)],
        *[(["ra", "x@example.org", f"n{n}@example.com"], None) for n in range(2)],
    ]
    results = _all_at_once(cli, commands)
    winners = [result for result in results if result.returncode == 0]
    kinds = cli.sql(
        """SELECT (SELECT count(*) FROM users WHERE local_part = 'x')
                + (SELECT count(DISTINCT address) FROM alias WHERE address = 'x')
                + (SELECT count(*) FROM relocated WHERE address = 'x')"""
    )
    assert kinds == [(1,)]
    # Several aliasadds may all win (they add destinations to the same alias); no other
    # command may win beside them.
    assert winners
    for result in results:
        if result.returncode:
            assert result.returncode == ExitCode.EXISTS
            _assert_one_clear_line(result)
    assert _homes_on_disk(cli) == _homes_in_database(cli)


def test_domaindelete_racing_useradds_leaves_no_orphans(cli: Cli) -> None:
    cli.ok("cs", "domain.auto_postmaster", "false")
    cli.ok("da", "example.org")
    cli.ok("ua", "first@example.org", "--password-stdin", stdin="pw-long-enough\n")
    commands: list[Command] = [
        (["dd", "example.org", "--force", "--delete-directory"], None),
        *[(["ua", f"user{n}@example.org", "--password-stdin"], "pw-long-enough\n") for n in range(7)],
    ]
    results = _all_at_once(cli, commands)
    for result in results:
        if result.returncode:
            assert result.returncode in (ExitCode.NOT_FOUND, ExitCode.CONFLICT), result.stderr
            _assert_one_clear_line(result)
    assert _homes_on_disk(cli) == _homes_in_database(cli)
    leftovers = [path for path in cli.mail_root.rglob("*") if ".deleted-" in path.name]
    assert leftovers == []
    deleted = results[0].returncode == 0
    assert cli.sql("SELECT count(*) FROM domain_data") == [(0 if deleted else 1,)]
    if deleted:
        assert cli.sql("SELECT count(*) FROM users") == [(0,)]
        assert not any(Path(home).exists() for home in _homes_on_disk(cli))
